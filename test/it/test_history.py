"""History reads over HTTP (docs/api.md "History"): a user's messages
newest first in keyset pages, a session's transcript, the admins' search,
who may read what, and PostgreSQL going away and coming back.

The archiver may not exist yet (or may be writing at the same time), so the
rows are inserted here with psycopg2 into the stack's own database, under
openids, session ids and texts nothing else uses."""

import datetime
import os
import re
import subprocess
import time

import psycopg2
import pytest
import requests

from conftest import assert_error, random_openid, run_stack, wait_until
from test_routing import Agent, add_agent

RFC3339_MS = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$')
BASE_TIME = datetime.datetime(2024, 5, 1, 8, 0, 0,
                              tzinfo=datetime.timezone.utc)
PG_BIN = '/usr/lib/postgresql/15/bin'


@pytest.fixture(scope='module')
def hstack():
    yield from run_stack('history')


@pytest.fixture(scope='module')
def db(hstack):
    conn = psycopg2.connect(host='127.0.0.1', port=hstack.pg_port,
                            dbname='wxkf', user='wxkf', connect_timeout=5)
    conn.autocommit = True
    yield conn
    conn.close()


@pytest.fixture(scope='module')
def served(hstack):
    """Two agents, each serving one user: (a, user_a, b, user_b)."""
    a = Agent(hstack, 'hist_a', add_agent(hstack, 'hist_a'))
    b = Agent(hstack, 'hist_b', add_agent(hstack, 'hist_b'))
    a.status('online')
    ua = hstack.user()
    assert ua.send_text('hello a').status_code == 200
    wait_until(lambda: ua.openid in a.sessions(), 10, what='user a assigned')
    a.status('paused')               # keeps ua, takes no one new
    b.status('online')
    ub = hstack.user()
    assert ub.send_text('hello b').status_code == 200
    wait_until(lambda: ub.openid in b.sessions(), 10, what='user b assigned')
    return a, ua, b, ub


def alive(served):
    """Heartbeats, so neither agent is taken offline (and its user moved)
    however long the module runs."""
    for ag in (served[0], served[2]):
        assert ag.post('/api/v1/me/heartbeat').status_code == 200
    return served


def admin(stack):
    return {'Authorization': 'Bearer ' + stack.admin_token}


def get(stack, path, headers=None, **params):
    return requests.get(stack.base + path, params=params, headers=headers,
                        timeout=10)


def insert(db, openid, n, session_id=None, content='m{i}', tie_every=1,
           start=BASE_TIME, direction=lambda i: 'io'[i % 2]):
    """n messages, created_at rising, tie_every rows sharing each time."""
    rows = []
    with db.cursor() as cur:
        for i in range(n):
            at = start + datetime.timedelta(milliseconds=250 * (
                i // tie_every), microseconds=7)
            d = direction(i)
            cur.execute(
                "INSERT INTO messages (event_id, openid, direction, msgtype,"
                " content, session_id, agent, status, errcode, payload,"
                " created_at) VALUES (%s, %s, %s, 'text', %s, %s, %s, %s,"
                " %s, %s, %s) RETURNING id",
                ('it-%s-%d-%d' % (openid, i, time.monotonic_ns()), openid, d,
                 content.format(i=i), session_id,
                 'hist_a' if d == 'o' else None,
                 'sent' if d == 'o' else None, 0 if d == 'o' else None,
                 '{"n": %d, "tag": "<x>"}' % i, at))
            rows.append(cur.fetchone()[0])
    return rows


def newest_first(db, openid):
    with db.cursor() as cur:
        cur.execute("SELECT id FROM messages WHERE openid = %s "
                    "ORDER BY created_at DESC, id DESC", (openid,))
        return [r[0] for r in cur.fetchall()]


def pages(stack, path, headers, cursor_param='before', **params):
    out = []
    cursor = None
    for _ in range(100):
        q = dict(params)
        if cursor:
            q[cursor_param] = cursor
        r = get(stack, path, headers, **q)
        assert r.status_code == 200, r.text
        body = r.json()
        out.append(body['messages'])
        cursor = body['next']
        if cursor is None:
            return out
    raise AssertionError('more than 100 pages')


# --- the user's messages ----------------------------------------------------

def test_pages_over_120_messages_are_50_50_20_newest_first(hstack, db):
    openid = random_openid('oHIST')
    insert(db, openid, 120, tie_every=4)           # ties at each boundary
    got = pages(hstack, '/api/v1/users/%s/messages' % openid, admin(hstack),
                limit=50)
    assert [len(p) for p in got] == [50, 50, 20]
    ids = [m['id'] for p in got for m in p]
    assert len(set(ids)) == 120
    assert ids == newest_first(db, openid)
    m = got[0][0]
    assert m['openid'] == openid and m['msgtype'] == 'text'
    assert m['direction'] in ('in', 'out')
    assert RFC3339_MS.match(m['created_at']), m['created_at']
    assert m['payload']['tag'] == '<x>'
    outs = [m for p in got for m in p if m['direction'] == 'out']
    ins = [m for p in got for m in p if m['direction'] == 'in']
    assert outs and ins
    assert all(m['status'] == 'sent' and m['errcode'] == 0 and
               m['agent'] == 'hist_a' for m in outs)
    assert all('status' not in m and m['agent'] is None for m in ins)
    # The default limit is 50.
    r = get(hstack, '/api/v1/users/%s/messages' % openid, admin(hstack))
    assert r.status_code == 200 and len(r.json()['messages']) == 50


def test_an_unknown_user_has_an_empty_history(hstack):
    r = get(hstack, '/api/v1/users/%s/messages' % random_openid('oNONE'),
            admin(hstack))
    assert r.status_code == 200, r.text
    assert r.json() == {'messages': [], 'next': None}


def test_agent_reads_its_own_user_but_not_another_agents(hstack, db, served):
    a, ua, b, ub = alive(served)
    insert(db, ua.openid, 3, content='for a {i}')
    insert(db, ub.openid, 3, content='for b {i}')
    r = a.get('/api/v1/users/%s/messages' % ua.openid)
    assert r.status_code == 200, r.text
    assert {'for a 0', 'for a 1', 'for a 2'} <= {
        m['content'] for m in r.json()['messages']}
    assert_error(a.get('/api/v1/users/%s/messages' % ub.openid), 403,
                 'not_yours')
    assert_error(b.get('/api/v1/users/%s/messages' % ua.openid), 403,
                 'not_yours')
    assert b.get('/api/v1/users/%s/messages' % ub.openid).status_code == 200
    # A user with no session at all is nobody's.
    assert_error(a.get('/api/v1/users/%s/messages'
                       % random_openid('oNOSESS')), 403, 'not_yours')


def test_no_or_a_bad_token_is_401(hstack, served):
    _a, ua, _b, _ub = alive(served)
    for h in (None, {'Authorization': 'Bearer wxa_' + '0' * 64},
              {'Authorization': 'Basic abc'}):
        for path in ('/api/v1/users/%s/messages' % ua.openid,
                     '/api/v1/sessions/%s/transcript' % ua.openid,
                     '/api/v1/search?q=hello'):
            r = get(hstack, path, h)
            assert_error(r, 401, 'unauthorized')
            assert r.headers.get('WWW-Authenticate') == 'Bearer'


def test_bad_cursor_and_limits_are_400(hstack, db):
    openid = random_openid('oBAD')
    insert(db, openid, 3)
    path = '/api/v1/users/%s/messages' % openid
    body = get(hstack, path, admin(hstack), limit=1).json()
    good = body['next']
    assert good
    for bad in ('x', good + 'A', good[:-1], good.upper(), '!!!!',
                '+' + good[1:], 'MTox=', 'MTo6MQ', '%00', ' '):
        assert_error(get(hstack, path, admin(hstack), before=bad), 400,
                     'invalid_field')
    for lim in ('0', '201', '-1', 'abc', '', '1e2', '50 '):
        assert_error(get(hstack, path, admin(hstack), limit=lim), 400,
                     'invalid_field')
    assert get(hstack, path, admin(hstack), limit=200).status_code == 200
    assert get(hstack, path, admin(hstack), limit=1,
               before=good).status_code == 200
    # A cursor from one read works in another of the same kind only as a
    # position; it never errors or leaks (another user's rows stay out).
    r = get(hstack, '/api/v1/users/%s/messages' % random_openid('oX'),
            admin(hstack), before=good)
    assert r.status_code == 200 and r.json()['messages'] == []


# --- transcripts -------------------------------------------------------------

def test_transcript_is_the_current_session_oldest_first(hstack, db):
    openid = random_openid('oTRAN')
    with db.cursor() as cur:
        cur.execute("INSERT INTO sessions (id, openid, agent, opened_at, "
                    "closed_at) VALUES (%s, %s, 'hist_a', %s, %s), "
                    "(%s, %s, 'hist_a', %s, NULL)",
                    (910000001, openid, BASE_TIME,
                     BASE_TIME + datetime.timedelta(hours=1),
                     910000002, openid,
                     BASE_TIME + datetime.timedelta(hours=2)))
    old = insert(db, openid, 4, session_id=910000001, content='old {i}')
    cur_ids = insert(db, openid, 1205, session_id=910000002,
                     content='cur {i}', tie_every=3,
                     start=BASE_TIME + datetime.timedelta(hours=2))
    path = '/api/v1/sessions/%s/transcript' % openid
    got = pages(hstack, path, admin(hstack), cursor_param='after')
    assert [len(p) for p in got] == [1000, 205]
    assert [m['id'] for p in got for m in p] == cur_ids    # oldest first
    r = get(hstack, path, admin(hstack), session='910000001')
    assert r.status_code == 200, r.text
    body = r.json()
    assert body['session_id'] == 910000001 and body['next'] is None
    assert [m['id'] for m in body['messages']] == old
    got = pages(hstack, path, admin(hstack), cursor_param='after', limit=500)
    assert [len(p) for p in got] == [500, 500, 205]
    for bad in ('0', '-1', 'x', '9223372036854775808'):
        assert_error(get(hstack, path, admin(hstack), session=bad), 400,
                     'invalid_field')
    assert_error(get(hstack, path, admin(hstack), limit='1001'), 400,
                 'invalid_field')
    assert_error(get(hstack, '/api/v1/sessions/%s/transcript'
                     % random_openid('oNOS'), admin(hstack)), 404,
                 'no_session')


def test_transcript_follows_the_same_authorization(hstack, db, served):
    a, ua, b, ub = alive(served)
    ids = insert(db, ua.openid, 5, session_id=910000100, content='t {i}')
    path = '/api/v1/sessions/%s/transcript' % ua.openid
    r = a.get(path + '?session=910000100')
    assert r.status_code == 200, r.text
    assert [m['id'] for m in r.json()['messages']] == ids
    assert_error(b.get(path + '?session=910000100'), 403, 'not_yours')
    assert_error(a.get('/api/v1/sessions/%s/transcript?session=910000100'
                       % ub.openid), 403, 'not_yours')


# --- search ----------------------------------------------------------------

def test_admin_search_finds_chinese_and_escapes_wildcards(hstack, db,
                                                          served):
    a, _ua, _b, _ub = alive(served)
    u1, u2 = random_openid('oS1'), random_openid('oS2')
    hit = insert(db, u1, 1, content='您好，请问qx订单什么时候发货？')
    insert(db, u2, 1, content='发货很快')
    pct = insert(db, u1, 1, content='qx打折50%优惠')
    insert(db, u2, 1, content='qx共500元')
    insert(db, u2, 1, content='qx50x')
    und = insert(db, u2, 1, content='qx_a')
    insert(db, u2, 1, content='qxba')

    def search(q, **kw):
        r = get(hstack, '/api/v1/search', admin(hstack), q=q, **kw)
        assert r.status_code == 200, r.text
        return r.json()

    found = search('请问qx订单')['messages']
    assert [m['id'] for m in found] == hit
    assert found[0]['content'] == '您好，请问qx订单什么时候发货？'
    assert found[0]['openid'] == u1
    assert [m['id'] for m in search('qx打折50%')['messages']] == pct
    assert [m['id'] for m in search('50%优')['messages']] == pct
    assert [m['id'] for m in search('qx_')['messages']] == und
    assert search('QX_A')['messages'][0]['id'] == und[0]   # ILIKE
    # Newest first, in pages, no repeats.
    many = insert(db, u1, 7, content='qzpage {i}', tie_every=2)
    got = pages(hstack, '/api/v1/search', admin(hstack), q='qzpage', limit=3)
    assert [len(p) for p in got] == [3, 3, 1]
    assert [m['id'] for p in got for m in p] == list(reversed(many))
    # q: 2..100 characters (not bytes), required; admins only.
    assert search('发货')['messages']
    assert len(search('中' * 100)['messages']) == 0
    for q in ('a', '中', '', 'x' * 101, '中' * 101):
        assert_error(get(hstack, '/api/v1/search', admin(hstack), q=q), 400,
                     'invalid_field')
    assert_error(get(hstack, '/api/v1/search', admin(hstack)), 400,
                 'invalid_field')
    assert_error(get(hstack, '/api/v1/search', admin(hstack), q='qx',
                     limit='201'), 400, 'invalid_field')
    assert_error(a.get('/api/v1/search?q=qx'), 403, 'forbidden')


def test_hostile_text_round_trips(hstack, db):
    openid = random_openid('oHOS')
    texts = ['"\'\\<>&\x01\x1f\u2028\u2029 </script>', '😀👨‍👩 ' * 50,
             "'; DROP TABLE messages; --", '%_\\%\\_', '\u202e\ufeff' * 3]
    with db.cursor() as cur:
        for i, t in enumerate(texts):
            cur.execute("INSERT INTO messages (event_id, openid, direction,"
                        " msgtype, content, created_at) VALUES (%s, %s, 'i',"
                        " 'text', %s, %s)", ('hos-%s-%d' % (openid, i),
                                              openid, t, BASE_TIME +
                                              datetime.timedelta(seconds=i)))
    r = get(hstack, '/api/v1/users/%s/messages' % openid, admin(hstack))
    assert r.status_code == 200
    assert r.headers['Content-Type'].startswith('application/json')
    assert [m['content'] for m in r.json()['messages']] == texts[::-1]
    found = get(hstack, '/api/v1/search', admin(hstack),
                q='%_\\%').json()['messages']
    assert [m['content'] for m in found] == ['%_\\%\\_']


# --- PostgreSQL outage (last: it restarts the server) ------------------------

def pg_ctl(stack, *args):
    data = os.path.join(stack.dir, 'pg', 'data')
    cmd = [os.path.join(PG_BIN, 'pg_ctl'), '-D', data] + list(args)
    if os.geteuid() == 0:
        cmd = ['runuser', '-u', 'postgres', '--'] + cmd
    r = subprocess.run(cmd, cwd=os.path.join(stack.dir, 'pg'),
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_postgresql_down_is_503_and_back_without_a_restart(hstack, db):
    openid = random_openid('oDOWN')
    insert(db, openid, 2)
    path = '/api/v1/users/%s/messages' % openid
    # Every worker gets a connection first (requests spread over them).
    for _ in range(8):
        assert get(hstack, path, admin(hstack)).status_code == 200
    db.close()
    pg_ctl(hstack, '-m', 'fast', '-w', '-t', '30', 'stop')
    try:
        for _ in range(4):
            t0 = time.monotonic()
            r = get(hstack, path, admin(hstack))
            assert_error(r, 503, 'backend_unavailable')
            assert time.monotonic() - t0 < 3.5
        assert_error(get(hstack, '/api/v1/search', admin(hstack), q='zz'),
                     503, 'backend_unavailable')
    finally:
        pg_ctl(hstack, '-l', os.path.join(hstack.dir, 'logs',
                                          'postgres.log'),
               '-o', '-p %d -k %s -c listen_addresses=127.0.0.1'
               % (hstack.pg_port, os.path.join(hstack.dir, 'pg', 'sock')),
               '-w', '-t', '30', 'start')
    for _ in range(8):
        r = get(hstack, path, admin(hstack))
        assert r.status_code == 200, r.text
        assert len(r.json()['messages']) == 2
