"""Who may call what: every route of the binary's own table (`wxkf routes`:
methods, path pattern, least role) called by every kind of caller, against
a real stack. The table is read from the binary, not copied here, so a
route added later is in the matrix the day it is added; a route without a
declared role does not compile (fcgi/routes.c) and a role this test does
not know fails it.

The callers: nobody, an agent's bearer token, an agent user's cookie (with
and without its CSRF token), a supervisor's cookie, an admin's cookie and
the bootstrap admin token. A refusal by the door (fcgi/api.c,
api_authorize) is 401/403 with one of DOOR_CODES; a call let through may
still be refused by the handler for the resource (an agent and a user it
does not serve: 403 not_yours) or the body (400), never by the door.

Run: WXKF_BIN=$PWD/build/san/wxkf /usr/bin/python3 -m pytest -q \
     test/it/test_authz.py
"""

import os
import re
import subprocess

import pytest
import requests

from conftest import run_stack, wxkf_bin
from test_routing import add_agent

HERE = os.path.dirname(os.path.abspath(__file__))
API_MD = os.path.join(HERE, '..', '..', 'docs', 'api.md')
PW = 'authz password 1'
AGENT = 'az1@authz'
# What a path parameter becomes: '*' an OpenID (or id, login: the handler
# answers 400/404 for it), '+' an agent account. No such user or agent
# exists, so no call changes anything a later call depends on.
PARAM = {'*': 'oAuthzNobody01', '+': 'nobody@authz'}
ROLES = ('public', 'ticket', 'signed_in', 'staff', 'agent', 'supervisor',
         'team', 'admin')
DOOR_CODES = {'unauthorized', 'forbidden', 'read_only', 'not_signed_in',
              'csrf_failed', 'too_many_auth_failures'}
CALLERS = ('nobody', 'agent_token', 'agent_cookie', 'agent_cookie_no_csrf',
           'supervisor_cookie', 'admin_cookie', 'admin_token')


def printed_routes():
    out = subprocess.run([wxkf_bin(), 'routes'], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    rows = [ln.split('\t')[:3] for ln in out.stdout.splitlines()]
    assert rows and all(len(r) == 3 for r in rows), out.stdout
    return rows


ROUTES = printed_routes()




def expected(caller, role, method):
    """None when the door lets the caller through, else (status, code)."""
    reads = method in ('GET', 'HEAD')
    cookie = caller.endswith('_cookie') or caller == 'agent_cookie_no_csrf'
    if role == 'public':
        return None
    if role == 'ticket':        # no header or cookie stands for a ticket
        return (401, 'unauthorized')
    if role == 'signed_in':
        if not cookie:
            return (401, 'not_signed_in')
        if caller == 'agent_cookie_no_csrf' and not reads:
            return (403, 'csrf_failed')
        return None
    if caller == 'nobody':
        return (401, 'unauthorized')
    if caller == 'agent_cookie_no_csrf' and not reads:
        return (403, 'csrf_failed')
    if caller == 'supervisor_cookie' and not reads and \
            role not in ('supervisor', 'team'):
        return (403, 'read_only')
    kind = {'agent_token': 'agent', 'agent_cookie': 'agent',
            'agent_cookie_no_csrf': 'agent', 'supervisor_cookie':
            'supervisor', 'admin_cookie': 'admin',
            'admin_token': 'admin'}[caller]
    allowed = {'staff': {'agent', 'supervisor', 'admin'},
               'team': {'agent', 'supervisor', 'admin'},
               'agent': {'agent'},
               'supervisor': {'supervisor', 'admin'},
               'admin': {'admin'}}[role]
    return None if kind in allowed else (403, 'forbidden')


def test_every_route_declares_a_known_role():
    assert len(ROUTES) >= 64, ROUTES
    bad = [r for r in ROUTES if r[2] not in ROLES]
    assert not bad, 'routes without a known role: %r' % bad
    assert len({(m, p) for m, p, _ in ROUTES}) == len(ROUTES)


@pytest.fixture(scope='module')
def zstack():
    yield from run_stack('authz', extra={
        'api': {'auth_failures_per_min': '1000'}})


def user_add(stack, login, role, agent=None):
    cmd = [wxkf_bin(), 'user', 'add', '-c', stack.conf, '--login', login,
           '--name', login, '--role', role]
    if agent:
        cmd += ['--agent', agent]
    r = subprocess.run(cmd, input=PW + '\n', text=True, capture_output=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr


def sign_in(stack, login):
    r = requests.post(stack.base + '/api/v1/auth/login', timeout=30,
                      json={'login': login, 'password': PW})
    assert r.status_code == 200, r.text
    return {'Cookie': 'wxkf_sid=' + r.cookies['wxkf_sid'],
            'X-CSRF-Token': r.json()['csrf_token']}


@pytest.fixture(scope='module')
def callers(zstack):
    token = add_agent(zstack, AGENT)
    logins = {'agent': 'azagent', 'supervisor': 'azlead', 'admin': 'azboss'}
    user_add(zstack, 'azagent', 'agent', AGENT)
    user_add(zstack, 'azlead', 'supervisor')
    user_add(zstack, 'azboss', 'admin')

    def headers(caller):
        """Fresh headers of caller (a new sign-in for a cookie)."""
        if caller == 'nobody':
            return {}
        if caller == 'agent_token':
            return {'Authorization': 'Bearer ' + token}
        if caller == 'admin_token':
            return {'Authorization': 'Bearer ' + zstack.admin_token}
        h = sign_in(zstack, logins[caller.split('_')[0]])
        if caller == 'agent_cookie_no_csrf':
            del h['X-CSRF-Token']
        return h

    kept = {c: headers(c) for c in CALLERS}
    return kept, headers


def call(stack, method, path, headers):
    url = stack.base + path.replace('*', PARAM['*']).replace('+', PARAM['+'])
    return requests.request(method, url, headers=headers, json={},
                            timeout=30)


def door_refusal(r):
    """(status, code) when the door refused r, else None."""
    if r.status_code not in (401, 403):
        return None
    try:
        code = r.json()['error']['code']
    except ValueError:
        return (r.status_code, None)
    return (r.status_code, code) if code in DOOR_CODES else None


@pytest.mark.parametrize('method,path,role', ROUTES)
def test_each_caller_on_each_route(zstack, callers, method, path, role):
    kept, fresh = callers
    wrong = []
    for caller in CALLERS:
        # a sign-out ends the session it is called with: a new one each
        h = fresh(caller) if 'logout' in path else kept[caller]
        r = call(zstack, method, path, h)
        if method == 'HEAD':    # no body to read the code from: the GET's
            g = call(zstack, 'GET', path, h)
            assert g.status_code == r.status_code, (caller, path)
            r = g
        want, got = expected(caller, role, method), door_refusal(r)
        if got != want:
            wrong.append((caller, want, r.status_code, r.text[:200]))
    if 'logout' in path:        # logout-all ended the kept sessions too
        kept.update((c, fresh(c)) for c in CALLERS)
    assert not wrong, '%s %s (%s): %r' % (method, path, role, wrong)


def test_the_door_refuses_before_the_handler_reads_anything(zstack,
                                                            callers):
    """An agent posting a broken body to an admin route is refused as an
    agent (403), not as a bad body (400): the handler never ran."""
    kept, _ = callers
    r = requests.post(zstack.base + '/api/v1/agents', timeout=30,
                      headers=dict(kept['agent_token'],
                                   **{'Content-Type': 'application/json'}),
                      data=b'{not json')
    assert (r.status_code, r.json()['error']['code']) == (403, 'forbidden')
    r = requests.post(zstack.base + '/api/v1/agents', timeout=30,
                      headers=dict(kept['admin_token'],
                                   **{'Content-Type': 'application/json'}),
                      data=b'{not json')
    assert (r.status_code, r.json()['error']['code']) == (400, 'bad_json')


ROW = re.compile(r'^\| `([A-Z]+)` \| `([^`]+)` \| (\w+) \|$')


def test_docs_list_every_route_with_its_role():
    """docs/api.md's route table is the binary's, row for row."""
    with open(API_MD, encoding='utf-8') as f:
        rows = [list(m.groups()) for m in map(ROW.match, f.read().split('\n'))
                if m]
    assert rows == [list(r) for r in ROUTES]
