"""Staff users who sign in with a password (docs/api.md, "Staff sign-in";
docs/security.md): `wxkf user add|passwd|disable|enable|list`, POST
/api/v1/auth/login -> a session cookie (HttpOnly, SameSite=Strict) and a
CSRF token, GET /api/v1/auth/me, sign-out of one session and of all,
password change (the old one required) and an admin's reset, the
lock-out of a login after wrong passwords (per login, not per address),
CSRF refusals, and the roles: an agent's cookie works on the agent
routes as its token does, a supervisor reads what an admin reads and
writes nothing, an admin's cookie is the admin token."""

import hashlib
import subprocess

import psycopg2
import pytest
import requests

from conftest import APP_ID, assert_error, run_stack, wxkf_bin
from test_routing import Agent, add_agent

PW = 'correct horse 马 battery'


@pytest.fixture(scope='module')
def sstack():
    yield from run_stack('staff', workers=2)


def user_cmd(stack, *args, password=None):
    return subprocess.run([wxkf_bin(), 'user', args[0], '-c', stack.conf]
                          + list(args[1:]), capture_output=True, text=True,
                          input=password, timeout=60)


def add_user(stack, login, role, agent=None, password=PW, name=None):
    extra = ['--agent', agent] if agent else []
    out = user_cmd(stack, 'add', '--login', login, '--name',
                   name or login, '--role', role, *extra,
                   password=password + '\n')
    assert out.returncode == 0, out.stderr
    return login


def login(stack, who, password=PW):
    return requests.post(stack.base + '/api/v1/auth/login',
                         json={'login': who, 'password': password},
                         timeout=30)


class Cookie:
    """A signed-in browser: the cookie and the CSRF token of one login."""

    def __init__(self, stack, who, password=PW):
        r = login(stack, who, password)
        assert r.status_code == 200, r.text
        self.stack, self.me = stack, r.json()
        self.sid = r.cookies.get('wxkf_sid')
        assert self.sid and len(self.sid) == 64
        self.csrf = self.me['csrf_token']

    def call(self, method, path, csrf=True, **kw):
        h = {'Cookie': 'wxkf_sid=' + self.sid}
        if csrf:
            h['X-CSRF-Token'] = self.csrf
        return requests.request(method, self.stack.base + path, headers=h,
                                timeout=30, **kw)


@pytest.fixture(scope='module')
def people(sstack):
    tok = add_agent(sstack, 'st1@shop')
    add_user(sstack, 'wang', 'agent', agent='st1@shop', name='客服小王')
    add_user(sstack, 'lead', 'supervisor')
    add_user(sstack, 'boss', 'admin')
    return {'token': tok}


@pytest.fixture(autouse=True)
def no_locks(sstack):
    for k in sstack.redis.keys('wxkf:{%s}:staff:lock:*' % APP_ID):
        sstack.redis.delete(k)


def test_user_add_refuses_a_short_password_and_reads_no_argv(sstack, people):
    out = user_cmd(sstack, 'add', '--login', 'shorty', '--name', 's',
                   '--role', 'admin', password='short\n')
    assert out.returncode == 1 and 'password refused' in out.stderr
    out = user_cmd(sstack, 'add', '--login', 'x', '--name', 'x', '--role',
                   'admin', '--password', PW, password=PW + '\n')
    assert out.returncode == 2
    out = user_cmd(sstack, 'add', '--login', 'ghost', '--name', 'g',
                   '--role', 'agent', '--agent', 'nobody', password=PW + '\n')
    assert out.returncode == 1 and 'no such' in out.stderr
    out = user_cmd(sstack, 'add', '--login', 'wang', '--name', 'again',
                   '--role', 'admin', password=PW + '\n')
    assert out.returncode == 1 and 'taken' in out.stderr


def test_the_hash_is_argon2id_and_never_listed(sstack, people):
    out = user_cmd(sstack, 'list', '--json')
    assert out.returncode == 0, out.stderr
    assert 'argon2' not in out.stdout and PW not in out.stdout
    assert '"login":"wang"' in out.stdout and '"agent":"st1@shop"' in out.stdout
    conn = psycopg2.connect(host='127.0.0.1', port=sstack.pg_port,
                            dbname='wxkf', user='wxkf')
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT password_hash || '|' || app_id "
                        "FROM staff_users WHERE login = 'wang'")
            row = cur.fetchone()[0]
    finally:
        conn.close()
    assert row.startswith('$argon2id$v=19$m=19456,t=2,p=1$'), row
    assert row.endswith('|' + APP_ID)


def test_login_sets_a_strict_httponly_cookie_and_me_says_who(sstack, people):
    r = login(sstack, 'wang')
    assert r.status_code == 200, r.text
    c = r.headers['Set-Cookie']
    assert c.startswith('wxkf_sid=') and 'HttpOnly' in c
    assert 'SameSite=Strict' in c and 'Path=/' in c
    assert 'Secure' not in c            # cookie_secure = 0 in test stacks
    assert 'Max-Age=43200' in c
    body = r.json()
    assert body['login'] == 'wang' and body['role'] == 'agent'
    assert body['agent'] == 'st1@shop' and body['name'] == '客服小王'
    sid = r.cookies['wxkf_sid']
    # only the SHA-256 of the id is a key in Redis
    keys = sstack.redis.keys('wxkf:{%s}:staff:s:*' % APP_ID)
    assert ('wxkf:{%s}:staff:s:%s' % (APP_ID, hashlib.sha256(
        sid.encode()).hexdigest())) in keys
    assert not [k for k in keys if sid in k]
    me = requests.get(sstack.base + '/api/v1/auth/me', timeout=10,
                      headers={'Cookie': 'wxkf_sid=' + sid})
    assert me.status_code == 200 and me.json()['csrf_token'] == \
        body['csrf_token']


def test_wrong_password_and_unknown_login_look_the_same(sstack, people):
    assert_error(login(sstack, 'wang', 'wrong password!'), 401,
                 'wrong_credentials')
    assert_error(login(sstack, 'nobody-here', PW), 401, 'wrong_credentials')
    assert_error(login(sstack, 'Bad Login!', PW), 401, 'wrong_credentials')
    r = requests.post(sstack.base + '/api/v1/auth/login', json={'login': 'wang'},
                      timeout=10)
    assert_error(r, 400, 'invalid_field')
    # what an HTML form of another site could send: refused before anything
    r = requests.post(sstack.base + '/api/v1/auth/login', timeout=10,
                      data=('{"login":"wang","password":"%s"}' % PW).encode(),
                      headers={'Content-Type': 'text/plain'})
    assert_error(r, 400, 'bad_body')


def test_lock_out_is_per_login_with_a_growing_delay(sstack, people):
    for _ in range(4):                      # STAFF_LOCK_FREE
        assert_error(login(sstack, 'lead', 'not it at all'), 401)
    assert_error(login(sstack, 'lead', 'not it at all'), 401)  # 5th: 1 s
    r = login(sstack, 'lead')                # right, but locked
    assert_error(r, 429, 'account_locked')
    assert 1 <= int(r.headers['Retry-After']) <= 1
    # another login from the same address is not locked
    assert login(sstack, 'boss').status_code == 200
    key = 'wxkf:{%s}:staff:lock:lead' % APP_ID
    assert sstack.redis.hget(key, 'n') == '5'
    # the lock ends (moved to the past rather than waited for); the next
    # wrong one locks for 2 s, then 4 s
    sstack.redis.hset(key, 'until', '0')
    assert_error(login(sstack, 'lead', 'not it at all'), 401)
    r = login(sstack, 'lead')
    assert_error(r, 429, 'account_locked')
    assert int(r.headers['Retry-After']) == 2
    sstack.redis.hset(key, 'until', '0')
    assert login(sstack, 'lead').status_code == 200   # a right one clears
    assert not sstack.redis.exists(key)


def test_logout_ends_the_session_and_logout_all_every_one(sstack, people):
    a, b = Cookie(sstack, 'boss'), Cookie(sstack, 'boss')
    assert a.call('GET', '/api/v1/agents').status_code == 200
    r = a.call('POST', '/api/v1/auth/logout')
    assert r.status_code == 200 and 'Max-Age=0' in r.headers['Set-Cookie']
    assert_error(a.call('GET', '/api/v1/agents'), 401, 'not_signed_in')
    assert b.call('GET', '/api/v1/agents').status_code == 200
    c = Cookie(sstack, 'boss')
    r = c.call('POST', '/api/v1/auth/logout-all')
    assert r.status_code == 200 and r.json()['ended'] >= 2   # a, c, ...
    assert_error(b.call('GET', '/api/v1/agents'), 401, 'not_signed_in')
    assert_error(c.call('GET', '/api/v1/auth/me'), 401, 'not_signed_in')


def test_state_changes_by_cookie_need_the_csrf_token(sstack, people):
    w = Cookie(sstack, 'wang')
    for csrf in (False, 'x' * 64, w.csrf[:-1] + ('0' if w.csrf[-1] != '0'
                                                   else '1')):
        h = {'Cookie': 'wxkf_sid=' + w.sid}
        if csrf:
            h['X-CSRF-Token'] = csrf
        r = requests.post(sstack.base + '/api/v1/me/status', headers=h,
                          json={'status': 'online'}, timeout=10)
        assert_error(r, 403, 'csrf_failed')
    assert w.call('POST', '/api/v1/me/status',
                  json={'status': 'online'}).json()['status'] == 'online'
    # reads need none; bearer tokens need none
    assert w.call('GET', '/api/v1/me/sessions', csrf=False).status_code == 200
    t = Agent(sstack, 'st1@shop', people['token'])
    assert t.status('paused')['status'] == 'paused'
    # the logout of a cookie is a state change too
    assert_error(w.call('POST', '/api/v1/auth/logout', csrf=False), 403,
                 'csrf_failed')


def test_an_agent_cookie_is_its_agent(sstack, people):
    w = Cookie(sstack, 'wang')
    me = w.call('GET', '/api/v1/me').json()
    assert me['account'] == 'st1@shop' and me['role'] == 'agent'
    assert me['login'] == 'wang'
    r = w.call('POST', '/api/v1/me/status', json={'status': 'online'})
    assert r.status_code == 200 and r.json()['account'] == 'st1@shop'
    assert w.call('GET', '/api/v1/me/sessions').json()['account'] == \
        'st1@shop'
    t = w.call('POST', '/api/v1/me/stream-ticket')
    assert t.status_code == 200, t.text
    assert_error(w.call('GET', '/api/v1/agents'), 403, 'forbidden')
    assert_error(w.call('GET', '/api/v1/staff'), 403, 'forbidden')
    w.call('POST', '/api/v1/me/status', json={'status': 'offline'})


def test_a_supervisor_reads_like_an_admin_and_writes_nothing(sstack, people):
    s = Cookie(sstack, 'lead')
    assert s.call('GET', '/api/v1/me').json() == {
        'role': 'supervisor', 'login': 'lead', 'name': 'lead'}
    for path in ('/api/v1/agents', '/api/v1/sessions', '/api/v1/queue',
                 '/api/v1/stats', '/api/v1/staff', '/api/v1/me/colleagues',
                 '/api/v1/agents/st1@shop'):
        assert s.call('GET', path).status_code == 200, path
    for method, path in (('POST', '/api/v1/agents'),
                         ('PATCH', '/api/v1/agents/st1@shop'),
                         ('POST', '/api/v1/labels'),
                         ('POST', '/api/v1/staff/wang/password'),
                         ('POST', '/api/v1/sessions/oNobody/close')):
        assert_error(s.call(method, path, json={}), 403, 'read_only')
    assert_error(s.call('GET', '/api/v1/me/sessions'), 403, 'forbidden')
    # its own sign-in is its own to change
    assert s.call('POST', '/api/v1/auth/logout').status_code == 200


def test_an_admin_cookie_is_the_admin(sstack, people):
    a = Cookie(sstack, 'boss')
    assert a.call('GET', '/api/v1/me').json()['role'] == 'admin'
    r = a.call('POST', '/api/v1/agents', json={'account': 'st9', 'nick': 'n'})
    assert r.status_code == 201, r.text
    assert a.call('DELETE', '/api/v1/agents/st9').status_code in (200, 204)


def test_password_change_needs_the_old_one_and_ends_other_sessions(sstack,
                                                                   people):
    add_user(sstack, 'chg', 'admin')
    a, b = Cookie(sstack, 'chg'), Cookie(sstack, 'chg')
    new = 'another long secret'
    assert_error(a.call('POST', '/api/v1/auth/password',
                        json={'old_password': 'wrong guess!',
                              'new_password': new}), 401, 'wrong_credentials')
    assert_error(a.call('POST', '/api/v1/auth/password',
                        json={'old_password': PW, 'new_password': 'short'}),
                 400, 'weak_password')
    r = a.call('POST', '/api/v1/auth/password',
               json={'old_password': PW, 'new_password': new})
    assert r.status_code == 200 and r.json()['other_sessions_ended'] == 1
    assert a.call('GET', '/api/v1/auth/me').status_code == 200
    assert_error(b.call('GET', '/api/v1/auth/me'), 401, 'not_signed_in')
    assert_error(login(sstack, 'chg'), 401, 'wrong_credentials')
    assert login(sstack, 'chg', new).status_code == 200
    # a bearer token is no password sign-in
    r = requests.post(sstack.base + '/api/v1/auth/password', timeout=10,
                      headers={'Authorization': 'Bearer ' +
                               sstack.admin_token},
                      json={'old_password': PW, 'new_password': new})
    assert_error(r, 401, 'not_signed_in')


def test_admin_reset_and_disable(sstack, people):
    add_user(sstack, 'rst', 'supervisor')
    s = Cookie(sstack, 'rst')
    h = {'Authorization': 'Bearer ' + sstack.admin_token}
    new = 'reset by the admin'
    r = requests.post(sstack.base + '/api/v1/staff/rst/password', headers=h,
                      json={'new_password': new}, timeout=30)
    assert r.status_code == 200 and r.json()['sessions_ended'] == 1
    assert_error(s.call('GET', '/api/v1/auth/me'), 401, 'not_signed_in')
    assert login(sstack, 'rst', new).status_code == 200
    r = requests.post(sstack.base + '/api/v1/staff/nobody/password',
                      headers=h, json={'new_password': new}, timeout=30)
    assert_error(r, 404, 'unknown_user')
    w = Cookie(sstack, 'wang')
    assert_error(w.call('POST', '/api/v1/staff/rst/password',
                        json={'new_password': new}), 403, 'forbidden')
    # disable: sessions end at once and the right password says disabled
    s = Cookie(sstack, 'rst', new)
    out = user_cmd(sstack, 'disable', '--login', 'rst')
    assert out.returncode == 0 and ' session(s) ended' in out.stdout
    assert_error(s.call('GET', '/api/v1/auth/me'), 401, 'not_signed_in')
    assert_error(login(sstack, 'rst', new), 403, 'account_disabled')
    assert_error(login(sstack, 'rst', 'wrong password'), 401,
                 'wrong_credentials')
    assert user_cmd(sstack, 'enable', '--login', 'rst').returncode == 0
    assert login(sstack, 'rst', new).status_code == 200
    # passwd from the command line ends sessions too
    s = Cookie(sstack, 'rst', new)
    out = user_cmd(sstack, 'passwd', '--login', 'rst', password=PW + '\n')
    assert out.returncode == 0, out.stderr
    assert_error(s.call('GET', '/api/v1/auth/me'), 401, 'not_signed_in')
    assert login(sstack, 'rst').status_code == 200


def test_a_removed_agent_signs_its_user_out(sstack, people):
    add_agent(sstack, 'gone1')
    add_user(sstack, 'gone', 'agent', agent='gone1')
    g = Cookie(sstack, 'gone')
    assert g.call('GET', '/api/v1/me').status_code == 200
    out = subprocess.run([wxkf_bin(), 'agent', 'remove', '-c', sstack.conf,
                          '--account', 'gone1'], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert_error(g.call('GET', '/api/v1/me'), 401, 'not_signed_in')
