"""`wxkf agent add|list|update|remove|token|sync` as an operator runs it,
against the stack's PostgreSQL (the source of truth) and Redis (the
mirror the router reads): output, rows, keys, secrets never stored or
shown, and the errors.

Every account here starts with "tac" so other modules' agents are left
alone. `sync` removes Redis-only agents that are offline and have no
sessions; this module runs before any that seed agents straight into
Redis."""

import hashlib
import json
import os
import re
import subprocess
import unicodedata

import psycopg2
import pytest

from conftest import APP_ID, wxkf_bin

P = 'wxkf:{%s}:' % APP_ID
TOKEN_RE = re.compile(r'^wxa_[0-9a-f]{64}$')
SANITIZER_MARKERS = ('Sanitizer', 'runtime error:')
NO_WECHAT = ('wxkf agent: WeChat not updated: no [wechat] app_secret '
             'configured (agents exist in wxkf only)\n')


# Nothing listens on port 1: a backend that is down, without stopping the
# stack's own (the config's keys are overridden from the environment).
REDIS_DOWN = {'WXKF_REDIS_URL': 'redis://127.0.0.1:1/0'}
PG_DOWN = {'WXKF_POSTGRES_DSN': 'host=127.0.0.1 port=1 dbname=wxkf '
                                'user=wxkf connect_timeout=5'}


def agent(stack, *args, timeout=60, env=None):
    """Runs `wxkf agent ARGS -c CONF`; never a sanitizer report."""
    r = subprocess.run([wxkf_bin(), 'agent', *args, '-c', stack.conf],
                       capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, **(env or {})))
    for m in SANITIZER_MARKERS:
        assert m not in r.stderr, r.stderr
    return r


def ok(stack, *args):
    r = agent(stack, *args)
    assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    return r


def add(stack, account, nick='Test Agent', *extra):
    r = ok(stack, 'add', '--account', account, '--nick', nick, *extra)
    # This stack has no [wechat] app_secret: add says WeChat was skipped.
    assert r.stderr in ('', NO_WECHAT), r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1, r.stdout
    out = json.loads(lines[0])
    assert list(out) == ['account', 'token'], out
    assert out['account'] == account
    assert TOKEN_RE.match(out['token']), out
    return out['token']


def sha(token):
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture(scope='module')
def db(stack):
    conn = psycopg2.connect(host='127.0.0.1', port=stack.pg_port,
                            dbname='wxkf', user='wxkf')
    conn.autocommit = True
    yield conn
    conn.close()


def q(db, sql, *params):
    with db.cursor() as c:
        c.execute(sql, params)
        return c.fetchall()


def row(db, account):
    rows = q(db, "SELECT nick, weight, capacity, groups, "
                 "encode(token_sha256, 'hex') FROM agents "
                 "WHERE account = %s", account)
    return rows[0] if rows else None


def whole_table(db):
    """Every column of every row, as text."""
    return '\n'.join(r[0] for r in q(db, 'SELECT row_to_json(a)::text '
                                         'FROM agents a'))


def redis_dump(stack):
    """Every key and value of the account, as one string."""
    r, parts = stack.redis, []
    for k in r.scan_iter(match=P + '*', count=1000):
        t = r.type(k)
        parts.append(k)
        if t == 'string':
            parts.append(r.get(k) or '')
        elif t == 'hash':
            parts.extend('%s=%s' % kv for kv in r.hgetall(k).items())
        elif t == 'set':
            parts.extend(r.smembers(k))
        elif t == 'list':
            parts.extend(r.lrange(k, 0, -1))
        elif t == 'zset':
            parts.extend(r.zrange(k, 0, -1))
    return '\n'.join(parts)


def in_group(stack, group, account):
    return stack.redis.sismember(P + 'group:' + group, account)


# --------------------------------------------------------------------- add

def test_add_prints_the_token_once_and_stores_only_its_hash(stack, db):
    token = add(stack, 'tac1', 'Alice', '--weight', '3', '--capacity', '4',
                '--group', 'sales', '--group', 'vip')
    assert row(db, 'tac1') == ('Alice', 3, 4, ['sales', 'vip'], sha(token))
    table = whole_table(db)
    assert token not in table and token[4:] not in table
    h = stack.redis.hgetall(P + 'agent:tac1')
    assert h == {'nick': 'Alice', 'weight': '3', 'capacity': '4',
                 'groups': 'sales,vip', 'status': 'offline',
                 'token_sha256': sha(token)}
    assert stack.redis.get(P + 'token:' + sha(token)) == 'tac1'
    assert stack.redis.sismember(P + 'agents', 'tac1')
    assert in_group(stack, 'sales', 'tac1') and in_group(stack, 'vip', 'tac1')
    assert token[4:] not in redis_dump(stack)


def test_add_defaults_weight_1_and_default_capacity(stack, db):
    add(stack, 'tac2@corp', '\u738b\u5c0f\u660e')
    assert row(db, 'tac2@corp')[:4] == ('\u738b\u5c0f\u660e', 1, None, [])
    h = stack.redis.hgetall(P + 'agent:tac2@corp')
    assert (h['weight'], h['capacity'], h['groups']) == ('1', '', '')


def test_duplicate_add_fails_and_keeps_the_first(stack, db):
    token = add(stack, 'tac3', 'First')
    r = agent(stack, 'add', '--account', 'tac3', '--nick', 'Second')
    assert r.returncode == 1
    assert r.stdout == ''
    assert r.stderr == 'wxkf agent: account exists\n'
    assert row(db, 'tac3')[0] == 'First'
    assert row(db, 'tac3')[4] == sha(token)
    assert stack.redis.hget(P + 'agent:tac3', 'nick') == 'First'


def test_sql_in_a_nick_is_stored_verbatim(stack, db):
    nick = "O'Brien; DROP TABLE agents;--"
    add(stack, 'tac4', nick)
    assert row(db, 'tac4')[0] == nick
    assert q(db, "SELECT to_regclass('public.agents') IS NOT NULL") == \
        [(True,)]
    assert stack.redis.hget(P + 'agent:tac4', 'nick') == nick


@pytest.mark.parametrize('args, field', [
    (['--account', 'tac bad', '--nick', 'N'], 'account'),
    (['--account', 'tacbadtoolong', '--nick', 'N'], 'account'),
    (['--account', "tac5'", '--nick', 'N'], 'account'),
    (['--account', 'tac5', '--nick', 'n' * 65], 'nick'),
    (['--account', 'tac5', '--nick', ''], 'nick'),
    (['--account', 'tac5', '--nick', 'a\tb'], 'nick'),
    (['--account', 'tac5', '--nick', 'N', '--weight', '0'], 'weight'),
    (['--account', 'tac5', '--nick', 'N', '--weight', '101'], 'weight'),
    (['--account', 'tac5', '--nick', 'N', '--weight', 'x'], 'weight'),
    (['--account', 'tac5', '--nick', 'N', '--capacity', '10001'],
     'capacity'),
    (['--account', 'tac5', '--nick', 'N', '--group', 'has space'], 'group'),
    (['--account', 'tac5', '--nick', 'N', '--group', 'Sales'], 'group'),
    (['--account', 'tac5', '--nick', 'N', '--group', '_all'], 'group'),
    (['--account', 'tac5', '--nick', 'N', '--group', 'a', '--group', 'a'],
     'group'),
    (['--account', 'tac5', '--nick', 'N'] +
     [x for i in range(17) for x in ('--group', 'g%d' % i)], 'group'),
])
def test_add_refuses_invalid_input_and_stores_nothing(stack, db, args,
                                                      field):
    r = agent(stack, 'add', *args)
    assert r.returncode == 1, r.stderr
    assert r.stdout == ''
    assert r.stderr.startswith('wxkf agent: %s:' % field), r.stderr
    assert r.stderr.count('\n') == 1
    assert q(db, "SELECT count(*) FROM agents WHERE account LIKE 'tac5%%'"
                 " OR account LIKE 'tac bad%%'") == [(0,)]
    assert not stack.redis.exists(P + 'agent:tac5')


def test_nick_with_invalid_utf8_is_refused(stack, db):
    r = subprocess.run([wxkf_bin().encode(), b'agent', b'add', b'--account',
                        b'tac6', b'--nick', b'bad\xff', b'-c',
                        stack.conf.encode()], capture_output=True,
                       timeout=60)
    assert r.returncode == 1
    assert r.stderr == b'wxkf agent: nick: not valid UTF-8\n'
    assert row(db, 'tac6') is None


@pytest.mark.parametrize('args', [
    [],
    ['frobnicate'],
    ['add', '--nick', 'N'],
    ['add', '--account', 'tac7'],
    ['add', '--account', 'tac7', '--nick', 'N', '--bogus'],
    ['add', '--account', 'tac7', '--nick', 'N', '--json'],
    ['add', '--account', 'tac7', '--account', 'tac8', '--nick', 'N'],
    ['update', '--account', 'tac7'],
    ['update', '--account', 'tac7', '--group', 'a', '--no-groups'],
    ['remove'],
    ['list', 'extra'],
    ['add', '--account'],
    ['add', '--account', 'tac7', '--nick', 'N', '--weight'],  # then -c
])
def test_usage_errors_exit_2(stack, db, args):
    r = agent(stack, *args)
    assert r.returncode == 2, (args, r.stderr)
    assert r.stdout == ''
    assert r.stderr.startswith('wxkf agent: ')
    assert r.stderr.count('\n') == 1
    assert row(db, 'tac7') is None


def test_help_lists_every_command(stack):
    r = subprocess.run([wxkf_bin(), 'agent', '--help'], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0
    for word in ('add', 'update', 'remove', 'token', 'list', 'sync'):
        assert '  %s ' % word in r.stdout


# ------------------------------------------------------------------ update

def test_update_replaces_groups_in_both_stores(stack, db):
    add(stack, 'tac10', 'Ten', '--group', 'sales', '--group', 'vip')
    r = ok(stack, 'update', '--account', 'tac10', '--group', 'support',
           '--group', 'vip')
    assert json.loads(r.stdout)['groups'] == ['support', 'vip']
    assert 'token' not in r.stdout
    assert row(db, 'tac10')[3] == ['support', 'vip']
    assert stack.redis.hget(P + 'agent:tac10', 'groups') == 'support,vip'
    assert not in_group(stack, 'sales', 'tac10')
    assert in_group(stack, 'support', 'tac10')
    assert in_group(stack, 'vip', 'tac10')


def test_update_is_partial_and_no_groups_clears(stack, db):
    token = add(stack, 'tac11', 'Eleven', '--weight', '5', '--capacity',
                '9', '--group', 'sales')
    stack.redis.hset(P + 'agent:tac11', 'status', 'paused')
    ok(stack, 'update', '--account', 'tac11', '--nick', 'Eleven II')
    assert row(db, 'tac11') == ('Eleven II', 5, 9, ['sales'], sha(token))
    ok(stack, 'update', '--account', 'tac11', '--capacity', '0',
       '--weight', '100')
    assert row(db, 'tac11')[1:3] == (100, None)
    ok(stack, 'update', '--account', 'tac11', '--no-groups')
    assert row(db, 'tac11')[3] == []
    h = stack.redis.hgetall(P + 'agent:tac11')
    assert (h['nick'], h['weight'], h['capacity'], h['groups'],
            h['status']) == ('Eleven II', '100', '', '', 'paused')
    assert not in_group(stack, 'sales', 'tac11')
    assert stack.redis.get(P + 'token:' + sha(token)) == 'tac11'


def test_a_group_called_null_is_a_group_not_null(stack, db):
    add(stack, 'tac14', 'Fourteen', '--group', 'null', '--group', 'x')
    assert row(db, 'tac14')[3] == ['null', 'x']
    assert in_group(stack, 'null', 'tac14')


def test_concurrent_writers_leave_both_stores_equal(stack, db):
    """Updates and syncs racing on one agent: whatever order PostgreSQL
    took them in, Redis ends with the same groups (the account's lock
    orders the mirror writes)."""
    add(stack, 'tac15', 'Fifteen')
    env = dict(os.environ)
    procs = []
    for i in range(12):
        args = ['update', '--account', 'tac15', '--weight', str(i + 1),
                '--group', 'tacg%d' % i, '--group', 'tacg%d' % (i + 1)]
        if i % 4 == 3:
            args = ['sync']
        procs.append(subprocess.Popen(
            [wxkf_bin(), 'agent', *args, '-c', stack.conf], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    _, weight, _, groups, _ = row(db, 'tac15')
    h = stack.redis.hgetall(P + 'agent:tac15')
    assert (h['weight'], h['groups']) == (str(weight), ','.join(groups))
    for i in range(13):
        g = 'tacg%d' % i
        assert bool(in_group(stack, g, 'tac15')) == (g in groups), g


def test_update_of_unknown_account_fails(stack):
    r = agent(stack, 'update', '--account', 'tac12', '--nick', 'X')
    assert r.returncode == 1
    assert r.stderr == 'wxkf agent: no agent tac12\n'
    assert not stack.redis.exists(P + 'agent:tac12')


def test_update_refuses_invalid_values(stack, db):
    add(stack, 'tac13', 'Thirteen')
    r = agent(stack, 'update', '--account', 'tac13', '--weight', '0')
    assert r.returncode == 1 and r.stderr.startswith('wxkf agent: weight:')
    r = agent(stack, 'update', '--account', 'tac13', '--group', 'a b')
    assert r.returncode == 1 and r.stderr.startswith('wxkf agent: group:')
    assert row(db, 'tac13')[1:4] == (1, None, [])


# -------------------------------------------------------------------- list

def test_list_json_shows_agents_without_secrets(stack):
    token = add(stack, 'tac20', 'Twenty', '--group', 'vip', '--capacity',
                '2')
    r = ok(stack, 'list', '--json')
    assert r.stdout.count('\n') == 1
    agents = json.loads(r.stdout)
    accounts = [a['account'] for a in agents]
    assert accounts == sorted(accounts)
    me = next(a for a in agents if a['account'] == 'tac20')
    assert me == {'account': 'tac20', 'nick': 'Twenty', 'weight': 1,
                  'capacity': 2, 'groups': ['vip'], 'status': 'offline',
                  'load': 0}
    assert 'wxa_' not in r.stdout and token[4:] not in r.stdout
    assert sha(token) not in r.stdout
    assert all('token' not in k for a in agents for k in a)


def test_list_json_is_the_api_shape(stack):
    """`wxkf agent list --json` and GET /api/v1/agents show an agent the
    same way: the same keys, capacity 0 for the default, status and load
    from Redis."""
    import requests
    add(stack, 'tac23', 'Twenty Three', '--weight', '4', '--group', 'vip')
    stack.redis.sadd(P + 'load:tac23', 'oUserLoad1', 'oUserLoad2')
    stack.redis.hset(P + 'agent:tac23', 'status', 'paused')
    r = ok(stack, 'list', '--json')
    cli = next(a for a in json.loads(r.stdout) if a['account'] == 'tac23')
    api = requests.get(stack.base + '/api/v1/agents', timeout=10,
                       headers={'Authorization':
                                'Bearer ' + stack.admin_token})
    assert api.status_code == 200
    web = next(a for a in api.json()['agents'] if a['account'] == 'tac23')
    assert cli == web == {'account': 'tac23', 'nick': 'Twenty Three',
                          'weight': 4, 'capacity': 0, 'groups': ['vip'],
                          'status': 'paused', 'load': 2}
    r = ok(stack, 'update', '--account', 'tac23', '--weight', '5')
    assert json.loads(r.stdout) == dict(web, weight=5)


def display_width(text):
    return sum(2 if unicodedata.east_asian_width(ch) in 'WF' else 1
               for ch in text)


def test_list_table_has_a_header_and_a_row_per_agent(stack):
    add(stack, 'tac21', 'Twenty One', '--group', 'sales')
    add(stack, 'tac22', '\u738b\u5c0f\u660e', '--capacity', '3')
    r = ok(stack, 'list')
    lines = r.stdout.splitlines()
    assert lines[0].split() == ['ACCOUNT', 'NICK', 'WEIGHT', 'CAPACITY',
                                'GROUPS', 'STATUS']
    mine = [ln for ln in lines if ln.startswith('tac21 ')]
    assert len(mine) == 1
    assert mine[0].split()[-4:] == ['1', 'default', 'sales', 'offline']
    assert 'wxa_' not in r.stdout
    # Columns line up on a terminal, Chinese nicks included.
    rows = [lines[0]] + [ln for ln in lines if ln.startswith('tac2')]
    starts = {display_width(ln[:ln.rindex(' ') + 1]) for ln in rows}
    assert len(starts) == 1, r.stdout
    assert all(ln == ln.rstrip() for ln in lines)


# ------------------------------------------------------------------- token

def test_token_rotation_changes_the_hash_in_both_stores(stack, db):
    old = add(stack, 'tac30', 'Thirty')
    r = ok(stack, 'token', '--account', 'tac30')
    out = json.loads(r.stdout)
    new = out['token']
    assert out['account'] == 'tac30' and TOKEN_RE.match(new) and new != old
    assert row(db, 'tac30')[4] == sha(new)
    assert stack.redis.get(P + 'token:' + sha(new)) == 'tac30'
    assert not stack.redis.exists(P + 'token:' + sha(old))
    assert stack.redis.hget(P + 'agent:tac30', 'token_sha256') == sha(new)
    assert new[4:] not in whole_table(db)


def test_token_for_unknown_account_fails(stack):
    r = agent(stack, 'token', '--account', 'tac31')
    assert r.returncode == 1 and r.stdout == ''
    assert r.stderr == 'wxkf agent: no agent tac31\n'


# ------------------------------------------------------------------ remove

def test_remove_deletes_from_both_stores(stack, db):
    token = add(stack, 'tac40', 'Forty', '--group', 'sales')
    ok(stack, 'remove', '--account', 'tac40')
    assert row(db, 'tac40') is None
    assert not stack.redis.exists(P + 'agent:tac40')
    assert not stack.redis.exists(P + 'token:' + sha(token))
    assert not stack.redis.sismember(P + 'agents', 'tac40')
    assert not in_group(stack, 'sales', 'tac40')
    r = agent(stack, 'remove', '--account', 'tac40')
    assert r.returncode == 1
    assert r.stderr == 'wxkf agent: no agent tac40\n'


def test_remove_is_refused_while_the_agent_has_sessions(stack, db):
    token = add(stack, 'tac41', 'Forty One', '--group', 'sales')
    stack.redis.sadd(P + 'load:tac41', 'oTacUser41')
    try:
        r = agent(stack, 'remove', '--account', 'tac41')
        assert r.returncode == 1
        assert r.stderr == ('wxkf agent: agent has active sessions; '
                            'set it offline first\n')
        # Nothing half done: the row (rolled back) and the keys stay.
        assert row(db, 'tac41')[4] == sha(token)
        assert stack.redis.get(P + 'token:' + sha(token)) == 'tac41'
        assert in_group(stack, 'sales', 'tac41')
    finally:
        stack.redis.delete(P + 'load:tac41')
    stack.redis.hset(P + 'agent:tac41', 'status', 'online')
    r = agent(stack, 'remove', '--account', 'tac41')
    assert r.returncode == 1
    assert r.stderr == 'wxkf agent: agent is online; set it offline first\n'
    assert row(db, 'tac41') is not None
    stack.redis.hset(P + 'agent:tac41', 'status', 'offline')
    ok(stack, 'remove', '--account', 'tac41')
    assert row(db, 'tac41') is None


# -------------------------------------------------------------------- sync

def test_sync_repairs_deleted_agent_keys(stack, db):
    token = add(stack, 'tac50', 'Fifty', '--group', 'sales', '--group',
                'vip', '--weight', '4')
    before = stack.redis.hgetall(P + 'agent:tac50')
    stack.redis.delete(P + 'agent:tac50', P + 'token:' + sha(token))
    stack.redis.srem(P + 'agents', 'tac50')
    stack.redis.srem(P + 'group:sales', 'tac50')
    stack.redis.srem(P + 'group:vip', 'tac50')
    r = ok(stack, 'sync')
    assert r.stdout.startswith('sync: '), r.stdout
    assert stack.redis.hgetall(P + 'agent:tac50') == before
    assert stack.redis.get(P + 'token:' + sha(token)) == 'tac50'
    assert stack.redis.sismember(P + 'agents', 'tac50')
    assert in_group(stack, 'sales', 'tac50') and in_group(stack, 'vip',
                                                          'tac50')


def test_sync_removes_what_postgresql_does_not_have(stack, db):
    token = add(stack, 'tac51', 'Fifty One', '--group', 'sales')
    # Stale leftovers: a token key nobody's hash names, a group membership
    # the hash does not list, an agent only Redis knows (offline, idle)
    # and one with a session (kept until it has none).
    stale_hash = 'f' * 64
    stack.redis.set(P + 'token:' + stale_hash, 'tac51')
    stack.redis.sadd(P + 'group:tacghost', 'tac51')
    stack.redis.hset(P + 'agent:tac52', mapping={
        'nick': 'Ghost', 'weight': '1', 'capacity': '', 'groups': 'sales',
        'status': 'offline'})
    stack.redis.sadd(P + 'agents', 'tac52')
    stack.redis.sadd(P + 'group:sales', 'tac52')
    stack.redis.hset(P + 'agent:tac53', mapping={
        'nick': 'Busy', 'weight': '1', 'capacity': '', 'groups': '',
        'status': 'offline'})
    stack.redis.sadd(P + 'agents', 'tac53')
    stack.redis.sadd(P + 'load:tac53', 'oTacUser53')
    try:
        ok(stack, 'sync')
        assert not stack.redis.exists(P + 'token:' + stale_hash)
        assert stack.redis.get(P + 'token:' + sha(token)) == 'tac51'
        assert not stack.redis.exists(P + 'group:tacghost')
        assert in_group(stack, 'sales', 'tac51')
        assert not stack.redis.exists(P + 'agent:tac52')
        assert not stack.redis.sismember(P + 'agents', 'tac52')
        assert not in_group(stack, 'sales', 'tac52')
        assert stack.redis.exists(P + 'agent:tac53')
    finally:
        stack.redis.delete(P + 'load:tac53')
    ok(stack, 'sync')
    assert not stack.redis.exists(P + 'agent:tac53')
    assert not stack.redis.sismember(P + 'agents', 'tac53')


# ------------------------------------------------------- backends down

def test_add_with_redis_down_keeps_the_row_and_says_sync_repairs(stack, db):
    r = agent(stack, 'add', '--account', 'tac60', '--nick', 'Sixty',
              '--group', 'sales', env=REDIS_DOWN)
    assert r.returncode == 1
    # The row exists, so the token is shown (it could not be shown later).
    token = json.loads(r.stdout)['token']
    assert r.stderr.count('\n') == 1
    assert 'mirror is stale' in r.stderr and 'wxkf agent sync' in r.stderr
    assert row(db, 'tac60')[4] == sha(token)
    assert not stack.redis.exists(P + 'agent:tac60')
    ok(stack, 'sync')
    assert stack.redis.get(P + 'token:' + sha(token)) == 'tac60'
    assert in_group(stack, 'sales', 'tac60')
    assert stack.redis.hget(P + 'agent:tac60', 'status') == 'offline'


def test_update_and_token_with_redis_down_are_repaired_by_sync(stack, db):
    old = add(stack, 'tac61', 'Sixty One', '--group', 'sales')
    r = agent(stack, 'update', '--account', 'tac61', '--group', 'vip',
              env=REDIS_DOWN)
    assert r.returncode == 1 and 'wxkf agent sync' in r.stderr
    r = agent(stack, 'token', '--account', 'tac61', env=REDIS_DOWN)
    assert r.returncode == 1 and 'wxkf agent sync' in r.stderr
    new = json.loads(r.stdout)['token']
    assert row(db, 'tac61')[3:] == (['vip'], sha(new))
    # Until the sync the mirror still has the old state ...
    assert stack.redis.get(P + 'token:' + sha(old)) == 'tac61'
    ok(stack, 'sync')
    # ... after it, the old token no longer authenticates.
    assert not stack.redis.exists(P + 'token:' + sha(old))
    assert stack.redis.get(P + 'token:' + sha(new)) == 'tac61'
    assert not in_group(stack, 'sales', 'tac61')
    assert in_group(stack, 'vip', 'tac61')


def test_remove_with_redis_down_removes_nothing(stack, db):
    add(stack, 'tac62', 'Sixty Two')
    r = agent(stack, 'remove', '--account', 'tac62', env=REDIS_DOWN)
    assert r.returncode == 1
    assert r.stderr.startswith('wxkf agent: Redis unreachable')
    assert 'nothing removed' in r.stderr
    assert row(db, 'tac62') is not None
    assert stack.redis.exists(P + 'agent:tac62')


def test_list_with_redis_down_still_lists(stack):
    add(stack, 'tac63', 'Sixty Three')
    r = agent(stack, 'list', '--json', env=REDIS_DOWN)
    assert r.returncode == 0, r.stderr
    me = next(a for a in json.loads(r.stdout) if a['account'] == 'tac63')
    assert me['status'] is None
    assert 'Redis unreachable' in r.stderr


def test_postgres_down_fails_and_writes_nothing(stack, db):
    r = agent(stack, 'add', '--account', 'tac64', '--nick', 'N',
              env=PG_DOWN)
    assert r.returncode == 1 and r.stdout == ''
    assert r.stderr.startswith('wxkf agent: PostgreSQL: ')
    assert r.stderr.count('\n') == 1
    assert not stack.redis.exists(P + 'agent:tac64')
    assert row(db, 'tac64') is None
    r = agent(stack, 'sync', env=PG_DOWN)
    assert r.returncode == 1 and r.stderr.startswith('wxkf agent: ')
