"""The agent and admin REST API against the real stack: the authorization
matrix (each cell a request), brute-force braking (429), agents managed
over HTTP (tokens shown once, revocable), every session, the waiting queue,
live stats, image upload, the one error shape, and real-time push through
nginx's Nchan (a message reaches the agent's stream within a second, with
the same ids as the cursor feed)."""

import json
import os
import re
import subprocess
import sys
import threading
import time

import pytest
import requests

from conftest import APP_ID, assert_error, run_sim_stack, sim_server, \
    wait_until, wxkf_bin
from test_routing import Agent, add_agent

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'sim'))
from audio import tone, tone_mp3  # noqa: E402

LIMIT = 8          # [api] auth_failures_per_min in this stack
PNG = (b'\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01'
       b'\x08\x02\x00\x00\x00\x90wS\xde\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf'
       b'\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef\x00\x00\x00\x00IEND'
       b'\xaeB`\x82')
JPEG = b'\xff\xd8\xff\xe0\x00\x10JFIF\x00' + b'\x01' * 500 + b'\xff\xd9'


@pytest.fixture(scope='module')
def sim():
    yield from sim_server()


@pytest.fixture(scope='module')
def astack(sim):
    yield from run_sim_stack('api', sim, workers=4, extra={
        'routing': {'default_capacity': '1', 'queue_timeout': '0'},
        'api': {'auth_failures_per_min': str(LIMIT)},
    })


@pytest.fixture(autouse=True)
def fresh_brake(astack):
    """Each test starts with no failed sign-ins counted for 127.0.0.1."""
    keys = ['wxkf:{%s}:%s:127.0.0.1' % (APP_ID, k)
            for k in ('authfail', 'ticketfail')]
    astack.redis.delete(*keys)
    yield
    astack.redis.delete(*keys)


def adm(stack):
    return {'Authorization': 'Bearer ' + stack.admin_token}


def call(stack, method, path, token=None, **kw):
    h = kw.pop('headers', {})
    if token is not None:
        h['Authorization'] = 'Bearer ' + token
    return requests.request(method, stack.base + path, headers=h,
                            timeout=10, **kw)


@pytest.fixture(scope='module')
def two(astack, sim):
    """Two agents, online, at WeChat too (for sends)."""
    out = []
    for acct in ('ap1@apishop', 'ap2@apishop'):
        sim.call('POST', '/customservice/kfaccount/add',
                 {'kf_account': acct, 'nickname': acct[:3]},
                 query={'access_token': sim.token()})
        a = Agent(astack, acct, add_agent(astack, acct))
        a.status('online')
        out.append(a)
    return out


def user_writes(sim, openid, content='你好'):
    out = sim.user_send(openid, type='text', content=content, mode='safe')
    assert out['status'] == 200, out
    return out


def close_all(stack, agents):
    """Closes every session of these agents (as the admin)."""
    for a in agents:
        for s in call(stack, 'GET', '/api/v1/me/sessions',
                      a.token).json()['sessions']:
            call(stack, 'POST', '/api/v1/sessions/%s/close' % s['openid'],
                 stack.admin_token, json={})


def owner(stack, openid):
    r = call(stack, 'GET', '/api/v1/sessions/' + openid,
             stack.admin_token)
    return r.json().get('agent') if r.status_code == 200 else None


# --- the authorization matrix ---------------------------------------------------

AGENT_ROUTES = [('GET', '/api/v1/me'), ('POST', '/api/v1/me/heartbeat'),
                ('GET', '/api/v1/me/sessions'), ('GET', '/api/v1/me/events'),
                ('POST', '/api/v1/me/stream-ticket')]
ADMIN_ROUTES = [('GET', '/api/v1/agents'), ('POST', '/api/v1/agents'),
                ('GET', '/api/v1/agents/ap1@apishop'),
                ('PATCH', '/api/v1/agents/ap1@apishop'),
                ('DELETE', '/api/v1/agents/nobody'),
                ('POST', '/api/v1/agents/nobody/token'),
                ('GET', '/api/v1/sessions'), ('GET', '/api/v1/queue'),
                ('GET', '/api/v1/stats'), ('POST', '/api/v1/labels'),
                ('PATCH', '/api/v1/labels/1'), ('DELETE', '/api/v1/labels/1'),
                ('GET', '/api/v1/staff'),
                ('POST', '/api/v1/staff/nobody/password'),
                ('GET', '/api/v1/reports'), ('GET', '/api/v1/reports/export'),
                ('GET', '/api/v1/history/export'),
                ('GET', '/api/v1/tokens'), ('POST', '/api/v1/tokens'),
                ('DELETE', '/api/v1/tokens/999999'),
                ('POST', '/api/v1/staff'), ('PATCH', '/api/v1/staff/nobody')]
# supervisors (as themselves, their writes too) and admins (fcgi/board.c;
# test_board.py has the rest)
LEAD_ROUTES = [('GET', '/api/v1/board'),
               ('POST', '/api/v1/queue/oApiNone01/assign'),
               ('POST', '/api/v1/agents/nobody/status')]
# both roles: an agent gets its own account's data
BOTH_ROUTES = [('GET', '/api/v1/me/colleagues')]
# a user's past session: its agent, or an admin for that agent (below and
# test_reopen.py)
PAST_ROUTES = [('GET', '/api/v1/sessions/oApiNone01/reopen?session=1'),
               ('POST', '/api/v1/sessions/oApiNone01/reopen')]
# a supervisor's inside a conversation (below; test_supervise.py has the
# live sessions): whisper (supervisors, admins, the serving agent) and
# take-over (a supervisor with an agent account)
SUPERVISE_ROUTES = [('POST', '/api/v1/sessions/oApiNone01/whisper'),
                    ('POST', '/api/v1/sessions/oApiNone01/takeover')]


@pytest.mark.parametrize('method,path',
                         AGENT_ROUTES + ADMIN_ROUTES + BOTH_ROUTES +
                         PAST_ROUTES + SUPERVISE_ROUTES + LEAD_ROUTES)
def test_no_token_and_bad_token_are_401(astack, two, method, path):
    r = call(astack, method, path)
    assert_error(r, 401, 'unauthorized')
    assert r.headers.get('WWW-Authenticate') == 'Bearer'
    r = call(astack, method, path, 'wxa_' + '0' * 64)
    assert_error(r, 401, 'unauthorized')
    r = call(astack, method, path, headers={'Authorization': 'Basic Zm9vOmJhcg=='})
    assert_error(r, 401, 'unauthorized')


@pytest.mark.parametrize('method,path', ADMIN_ROUTES + LEAD_ROUTES)
def test_agent_on_an_admin_route_is_403(astack, two, method, path):
    r = call(astack, method, path, two[0].token, json={})
    assert_error(r, 403, 'forbidden')


@pytest.mark.parametrize('method,path', AGENT_ROUTES)
def test_admin_on_agent_only_routes(astack, two, method, path):
    r = call(astack, method, path, astack.admin_token)
    if path == '/api/v1/me':
        assert r.status_code == 200 and r.json() == {'role': 'admin'}
    else:
        assert_error(r, 403, 'forbidden')


@pytest.mark.parametrize('method,path', BOTH_ROUTES)
def test_agents_and_admins_on_shared_routes(astack, two, method, path):
    for token in (two[0].token, astack.admin_token):
        r = call(astack, method, path, token)
        assert r.status_code == 200, r.text


@pytest.fixture(scope='module')
def cookies(astack, two):
    """A signed-in browser per role (`wxkf user add`, then a password
    sign-in): the cookie and CSRF headers of an agent user linked to
    ap1@apishop, a supervisor and an admin."""
    out = {}
    for login, role, agent in (('apiagent', 'agent', two[0].account),
                               ('apilead', 'supervisor', None),
                               ('apiboss', 'admin', None)):
        cmd = [wxkf_bin(), 'user', 'add', '-c', astack.conf, '--login', login,
               '--name', login, '--role', role]
        if agent:
            cmd += ['--agent', agent]
        r = subprocess.run(cmd, input='matrix password 1\n', text=True,
                           capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        r = requests.post(astack.base + '/api/v1/auth/login', timeout=30,
                          json={'login': login,
                                'password': 'matrix password 1'})
        assert r.status_code == 200, r.text
        out[role] = {'Cookie': 'wxkf_sid=' + r.cookies['wxkf_sid'],
                     'X-CSRF-Token': r.json()['csrf_token']}
    return out


@pytest.mark.parametrize('method,path', LEAD_ROUTES)
def test_supervisors_and_admins_on_the_leads_routes(astack, two, cookies,
                                                    method, path):
    """Allowed to both (a supervisor's writes too, with its CSRF token):
    answered about the target, never read_only or forbidden; an agent's
    cookie is refused as its token is."""
    body = {'agent': 'ap1@apishop'} if 'assign' in path else \
        {'status': 'paused'}
    for h in (cookies['supervisor'], cookies['admin'],
              {'Authorization': 'Bearer ' + astack.admin_token}):
        r = requests.request(method, astack.base + path, json=body,
                             headers=h, timeout=10)
        if method == 'GET':
            assert r.status_code == 200, r.text
        else:
            assert r.status_code == 404, r.text
    r = requests.request(method, astack.base + path, json=body, timeout=10,
                         headers=cookies['agent'])
    assert_error(r, 403, 'forbidden')


@pytest.mark.parametrize('method,path',
                         AGENT_ROUTES + ADMIN_ROUTES + BOTH_ROUTES)
def test_cookie_roles_on_every_route(astack, two, cookies, method, path):
    """An agent's cookie is answered as its token, an admin's as the admin
    token; a supervisor's as the admin token on GET, 403 read_only on
    anything else; a cookie without its CSRF token changes nothing."""
    def status(headers):
        return requests.request(method, astack.base + path, json={},
                                headers=headers, timeout=10).status_code

    for role, token in (('agent', two[0].token),
                        ('admin', astack.admin_token)):
        assert status(cookies[role]) == status(
            {'Authorization': 'Bearer ' + token}), (role, method, path)
    r = requests.request(method, astack.base + path, json={}, timeout=10,
                         headers=cookies['supervisor'])
    if method == 'GET':
        assert r.status_code == status(
            {'Authorization': 'Bearer ' + astack.admin_token}), r.text
    else:
        assert_error(r, 403, 'read_only')
        for role in ('agent', 'admin'):
            r = requests.request(method, astack.base + path, json={},
                                 timeout=10,
                                 headers={'Cookie': cookies[role]['Cookie']})
            assert_error(r, 403, 'csrf_failed')


def test_an_agent_cannot_touch_another_agents_session(astack, sim, two):
    a, b = two
    openid = 'oApiOther01'
    user_writes(sim, openid)
    mine = owner(astack, openid)
    other = b if mine == a.account else a
    me = a if mine == a.account else b
    base = '/api/v1/sessions/' + openid
    for method, path, body in [('GET', base, None),
                               ('POST', base + '/close', {}),
                               ('POST', base + '/transfer',
                                {'to_agent': other.account}),
                               ('POST', base + '/messages',
                                {'msgtype': 'text',
                                 'text': {'content': 'x'}}),
                               ('POST', base + '/typing', None),
                               ('POST', base + '/reopen', {'session': 1}),
                               ('GET', base + '/reopen?session=1', None)]:
        r = call(astack, method, path, other.token, json=body)
        assert_error(r, 403, 'not_yours')
    # the user's history and media are the session agent's too
    r = call(astack, 'GET', '/api/v1/users/%s/messages' % openid,
             other.token)
    assert r.status_code == 403, r.text
    # its own agent and the admin may
    assert call(astack, 'GET', base, me.token).status_code == 200
    assert call(astack, 'GET', base, astack.admin_token).status_code == 200
    assert call(astack, 'POST', base + '/close', astack.admin_token,
                json={}).status_code == 200


# --- brute force ------------------------------------------------------------------

def test_repeated_bad_tokens_from_one_address_get_429(astack, two):
    for i in range(LIMIT):
        r = call(astack, 'GET', '/api/v1/me', 'wxa_%064d' % i)
        assert r.status_code == 401, (i, r.text)
    r = call(astack, 'GET', '/api/v1/me', 'wxa_' + '9' * 64)
    assert_error(r, 429, 'too_many_auth_failures')
    assert 1 <= int(r.headers['Retry-After']) <= 60
    assert_error(call(astack, 'GET', '/api/v1/agents', 'adm_guess'), 429)
    assert_error(requests.get(astack.base + '/api/v1/me', timeout=10,
                              headers={'Authorization': 'Basic Zm9v'}), 429)
    # a right token is never refused: the others behind this address (an
    # office's NAT) keep working while the guesses are braked
    assert call(astack, 'GET', '/api/v1/me', two[0].token).status_code == 200
    assert call(astack, 'GET', '/api/v1/agents',
                astack.admin_token).status_code == 200
    # the window is one minute, kept in Redis for every worker; refusals
    # do not extend it
    key = 'wxkf:{%s}:authfail:127.0.0.1' % APP_ID
    assert 0 < astack.redis.pttl(key) <= 60000
    assert astack.redis.get(key) == str(LIMIT)
    astack.redis.delete(key)
    assert_error(call(astack, 'GET', '/api/v1/me', 'wxa_' + '9' * 64), 401)


def test_bad_stream_tickets_from_any_web_page_lock_no_one_out(astack, two):
    """Any page an agent opens can make the browser fetch
    /api/v1/me/stream?ticket=x (an <img>: no Authorization header). Those
    failures are counted apart from tokens; past the limit only bad
    tickets are refused (issue 15, item 3)."""
    for i in range(LIMIT * 3):
        r = requests.get(astack.base + '/api/v1/me/stream?ticket=x',
                         timeout=10)
        assert r.status_code == (401 if i < LIMIT else 429), (i, r.text)
    assert_error(r, 429, 'too_many_auth_failures')
    assert 1 <= int(r.headers['Retry-After']) <= 60
    assert astack.redis.get('wxkf:{%s}:ticketfail:127.0.0.1' % APP_ID) == \
        str(LIMIT)
    # tokens from the same address: the right ones work, a wrong one is
    # an ordinary 401, not braked by the tickets
    assert call(astack, 'GET', '/api/v1/me', two[0].token).status_code == 200
    assert call(astack, 'GET', '/api/v1/agents',
                astack.admin_token).status_code == 200
    assert_error(call(astack, 'GET', '/api/v1/me', 'wxa_' + '1' * 64), 401)
    # and a right ticket still opens the stream
    t = call(astack, 'POST', '/api/v1/me/stream-ticket', two[1].token)
    assert t.status_code == 200, t.text
    s = SSE(astack.base + t.json()['url'])
    try:
        assert s.resp.status_code == 200
    finally:
        s.close()


def test_good_tokens_are_not_counted(astack, two):
    for _ in range(LIMIT * 2):
        assert call(astack, 'GET', '/api/v1/me', two[0].token).status_code \
            == 200
    assert astack.redis.get('wxkf:{%s}:authfail:127.0.0.1' % APP_ID) is None


# --- agents over HTTP ---------------------------------------------------------------

def test_agent_lifecycle_over_http(astack):
    h = astack.admin_token
    r = call(astack, 'POST', '/api/v1/agents', h,
             json={'account': 'crud1@apishop', 'nick': '小克',
                   'weight': 3, 'capacity': 4, 'groups': ['vip', 'sales'],
                   'unknown_field': 'ignored'})
    assert r.status_code == 201, r.text
    body = r.json()
    token = body['token']
    assert token.startswith('wxa_') and len(token) == 68
    assert body['agent'] == {'account': 'crud1@apishop', 'nick': '小克',
                             'weight': 3, 'capacity': 4,
                             'groups': ['vip', 'sales'],
                             'status': 'offline', 'load': 0}
    # the token works at once, and is stored only as its hash
    me = call(astack, 'GET', '/api/v1/me', token).json()
    assert me['role'] == 'agent' and me['account'] == 'crud1@apishop'
    assert me['groups'] == ['vip', 'sales'] and me['capacity'] == 4
    keys = astack.redis.keys('*')
    assert not any(token in k for k in keys)
    # the token is never shown again
    r = call(astack, 'GET', '/api/v1/agents/crud1@apishop', h)
    assert r.status_code == 200 and 'token' not in r.text
    assert token not in call(astack, 'GET', '/api/v1/agents', h).text
    # taken account
    r = call(astack, 'POST', '/api/v1/agents', h,
             json={'account': 'crud1@apishop', 'nick': 'x'})
    assert_error(r, 409, 'account_exists')
    # update: only what is given changes
    r = call(astack, 'PATCH', '/api/v1/agents/crud1@apishop', h,
             json={'weight': 7, 'groups': ['vip']})
    assert r.status_code == 200, r.text
    a = r.json()['agent']
    assert (a['weight'], a['groups'], a['nick'], a['capacity']) == \
        (7, ['vip'], '小克', 4)
    assert astack.redis.hget('wxkf:{%s}:agent:crud1@apishop' % APP_ID,
                             'weight') == '7'
    # a new token revokes the old one at once
    r = call(astack, 'POST', '/api/v1/agents/crud1@apishop/token', h)
    assert r.status_code == 200, r.text
    new = r.json()['token']
    assert new != token
    assert_error(call(astack, 'GET', '/api/v1/me', token), 401)
    assert call(astack, 'GET', '/api/v1/me', new).status_code == 200
    # an agent at work cannot be removed (nothing half removed)
    ag = Agent(astack, 'crud1@apishop', new)
    ag.status('online')
    r = call(astack, 'DELETE', '/api/v1/agents/crud1@apishop', h)
    assert_error(r, 409, 'agent_busy')
    assert call(astack, 'GET', '/api/v1/agents/crud1@apishop',
                h).status_code == 200
    ag.status('offline')
    r = call(astack, 'DELETE', '/api/v1/agents/crud1@apishop', h)
    assert r.status_code == 200 and r.json()['removed'] is True, r.text
    assert_error(call(astack, 'GET', '/api/v1/agents/crud1@apishop', h),
                 404, 'unknown_agent')
    assert_error(call(astack, 'DELETE', '/api/v1/agents/crud1@apishop', h),
                 404, 'unknown_agent')
    assert_error(call(astack, 'GET', '/api/v1/me', new), 401)


@pytest.mark.parametrize('body,field', [
    ({'nick': 'x'}, 'account'),
    ({'account': 'ok1', 'nick': 5}, 'nick'),
    ({'account': 'ok1', 'nick': 'x', 'weight': 'heavy'}, 'weight'),
    ({'account': 'ok1', 'nick': 'x', 'weight': 0}, 'weight'),
    ({'account': 'ok1', 'nick': 'x', 'capacity': -1}, 'capacity'),
    ({'account': 'ok1', 'nick': 'x', 'groups': 'vip'}, 'groups'),
    ({'account': 'ok1', 'nick': 'x', 'groups': ['BAD GROUP']}, 'group'),
    ({'account': "x'; DROP TABLE agents;--", 'nick': 'x'}, 'account'),
    ({'account': 'ok1', 'nick': ''}, 'nick'),
])
def test_agent_fields_are_checked_and_named(astack, body, field):
    r = call(astack, 'POST', '/api/v1/agents', astack.admin_token, json=body)
    assert_error(r, 400, 'invalid_field')
    assert field in r.json()['error']['message']


def test_error_shape_for_bodies_methods_and_routes(astack):
    h = astack.admin_token
    r = call(astack, 'POST', '/api/v1/agents', h, data='{"account":',
             headers={'Content-Type': 'application/json'})
    assert_error(r, 400, 'bad_json')
    r = call(astack, 'POST', '/api/v1/agents', h, data='[1,2]')
    assert_error(r, 400, 'bad_json')
    r = call(astack, 'POST', '/api/v1/agents', h,
             data=json.dumps({'account': 'big', 'nick': 'x' * 20000}))
    assert_error(r, 413, 'body_too_large')
    r = call(astack, 'PUT', '/api/v1/agents', h, json={})
    assert_error(r, 405, 'method_not_allowed')
    assert set(x.strip() for x in r.headers['Allow'].split(',')) == \
        {'GET', 'POST'}
    r = call(astack, 'POST', '/api/v1/agents/x/y/z', h)
    assert_error(r, 404, 'not_found')
    r = call(astack, 'PATCH', '/api/v1/agents/ap1@apishop', h, json={})
    assert_error(r, 400, 'invalid_field')
    r = call(astack, 'GET', '/api/v1/sessions?state=sleeping', h)
    assert_error(r, 400, 'invalid_field')
    r = call(astack, 'GET', '/api/v1/queue?limit=0', h)
    assert_error(r, 400, 'invalid_field')


# --- sessions, queue, stats -------------------------------------------------------

def test_all_sessions_queue_and_stats(astack, sim, two):
    h = astack.admin_token
    close_all(astack, two)
    before = call(astack, 'GET', '/api/v1/stats', h).json()
    users = ['oApiQ%02d' % i for i in range(4)]
    for u in users:
        user_writes(sim, u)
    # capacity 1 each: two active, two waiting in arrival order
    r = call(astack, 'GET', '/api/v1/sessions', h)
    assert r.status_code == 200, r.text
    ss = r.json()
    assert ss['total'] == 4
    active = [s for s in ss['sessions'] if s['state'] == 'active']
    waiting = [s for s in ss['sessions'] if s['state'] == 'waiting']
    assert sorted(s['openid'] for s in active) == users[:2]
    assert [s['openid'] for s in waiting] == users[2:]
    assert [s['position'] for s in waiting] == [1, 2]
    r = call(astack, 'GET', '/api/v1/sessions?state=waiting&limit=1', h)
    assert [s['openid'] for s in r.json()['sessions']] == users[2:3]
    assert r.json()['total'] == 2
    q = call(astack, 'GET', '/api/v1/queue', h).json()
    assert q['total'] == 2
    g = q['groups'][0]
    assert g['group'] == '_all' and g['length'] == 2
    assert [w['openid'] for w in g['waiting']] == users[2:]
    assert g['waiting'][0]['since_ms'] <= g['waiting'][1]['since_ms']
    # an agent sees how many wait (a full or paused agent too), not who
    mine = call(astack, 'GET', '/api/v1/me/sessions', two[0].token).json()
    assert mine['queue'] == {'total': 2,
                             'groups': [{'group': '_all', 'length': 2}]}
    # an agent answers: first-response time and messages today
    first = active[0]
    ag = two[0] if first['agent'] == two[0].account else two[1]
    r = call(astack, 'POST', '/api/v1/sessions/%s/messages' % first['openid'],
             ag.token, json={'msgtype': 'text', 'text': {'content': '您好'}})
    assert r.status_code == 200, r.text
    st = call(astack, 'GET', '/api/v1/stats', h).json()
    assert st['messages_in_today'] == before['messages_in_today'] + 4
    assert st['messages_out_today'] == before['messages_out_today'] + 1
    assert st['messages_today'] == st['messages_in_today'] + \
        st['messages_out_today']
    assert st['first_responses_today'] == \
        before['first_responses_today'] + 1
    assert isinstance(st['first_response_median_ms'], int)
    assert 0 <= st['first_response_median_ms'] < 60000
    assert st['waiting'] == 2 and st['sessions_active'] == 2
    assert st['online_rate'] == pytest.approx(
        (st['online'] + st['paused']) / st['agents'])
    # a second answer in the same session is not a first response
    call(astack, 'POST', '/api/v1/sessions/%s/messages' % first['openid'],
         ag.token, json={'msgtype': 'text', 'text': {'content': '还在吗'}})
    st2 = call(astack, 'GET', '/api/v1/stats', h).json()
    assert st2['first_responses_today'] == st['first_responses_today']
    for u in users:
        call(astack, 'POST', '/api/v1/sessions/%s/close' % u, h, json={})


def test_colleagues_show_nick_status_load_and_groups(astack, sim, two):
    """What the transfer dialog lists: every agent of the account by
    nickname with its status, load and the capacity routing applies, and
    the groups with how many are online and waiting; no token."""
    h = astack.admin_token
    close_all(astack, two)
    c = Agent(astack, 'apc@apishop',
              add_agent(astack, 'apc@apishop', nick='售后小王', capacity=3,
                        groups=('售后',)))
    c.status('paused')            # paused: routing gives it no one
    user_writes(sim, 'oApiColl1')
    ag = owner(astack, 'oApiColl1')
    assert ag in (two[0].account, two[1].account)

    def colleagues(token):
        r = call(astack, 'GET', '/api/v1/me/colleagues', token)
        assert r.status_code == 200, r.text
        assert 'token' not in r.text and 'sha256' not in r.text
        return r.json()

    got = colleagues(two[1].token)
    by = {a['account']: a for a in got['agents']}
    assert by['apc@apishop'] == {
        'account': 'apc@apishop', 'nick': '售后小王', 'status': 'paused',
        'load': 0, 'capacity': 3, 'weight': 1, 'groups': ['售后']}
    assert by[ag]['status'] == 'online' and by[ag]['load'] == 1
    assert by[ag]['capacity'] == 1            # [routing] default_capacity
    other = [a for a in two if a.account != ag][0]
    assert by[other.account]['load'] == 0
    assert [a['account'] for a in got['agents']] == sorted(by)
    assert {'group': '售后', 'online': 0, 'waiting': 0} in got['groups']
    assert colleagues(h) == got               # an admin sees the same
    c.status('online')
    got = colleagues(two[0].token)
    assert {'group': '售后', 'online': 1, 'waiting': 0} in got['groups']
    c.status('offline')
    by = {a['account']: a for a in colleagues(two[0].token)['agents']}
    assert by['apc@apishop']['status'] == 'offline'
    call(astack, 'POST', '/api/v1/sessions/oApiColl1/close', h, json={})


# --- media upload -----------------------------------------------------------------

def test_image_upload_then_send(astack, sim, two):
    openid = 'oApiImg01'
    user_writes(sim, openid)
    ag = next(a for a in two if a.account == owner(astack, openid))
    r = call(astack, 'POST', '/api/v1/media', ag.token, data=PNG,
             headers={'Content-Type': 'image/png'})
    assert r.status_code == 200, r.text
    mid = r.json()['media_id']
    r = call(astack, 'POST', '/api/v1/sessions/%s/messages' % openid,
             ag.token, json={'msgtype': 'image', 'image': {'media_id': mid}})
    assert r.status_code == 200, r.text
    sent = [s for s in sim.sent() if s['body']['touser'] == openid]
    assert sent[-1]['body']['image']['media_id'] == mid
    assert sent[-1]['body']['customservice']['kf_account'] == ag.account
    # the type must match the bytes, and images are bounded
    r = call(astack, 'POST', '/api/v1/media', ag.token, data=PNG,
             headers={'Content-Type': 'image/jpeg'})
    assert_error(r, 400, 'unsupported_media')
    r = call(astack, 'POST', '/api/v1/media', ag.token, data=b'<svg/>',
             headers={'Content-Type': 'image/svg+xml'})
    assert_error(r, 400, 'unsupported_media')
    r = call(astack, 'POST', '/api/v1/media', ag.token,
             data=PNG + b'\0' * (2 * 1024 * 1024),
             headers={'Content-Type': 'image/png'})
    assert r.status_code == 413
    call(astack, 'POST', '/api/v1/sessions/%s/close' % openid,
         astack.admin_token, json={})


def uploaded(astack, token, data, ctype, query=''):
    r = call(astack, 'POST', '/api/v1/media' + query, token, data=data,
             headers={'Content-Type': ctype})
    return r


def test_voice_and_video_uploads_are_checked_then_sent(astack, sim, two):
    """An agent sends a voice (AMR, MP3) and a video with its thumbnail:
    each recognised from its bytes, WeChat's limits checked before the
    upload, and the simulator gets voice and video messages."""
    openid = 'oApiVoice01'
    user_writes(sim, openid)
    ag = next(a for a in two if a.account == owner(astack, openid))
    state = sim.httpd.state
    mids = {}
    for name, data, ctype, query, want in (
            ('amr', tone(3.0), 'audio/amr', '', 'voice'),
            ('mp3', tone_mp3(2.0), 'audio/mpeg', '', 'voice'),
            ('mp4', b'\0\0\0\x18ftypmp42' + b'\0' * 3000, 'video/mp4', '',
             'video'),
            ('thumb', JPEG, 'image/jpeg', '?type=thumb', 'thumb')):
        r = uploaded(astack, ag.token, data, ctype, query)
        assert r.status_code == 200, (name, r.text)
        assert r.json()['type'] == want, r.json()
        mids[name] = r.json()['media_id']
        # WeChat (the simulator) got it as that type, bytes unchanged
        assert state.media[mids[name]]['type'] == want, name
        assert state.media[mids[name]]['data'] == data, name
    for body in ({'msgtype': 'voice', 'voice': {'media_id': mids['amr']}},
                 {'msgtype': 'voice', 'voice': {'media_id': mids['mp3']}},
                 {'msgtype': 'video', 'video': {
                     'media_id': mids['mp4'], 'thumb_media_id': mids['thumb'],
                     'title': '安装视频', 'description': '第 2 步'}}):
        r = call(astack, 'POST', '/api/v1/sessions/%s/messages' % openid,
                 ag.token, json=body)
        assert r.status_code == 200, r.text
        got = [x for x in sim.sent() if x['body']['touser'] == openid][-1]
        assert got['body']['msgtype'] == body['msgtype'], got
        assert got['body'][body['msgtype']] == body[body['msgtype']], got
    call(astack, 'POST', '/api/v1/sessions/%s/close' % openid,
         astack.admin_token, json={})


def test_uploads_wechat_would_refuse_never_reach_it(astack, sim, two):
    tok = two[0].token
    before = len(sim.httpd.state.media)
    cases = (
        (tone(61.0), 'audio/amr', '', 400, 'voice_too_long'),
        (tone_mp3(61.0), 'audio/mpeg', '', 400, 'voice_too_long'),
        (b'#!AMR\n\x3c\x01\x02', 'audio/amr', '', 400, 'bad_voice'),
        (b'ID3\x04' + b'\0' * (2 * 1024 * 1024), 'audio/mpeg', '', 413,
         'media_too_large'),
        (JPEG + b'\0' * (64 * 1024), 'image/jpeg', '?type=thumb', 413,
         'media_too_large'),
        (PNG, 'image/png', '?type=thumb', 400, 'unsupported_media'),
        (b'\0\0\0\x18ftypmp42' + b'\0' * 100, 'audio/amr', '', 400,
         'unsupported_media'),
        (b'%PDF-1.7\n' + b'\0' * 100, 'application/pdf', '', 400,
         'unsupported_media'),
        (b'PK\x03\x04' + b'\0' * 100, 'application/zip', '', 400,
         'unsupported_media'),
    )
    for data, ctype, query, status, code in cases:
        r = uploaded(astack, tok, data, ctype, query)
        assert_error(r, status, code)
    # a video over 10 MiB stops at nginx
    r = uploaded(astack, tok, b'\0\0\0\x18ftypmp42' +
                 b'\0' * (10 * 1024 * 1024), 'video/mp4')
    assert r.status_code == 413
    assert len(sim.httpd.state.media) == before, 'nothing was uploaded'
    # the usual authorization: a token, agent or admin
    r = uploaded(astack, None, tone(1.0), 'audio/amr')
    assert_error(r, 401, 'unauthorized')
    r = uploaded(astack, astack.admin_token, tone(1.0), 'audio/amr')
    assert r.status_code == 200 and r.json()['type'] == 'voice', r.text


# --- real-time push -----------------------------------------------------------------

class SSE:
    """Reads an EventSource stream on a thread: (id, data, t) per event."""

    def __init__(self, url):
        self.closed = False
        self.events, self.resp = [], requests.get(
            url, stream=True, timeout=(5, 20),
            headers={'Accept': 'text/event-stream'})
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        buf, data = b'', []
        try:
            # nginx streams it unframed (no length, no chunks): read bytes
            # as they come
            for chunk in self.resp.iter_content(chunk_size=1):
                buf += chunk
                while b'\n' in buf:
                    line, buf = buf.split(b'\n', 1)
                    line = line.decode().rstrip('\r')
                    if line.startswith('data:'):
                        data.append(line[5:].lstrip())
                    elif line == '' and data:
                        self.events.append((json.loads('\n'.join(data)),
                                            time.monotonic()))
                        data = []
                if self.closed:
                    return
        except Exception:       # the stream ended or timed out
            pass

    def entries(self):
        return [e for d, _ in self.events for e in d['events']]

    def close(self):
        # the reader thread ends at its next chunk or read timeout
        self.closed = True


def content(e):
    """The text of a msg_in feed entry (its payload holds WeChat's
    fields)."""
    if e.get('type') != 'msg_in':
        return None
    return json.loads(e.get('payload') or '{}').get('Content')


def test_push_reaches_the_agent_within_a_second(astack, sim, two):
    a = two[0]
    r = call(astack, 'POST', '/api/v1/me/stream-ticket', a.token)
    assert r.status_code == 200, r.text
    t = r.json()
    assert t['expires_in'] == 60 and len(t['ticket']) == 64
    assert a.token not in t['url']
    feed = call(astack, 'GET', '/api/v1/me/events', a.token).json()
    cursor = feed['next']
    while feed['events']:
        feed = call(astack, 'GET', '/api/v1/me/events?after=' + cursor,
                    a.token).json()
        cursor = feed['next']
    s = SSE(astack.base + t['url'])
    try:
        assert s.resp.status_code == 200
        assert s.resp.headers['Content-Type'].startswith('text/event-stream')
        # make sure the user lands on a: b pauses
        two[1].status('paused')
        openid = 'oApiPush01'
        latencies = []
        for i in range(5):
            t0 = time.monotonic()
            user_writes(sim, openid, '第%d条' % i)
            wait_until(lambda: any(content(e) == '第%d条' % i
                                   for e in s.entries()), 5,
                       what='message %d pushed' % i)
            got = next(tt for d, tt in s.events for e in d['events']
                       if content(e) == '第%d条' % i)
            latencies.append(got - t0)
        print('push latencies (s):', ['%.3f' % x for x in latencies])
        assert max(latencies) < 1.0, latencies
        # the pushed entries are the feed's, same ids, same order
        feed = call(astack, 'GET', '/api/v1/me/events?after=' + cursor,
                    a.token).json()
        pushed = {e['id']: e for e in s.entries()}
        for e in feed['events']:
            assert pushed.get(e['id']) == e
        # each message names the id before it: a console can tell a gap
        msgs = [d for d, _ in s.events]
        for before, after in zip(msgs, msgs[1:]):
            assert after['prev'] == before['events'][-1]['id']
        ids = [e['id'] for e in s.entries()]
        assert ids == sorted(ids, key=lambda x: tuple(map(int, x.split('-'))))
        assert len(ids) == len(set(ids))
    finally:
        s.close()
        two[1].status('online')
        call(astack, 'POST', '/api/v1/sessions/oApiPush01/close',
             astack.admin_token, json={})


def test_stream_needs_a_valid_ticket(astack, two):
    for q in ('', '?ticket=', '?ticket=' + '0' * 64, '?ticket=../../x',
              '?ticket=' + two[0].token):
        r = requests.get(astack.base + '/api/v1/me/stream' + q, timeout=5)
        assert_error(r, 401, 'unauthorized')
    # the internal subscriber location is not reachable from outside
    r = requests.get(astack.base + '/internal/sub/ap1@apishop', timeout=5)
    assert r.status_code == 404
    # and nobody publishes through the public port
    r = requests.post(astack.base + '/pub/ap1@apishop', timeout=5,
                      data='{"events":[]}')
    assert r.status_code in (404, 405)
    # a ticket of an agent removed since is refused
    t = call(astack, 'POST', '/api/v1/me/stream-ticket', two[0].token).json()
    astack.redis.srem('wxkf:{%s}:agents' % APP_ID, two[0].account)
    try:
        r = requests.get(astack.base + t['url'], timeout=5)
        assert_error(r, 401, 'unauthorized')
    finally:
        astack.redis.sadd('wxkf:{%s}:agents' % APP_ID, two[0].account)


def test_feed_entries_keep_their_cursor_and_tell_the_agent_left(astack, sim,
                                                                  two):
    a, b = two
    openid = 'oApiFeed01'
    user_writes(sim, openid)
    me = a if owner(astack, openid) == a.account else b
    other = b if me is a else a
    start = call(astack, 'GET', '/api/v1/me/events?limit=500',
                 me.token).json()
    cursor = start['next']
    while start['events']:
        start = call(astack, 'GET', '/api/v1/me/events?limit=500&after=' +
                     cursor, me.token).json()
        cursor = start['next'] if start['events'] else cursor
    r = call(astack, 'POST', '/api/v1/sessions/%s/messages' % openid,
             me.token, json={'msgtype': 'text', 'text': {'content': '好'}})
    assert r.status_code == 200, r.text
    sent_id = r.json()['id']
    r = call(astack, 'POST', '/api/v1/sessions/%s/transfer' % openid,
             me.token, json={'to_agent': other.account})
    assert r.status_code == 200, r.text
    evs = call(astack, 'GET', '/api/v1/me/events?after=' + cursor,
               me.token).json()['events']
    # every entry's id is its stream id (the cursor); a message's own id
    # is msg_id
    assert all(re.fullmatch(r'\d+-\d+', e['id']) for e in evs)
    out = [e for e in evs if e['type'] == 'msg_out']
    assert [e['msg_id'] for e in out] == [sent_id]
    dl = [e for e in evs if e['type'] == 'delivery']
    assert [e['msg_id'] for e in dl] == [sent_id]
    # the agent the session left hears of it
    rel = [e for e in evs if e['type'] == 'release']
    assert len(rel) == 1 and rel[0]['openid'] == openid
    assert rel[0]['reason'] == 'transfer'
    call(astack, 'POST', '/api/v1/sessions/%s/close' % openid,
         astack.admin_token, json={})


# --- found in review: revocation, tickets, stale feeds, errors ----------------------

def test_a_ticket_works_once_and_only_with_the_token_it_came_from(astack):
    h = astack.admin_token
    r = call(astack, 'POST', '/api/v1/agents', h,
             json={'account': 'tk1@apishop', 'nick': 'tk'})
    assert r.status_code == 201, r.text
    tok = r.json()['token']

    def ticket():
        r = call(astack, 'POST', '/api/v1/me/stream-ticket', tok)
        assert r.status_code == 200, r.text
        return r.json()['url']

    url = ticket()
    s = SSE(astack.base + url)
    assert s.resp.status_code == 200
    # used once: a second subscription with it is refused
    assert_error(requests.get(astack.base + url, timeout=5), 401)
    # a ticket issued before a new token is worthless after it, and the
    # streams already open are cut
    url2 = ticket()
    r = call(astack, 'POST', '/api/v1/agents/tk1@apishop/token', h)
    assert r.status_code == 200
    tok = r.json()['token']
    assert_error(requests.get(astack.base + url2, timeout=5), 401)
    wait_until(lambda: not s.thread.is_alive(), 5, what='stream closed')
    s.close()
    # removing the agent also empties its feed: the account made again
    # starts from nothing
    astack.redis.xadd('wxkf:{%s}:inbox:tk1@apishop' % APP_ID,
                      {'type': 'msg_in', 'openid': 'oSecret',
                       'payload': '{"Content":"my phone is 138..."}'})
    assert call(astack, 'GET', '/api/v1/me/events', tok).json()['events']
    assert call(astack, 'DELETE', '/api/v1/agents/tk1@apishop',
                h).status_code == 200
    r = call(astack, 'POST', '/api/v1/agents', h,
             json={'account': 'tk1@apishop', 'nick': 'tk again'})
    assert r.status_code == 201
    new = r.json()['token']
    assert call(astack, 'GET', '/api/v1/me/events', new).json()['events'] \
        == []
    call(astack, 'DELETE', '/api/v1/agents/tk1@apishop', h)


def test_error_messages_are_valid_json_whatever_they_quote(astack):
    r = call(astack, 'POST', '/api/v1/agents', astack.admin_token,
             json={'account': 'q1', 'nick': 'q', 'groups': ['_all']})
    assert_error(r, 400, 'invalid_field')
    assert '"_all"' in r.json()['error']['message']


def test_a_refused_first_answer_is_not_a_first_response(astack, sim, two):
    h = astack.admin_token
    openid = 'oApiFrt01'
    user_writes(sim, openid)
    ag = next(a for a in two if a.account == owner(astack, openid))
    before = call(astack, 'GET', '/api/v1/stats', h).json()
    sim.fault(path='/cgi-bin/message/custom/send', kind='errcode',
              errcode=40003, count=1)
    r = call(astack, 'POST', '/api/v1/sessions/%s/messages' % openid,
             ag.token, json={'msgtype': 'text', 'text': {'content': 'x'}})
    assert r.status_code == 502, r.text
    st = call(astack, 'GET', '/api/v1/stats', h).json()
    assert st['first_responses_today'] == before['first_responses_today']
    assert st['messages_out_today'] == before['messages_out_today']
    r = call(astack, 'POST', '/api/v1/sessions/%s/messages' % openid,
             ag.token, json={'msgtype': 'text', 'text': {'content': 'y'}})
    assert r.status_code == 200, r.text
    st = call(astack, 'GET', '/api/v1/stats', h).json()
    assert st['first_responses_today'] == \
        before['first_responses_today'] + 1
    assert st['messages_out_today'] == before['messages_out_today'] + 1
    call(astack, 'POST', '/api/v1/sessions/%s/close' % openid, h, json={})


@pytest.mark.parametrize('body', [
    {'to_agent': "x'; DEL *"}, {'to_agent': 'a' * 49}, {'to_group': 'a:b'},
    {'to_group': 'VIP'}, {'to_agent': 'x', 'to_group': 'y'}, {},
    {'to_agent': 5}, {'to_group': ['g']},
])
def test_transfer_targets_are_checked_before_redis(astack, sim, two, body):
    openid = 'oApiXfer01'
    user_writes(sim, openid)
    ag = next(a for a in two if a.account == owner(astack, openid))
    r = call(astack, 'POST', '/api/v1/sessions/%s/transfer' % openid,
             ag.token, json=body)
    assert_error(r, 400, 'invalid_field')
    assert not astack.redis.keys('wxkf:*a:b*')


@pytest.mark.parametrize('method,path', SUPERVISE_ROUTES)
def test_roles_on_the_supervisors_routes(astack, two, cookies, method,
                                         path):
    """On a user without a session: an agent may whisper only into its
    own session (here: none) and never takes over; an admin and a
    supervisor pass to the session check, but take-over needs an agent
    account (neither has one here); a cookie needs its CSRF token."""
    body, takeover = {'text': 'x'}, path.endswith('/takeover')

    def call_as(headers):
        return requests.request(method, astack.base + path, json=body,
                                headers=headers, timeout=10)

    for h in ({'Authorization': 'Bearer ' + two[0].token},
              cookies['agent']):
        if takeover:
            assert_error(call_as(h), 403, 'forbidden')
        else:
            assert_error(call_as(h), 404, 'no_session')
    for h in ({'Authorization': 'Bearer ' + astack.admin_token},
              cookies['admin'], cookies['supervisor']):
        if takeover:
            assert_error(call_as(h), 409, 'no_agent_identity')
        else:
            assert_error(call_as(h), 404, 'no_session')
    assert_error(call_as({'Cookie': cookies['supervisor']['Cookie']}), 403,
                 'csrf_failed')
