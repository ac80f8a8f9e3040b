"""Named API tokens of machine clients (docs/api.md, "API tokens"): an
admin makes one (POST /api/v1/tokens, `wxkf token add`) with a name and
scopes and sees its secret once; the list shows each token with its last
use (written at most once a minute), never a secret; a token is served
as an admin on the routes its scopes cover and refused 403 scope on the
others; a revoked token is refused from the next request on, by every
worker; a token of another account is no token here; a wrong one is
counted by the brake like any bad token."""

import hashlib
import subprocess

import psycopg2
import pytest
import requests

from conftest import APP_ID, assert_error, run_stack, wxkf_bin
from test_routing import add_agent


@pytest.fixture(scope='module')
def tstack():
    yield from run_stack('tokens', workers=2)


@pytest.fixture(autouse=True)
def no_brake(tstack):
    """Each test starts with no failed attempts counted (401s of revoked
    tokens count)."""
    for k in tstack.redis.keys('wxkf:{%s}:authfail:*' % APP_ID):
        tstack.redis.delete(k)


def call(stack, method, path, token=None, **kw):
    h = {'Authorization': 'Bearer ' + token} if token else {}
    return requests.request(method, stack.base + path, headers=h,
                            timeout=30, **kw)


def make(stack, name, scopes):
    r = call(stack, 'POST', '/api/v1/tokens', stack.admin_token,
             json={'name': name, 'scopes': scopes})
    assert r.status_code == 201, r.text
    return r.json()


def listed(stack, tid):
    r = call(stack, 'GET', '/api/v1/tokens', stack.admin_token)
    assert r.status_code == 200, r.text
    rows = [t for t in r.json()['tokens'] if t['id'] == tid]
    return rows[0] if rows else None


def sql(stack, query, args=()):
    conn = psycopg2.connect(host='127.0.0.1', port=stack.pg_port,
                            dbname='wxkf', user='wxkf')
    try:
        with conn, conn.cursor() as cur:
            cur.execute(query, args)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def test_create_list_use_revoke(tstack):
    t = make(tstack, 'crm sync', ['read', 'agents'])
    secret = t['token']
    assert secret.startswith('wxt_') and len(secret) == 68
    assert t['scopes'] == ['read', 'agents'] and t['created_by'] == 'admin'
    assert t['last_used_at'] is None and t['revoked_at'] is None
    r = call(tstack, 'GET', '/api/v1/tokens', tstack.admin_token)
    assert secret not in r.text and 'token_sha256' not in r.text
    row = listed(tstack, t['id'])
    assert row['name'] == 'crm sync' and row['last_used_at'] is None
    # only the SHA-256 is stored, under this account
    stored = sql(tstack, 'SELECT token_sha256, app_id FROM api_tokens '
                 'WHERE id = %s', (t['id'],))
    assert stored == [(hashlib.sha256(secret.encode()).hexdigest(), APP_ID)]

    r = call(tstack, 'GET', '/api/v1/me', secret)
    assert r.json() == {'role': 'token', 'id': t['id'], 'name': 'crm sync',
                        'scopes': ['read', 'agents']}
    assert call(tstack, 'GET', '/api/v1/agents', secret).status_code == 200
    r = call(tstack, 'POST', '/api/v1/agents', secret,
             json={'account': 'tk1@shop', 'nick': 'tk1'})
    assert r.status_code == 201, r.text
    assert listed(tstack, t['id'])['last_used_at'] is not None

    r = call(tstack, 'DELETE', '/api/v1/tokens/%d' % t['id'],
             tstack.admin_token)
    assert r.status_code == 200 and r.json()['revoked_at'], r.text
    assert_error(call(tstack, 'GET', '/api/v1/agents', secret), 401,
                 'unauthorized')
    # revoking again keeps the first time
    again = call(tstack, 'DELETE', '/api/v1/tokens/%d' % t['id'],
                 tstack.admin_token)
    assert again.json()['revoked_at'] == r.json()['revoked_at']
    # the name is free again
    make(tstack, 'crm sync', ['read'])


def test_a_revoked_token_is_refused_by_every_worker_at_once(tstack):
    t = make(tstack, 'revoke me', ['read'])
    for _ in range(6):          # both workers have used it
        assert call(tstack, 'GET', '/api/v1/queue',
                    t['token']).status_code == 200
    r = call(tstack, 'DELETE', '/api/v1/tokens/%d' % t['id'],
             tstack.admin_token)
    assert r.status_code == 200
    for _ in range(6):
        assert_error(call(tstack, 'GET', '/api/v1/queue', t['token']), 401)


def test_last_use_is_written_at_most_once_a_minute(tstack):
    t = make(tstack, 'busy client', ['read'])

    def used():
        return sql(tstack, 'SELECT last_used_at FROM api_tokens WHERE id = %s',
                   (t['id'],))[0][0]

    assert used() is None
    assert call(tstack, 'GET', '/api/v1/stats', t['token']).status_code == 200
    first = used()
    assert first is not None
    for _ in range(5):
        assert call(tstack, 'GET', '/api/v1/stats',
                    t['token']).status_code == 200
    assert used() == first          # not written again within the minute
    # a use 61 s ago: the next request writes it
    sql(tstack, "UPDATE api_tokens SET last_used_at = now() - "
        "interval '61 seconds' WHERE id = %s", (t['id'],))
    old = used()
    assert call(tstack, 'GET', '/api/v1/stats', t['token']).status_code == 200
    assert used() > old


def test_scopes(tstack):
    add_agent(tstack, 'tk2@shop')
    rep = make(tstack, 'bi reports', ['reports'])['token']
    read = make(tstack, 'dashboard', ['read'])['token']
    hist = make(tstack, 'archive', ['history'])['token']
    ok = [(rep, 'GET', '/api/v1/reports'),
          (rep, 'GET', '/api/v1/reports/export?format=csv'),
          (read, 'GET', '/api/v1/agents'), (read, 'GET', '/api/v1/queue'),
          (read, 'GET', '/api/v1/sessions'), (read, 'GET', '/api/v1/stats'),
          (read, 'GET', '/api/v1/agents/tk2@shop'),
          (hist, 'GET', '/api/v1/history/sessions'),
          (hist, 'GET', '/api/v1/search?q=hello')]
    for tok, method, path in ok:
        r = call(tstack, method, path, tok)
        assert r.status_code == 200, (path, r.text)
    refused = [(rep, 'GET', '/api/v1/agents'),
               (read, 'GET', '/api/v1/reports'),
               (read, 'GET', '/api/v1/history/sessions'),
               (read, 'GET', '/api/v1/history/export'),
               (read, 'POST', '/api/v1/agents'),
               (read, 'PATCH', '/api/v1/agents/tk2@shop'),
               (read, 'DELETE', '/api/v1/agents/tk2@shop'),
               (read, 'POST', '/api/v1/labels'),
               (hist, 'GET', '/api/v1/queue'),
               # no scope manages tokens or staff, or acts as an agent
               (read, 'GET', '/api/v1/tokens'),
               (read, 'POST', '/api/v1/tokens'),
               (read, 'DELETE', '/api/v1/tokens/1'),
               (read, 'GET', '/api/v1/staff'),
               (read, 'POST', '/api/v1/staff/x/password'),
               (read, 'GET', '/api/v1/me/sessions'),
               (read, 'POST', '/api/v1/me/heartbeat')]
    for tok, method, path in refused:
        r = call(tstack, method, path, tok, json={})
        err = assert_error(r, 403, 'scope')
        assert err['message'] == \
            "this API token's scopes do not cover this route"
    # and nothing was done: the agent is still there
    assert call(tstack, 'GET', '/api/v1/agents/tk2@shop',
                tstack.admin_token).status_code == 200


def test_bad_requests(tstack):
    for body in ({'scopes': ['read']}, {'name': '', 'scopes': ['read']},
                 {'name': 'x' * 65, 'scopes': ['read']},
                 {'name': 'a\nb', 'scopes': ['read']},
                 {'name': 'x', 'scopes': []}, {'name': 'x', 'scopes': 'read'},
                 {'name': 'x', 'scopes': ['read', 'admin']},
                 {'name': 'x', 'scopes': [1]}, {'name': 'x'}):
        r = call(tstack, 'POST', '/api/v1/tokens', tstack.admin_token,
                 json=body)
        assert_error(r, 400, 'invalid_field')
    make(tstack, 'twice', ['read'])
    r = call(tstack, 'POST', '/api/v1/tokens', tstack.admin_token,
             json={'name': 'twice', 'scopes': ['history']})
    assert_error(r, 409, 'token_name_taken')
    for tid in ('abc', '0', '99999999', '1' * 19):
        r = call(tstack, 'DELETE', '/api/v1/tokens/' + tid,
                 tstack.admin_token)
        assert_error(r, 404, 'unknown_token')


def test_at_most_100_live_tokens(tstack):
    live = sql(tstack, 'SELECT count(*) FROM api_tokens WHERE app_id = %s '
               'AND revoked_at IS NULL', (APP_ID,))[0][0]
    sql(tstack, "INSERT INTO api_tokens (app_id, name, scopes, token_sha256, "
        "created_by) SELECT %s, 'bulk ' || i, '{read}', "
        "encode(sha256(('bulk' || i)::bytea), 'hex'), 'cli' "
        "FROM generate_series(1, %s) i", (APP_ID, 100 - live))
    try:
        r = call(tstack, 'POST', '/api/v1/tokens', tstack.admin_token,
                 json={'name': 'one too many', 'scopes': ['read']})
        assert_error(r, 409, 'too_many_tokens')
    finally:
        sql(tstack, "UPDATE api_tokens SET revoked_at = now() "
            "WHERE name LIKE 'bulk %%'")


def test_another_accounts_token_is_no_token_here(tstack):
    secret = 'wxt_' + 'ab' * 32
    sql(tstack, "INSERT INTO api_tokens (app_id, name, scopes, token_sha256, "
        "created_by) VALUES ('wxOTHERACCOUNT', 'theirs', '{read}', %s, "
        "'cli') RETURNING id",
        (hashlib.sha256(secret.encode()).hexdigest(),))
    tid = sql(tstack, "SELECT id FROM api_tokens WHERE app_id = "
              "'wxOTHERACCOUNT'")[0][0]
    assert_error(call(tstack, 'GET', '/api/v1/queue', secret), 401)
    assert listed(tstack, tid) is None
    r = call(tstack, 'DELETE', '/api/v1/tokens/%d' % tid, tstack.admin_token)
    assert_error(r, 404, 'unknown_token')
    assert sql(tstack, 'SELECT revoked_at FROM api_tokens WHERE id = %s',
               (tid,)) == [(None,)]


def test_who_may_manage_tokens(tstack):
    agent = add_agent(tstack, 'tk3@shop')
    for method, path in (('GET', '/api/v1/tokens'),
                         ('POST', '/api/v1/tokens'),
                         ('DELETE', '/api/v1/tokens/1')):
        assert_error(call(tstack, method, path, json={}), 401)
        assert_error(call(tstack, method, path, agent, json={}), 403,
                     'forbidden')


def test_wrong_tokens_are_braked(tstack):
    """A made-up wxt_ token counts against the address like any bad
    token: past [api] auth_failures_per_min (20) 429; a right token still
    works."""
    good = make(tstack, 'still works', ['read'])['token']
    codes = [call(tstack, 'GET', '/api/v1/queue',
                  'wxt_%064x' % i).status_code for i in range(22)]
    assert codes[:20] == [401] * 20 and codes[20:] == [429, 429]
    assert call(tstack, 'GET', '/api/v1/queue', good).status_code == 200


def test_token_command(tstack):
    def token_cmd(*args):
        return subprocess.run([wxkf_bin(), 'token', args[0], '-c',
                               tstack.conf] + list(args[1:]),
                              capture_output=True, text=True, timeout=60)

    out = token_cmd('add', '--name', 'nightly export', '--scopes',
                    'reports,history')
    assert out.returncode == 0, out.stderr
    secret = out.stdout.strip().splitlines()[-1]
    assert secret.startswith('wxt_') and len(secret) == 68
    r = call(tstack, 'GET', '/api/v1/history/sessions', secret)
    assert r.status_code == 200, r.text
    out = token_cmd('list')
    assert out.returncode == 0 and 'nightly export' in out.stdout
    assert 'reports,history' in out.stdout and secret not in out.stdout
    line = [ln for ln in out.stdout.splitlines() if 'nightly export' in ln][0]
    assert 'last used 20' in line and '\tlive' in line
    tid = line.split('\t')[0]
    row = listed(tstack, int(tid))
    assert row['created_by'] == 'cli'
    out = token_cmd('revoke', '--id', tid)
    assert out.returncode == 0, out.stderr
    assert_error(call(tstack, 'GET', '/api/v1/history/sessions', secret), 401)
    assert token_cmd('add', '--name', 'x', '--scopes', 'root').returncode == 1
    assert token_cmd('revoke', '--id', 'x').returncode == 1
    assert token_cmd('frob').returncode == 2


# --- user management (POST /api/v1/staff, PATCH /api/v1/staff/{login}) -----

PW = 'a long enough password'


def sign_in(stack, login, password=PW):
    return requests.post(stack.base + '/api/v1/auth/login', timeout=30,
                         json={'login': login, 'password': password})


def cookie_of(stack, login, password=PW):
    r = sign_in(stack, login, password)
    assert r.status_code == 200, r.text
    return {'Cookie': 'wxkf_sid=' + r.cookies['wxkf_sid'],
            'X-CSRF-Token': r.json()['csrf_token']}


def as_cookie(stack, method, path, cookie, **kw):
    return requests.request(method, stack.base + path, headers=cookie,
                            timeout=30, **kw)


def add_staff(stack, **body):
    body.setdefault('password', PW)
    return call(stack, 'POST', '/api/v1/staff', stack.admin_token, json=body)


def test_an_admin_adds_users(tstack):
    r = add_staff(tstack, login='lead1', name='主管老李', role='supervisor')
    assert r.status_code == 201, r.text
    assert r.json() == {'login': 'lead1', 'name': '主管老李',
                        'role': 'supervisor', 'agent': None,
                        'disabled': False}
    me = sign_in(tstack, 'lead1').json()
    assert me['role'] == 'supervisor' and me['name'] == '主管老李'
    # a supervisor reads reports and exports (docs/api.md, issue 18)
    sup = cookie_of(tstack, 'lead1')
    assert as_cookie(tstack, 'GET', '/api/v1/reports', sup).status_code == 200
    r = as_cookie(tstack, 'GET', '/api/v1/reports/export?format=xlsx', sup)
    assert r.status_code == 200 and r.content[:2] == b'PK'

    add_agent(tstack, 'tk4@shop')
    r = add_staff(tstack, login='li4', name='小李', role='agent',
                  agent='tk4@shop')
    assert r.status_code == 201 and r.json()['agent'] == 'tk4@shop', r.text
    assert sign_in(tstack, 'li4').json()['agent'] == 'tk4@shop'

    # the answers an admin gets wrong
    assert_error(add_staff(tstack, login='lead1', name='x', role='admin'),
                 409, 'login_taken')
    assert_error(add_staff(tstack, login='li5', name='x', role='agent',
                           agent='tk4@shop'), 409, 'login_taken')
    assert_error(add_staff(tstack, login='li6', name='x', role='agent',
                           agent='nobody@shop'), 404, 'unknown_agent')
    assert_error(add_staff(tstack, login='x1', name='x', role='admin',
                           password='short'), 400, 'weak_password')
    for bad in ({'login': 'Bad Login', 'name': 'x', 'role': 'admin'},
                {'login': 'x2', 'name': '', 'role': 'admin'},
                {'login': 'x3', 'name': 'x', 'role': 'root'},
                {'login': 'x4', 'name': 'x', 'role': 'agent'},
                {'login': 'x5', 'name': 'x', 'role': 'admin',
                 'agent': 'tk4@shop'},
                {'login': 'x6', 'role': 'admin'},
                {'login': 7, 'name': 'x', 'role': 'admin'}):
        assert_error(add_staff(tstack, **bad), 400, 'invalid_field')
    names = [u['login'] for u in call(tstack, 'GET', '/api/v1/staff',
                                      tstack.admin_token).json()['users']]
    assert 'lead1' in names and 'li4' in names
    assert not [n for n in names if n.startswith('x')]


def test_an_admin_changes_role_disables_and_enables(tstack):
    assert add_staff(tstack, login='lead2', name='老王',
                     role='supervisor').status_code == 201
    boss = add_staff(tstack, login='boss2', name='老板', role='admin')
    assert boss.status_code == 201
    admin = cookie_of(tstack, 'boss2')
    lead = cookie_of(tstack, 'lead2')
    # supervisor -> admin: the old session (the old role) ends
    r = as_cookie(tstack, 'PATCH', '/api/v1/staff/lead2', admin,
                  json={'role': 'admin', 'name': '王经理'})
    assert r.status_code == 200, r.text
    assert r.json()['role'] == 'admin' and r.json()['name'] == '王经理'
    assert r.json()['sessions_ended'] == 1
    assert_error(as_cookie(tstack, 'GET', '/api/v1/auth/me', lead), 401,
                 'not_signed_in')
    assert sign_in(tstack, 'lead2').json()['role'] == 'admin'
    # a name alone ends nothing
    lead = cookie_of(tstack, 'lead2')
    r = as_cookie(tstack, 'PATCH', '/api/v1/staff/lead2', admin,
                  json={'name': '王总'})
    assert r.json()['sessions_ended'] == 0
    assert as_cookie(tstack, 'GET', '/api/v1/auth/me',
                     lead).status_code == 200
    # disabled: signed out at once, and no sign-in
    r = as_cookie(tstack, 'PATCH', '/api/v1/staff/lead2', admin,
                  json={'disabled': True})
    assert r.status_code == 200 and r.json()['disabled'] is True
    assert_error(as_cookie(tstack, 'GET', '/api/v1/auth/me', lead), 401)
    assert_error(sign_in(tstack, 'lead2'), 403, 'account_disabled')
    r = as_cookie(tstack, 'PATCH', '/api/v1/staff/lead2', admin,
                  json={'disabled': False})
    assert r.json()['disabled'] is False
    assert sign_in(tstack, 'lead2').status_code == 200
    # an admin's reset from the same view
    r = as_cookie(tstack, 'POST', '/api/v1/staff/lead2/password', admin,
                  json={'new_password': 'another long password'})
    assert r.status_code == 200, r.text
    assert sign_in(tstack, 'lead2', 'another long password').status_code \
        == 200
    # not oneself: no disabling, no new role (the name may change)
    for body in ({'disabled': True}, {'role': 'supervisor'}):
        assert_error(as_cookie(tstack, 'PATCH', '/api/v1/staff/boss2', admin,
                               json=body), 409, 'cannot_change_self')
    assert as_cookie(tstack, 'PATCH', '/api/v1/staff/boss2', admin,
                     json={'name': '大老板'}).status_code == 200
    # bad changes
    for body in ({'disabled': 'yes'}, {'role': 'root'},
                 {'role': 'agent'}, {'agent': 'tk4@shop'}, {'name': ''}):
        assert_error(as_cookie(tstack, 'PATCH', '/api/v1/staff/lead2', admin,
                               json=body), 400, 'invalid_field')
    assert_error(as_cookie(tstack, 'PATCH', '/api/v1/staff/lead2', admin,
                           json={'role': 'agent', 'agent': 'nobody@x'}),
                 404, 'unknown_agent')
    for who in ('nobody', 'BadName', 'x' * 33):
        assert_error(as_cookie(tstack, 'PATCH', '/api/v1/staff/' + who, admin,
                               json={'name': 'x'}), 404, 'unknown_user')


def test_who_may_manage_users(tstack):
    agent = add_agent(tstack, 'tk5@shop')
    assert add_staff(tstack, login='lead3', name='x',
                     role='supervisor').status_code == 201
    lead = cookie_of(tstack, 'lead3')
    read = make(tstack, 'user reader', ['read', 'agents'])['token']
    body = {'login': 'y1', 'name': 'y', 'role': 'admin', 'password': PW}
    for method, path in (('POST', '/api/v1/staff'),
                         ('PATCH', '/api/v1/staff/lead3')):
        assert_error(call(tstack, method, path, json=body), 401)
        assert_error(call(tstack, method, path, agent, json=body), 403,
                     'forbidden')
        assert_error(call(tstack, method, path, read, json=body), 403,
                     'scope')
        assert_error(as_cookie(tstack, method, path, lead, json=body), 403,
                     'read_only')
    names = [u['login'] for u in call(tstack, 'GET', '/api/v1/staff',
                                      tstack.admin_token).json()['users']]
    assert 'y1' not in names


def test_postgres_down_refuses_api_tokens_only(tstack):
    """An API token is looked up in PostgreSQL on every request: while it
    is away such a request gets 503 (never a stale yes), and the tokens
    checked in Redis (an agent's, the bootstrap admin's) keep working; a
    live token works again once it is back."""
    from test_archive import pg_ctl, stack_start
    agent = add_agent(tstack, 'tk6@shop')
    tok = make(tstack, 'outage', ['read'])['token']
    assert call(tstack, 'GET', '/api/v1/queue', tok).status_code == 200
    pg_ctl(tstack, '-m', 'fast', '-w', '-t', '30', 'stop')
    try:
        for _ in range(4):      # both workers
            err = assert_error(call(tstack, 'GET', '/api/v1/queue', tok), 503,
                               'backend_unavailable')
            assert err['message'] == 'postgresql is unreachable'
        assert call(tstack, 'GET', '/api/v1/queue',
                    tstack.admin_token).status_code == 200
        assert call(tstack, 'GET', '/api/v1/me/sessions',
                    agent).status_code == 200
    finally:
        stack_start(tstack)
    for _ in range(4):
        assert call(tstack, 'GET', '/api/v1/queue', tok).status_code == 200
