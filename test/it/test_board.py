"""The team lead's board against the real stack (issue 18): the paged,
filtered lists of sessions and of the queue with their totals, in a
stable order (longest waiting first), at 10,000 waiting users with a
bounded amount of Redis work per page (counted, not timed); moving a
waiting user to an agent or a group; forcing an agent paused or offline
(its users move on, its console is told who did it, an admin can then
delete it); and who may do each (agents refused, supervisors and admins
allowed)."""

import subprocess
import time

import pytest
import requests

from conftest import assert_error, run_stack, wxkf_bin
from test_routing import Agent, add_agent, assert_load_invariant

BIG = 10000
FILL_LUA = """
local P, from, to = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
for i = from, to do
    local o = string.format('oBig%024d', i)
    redis.call('HSET', P .. 'sess:' .. o, 'id', 'b' .. i, 'state', 'waiting',
               'agent', '', 'group', 'big', 'queued_ms', 1000 + i,
               'opened_ms', 1000 + i)
    redis.call('ZADD', P .. 'queue:big', i, o)
end
redis.call('SADD', P .. 'queues', 'big')
"""


@pytest.fixture(scope='module')
def bstack():
    yield from run_stack('board', workers=2, extra={
        'routing': {'default_capacity': '2', 'queue_timeout': '0',
                    'first_reply_timeout': '0',
                    'keyword_groups': '[g1]:g1,[g2]:g2,[big]:big'},
        'presence': {'heartbeat_ttl': '3600'},
    })


def api(stack, method, path, headers=None, **kw):
    h = dict({'Authorization': 'Bearer ' + stack.admin_token}
             if headers is None else headers)
    return requests.request(method, stack.base + path, headers=h,
                            timeout=30, **kw)


def get(stack, path, **params):
    r = api(stack, 'GET', path, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def staff(stack, login, role):
    """A signed-in browser of this role: its cookie and CSRF headers."""
    cmd = [wxkf_bin(), 'user', 'add', '-c', stack.conf, '--login', login,
           '--name', login, '--role', role]
    r = subprocess.run(cmd, input='board password 1\n', text=True,
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    r = requests.post(stack.base + '/api/v1/auth/login', timeout=30,
                      json={'login': login, 'password': 'board password 1'})
    assert r.status_code == 200, r.text
    return {'Cookie': 'wxkf_sid=' + r.cookies['wxkf_sid'],
            'X-CSRF-Token': r.json()['csrf_token']}


@pytest.fixture(scope='module')
def team(bstack):
    """b1 in g1 and b2 in g2 (capacity 2 each), online; c1 in g1, offline."""
    out = {}
    for acct, g in (('b1', 'g1'), ('b2', 'g2'), ('c1', 'g1')):
        out[acct] = Agent(bstack, acct, add_agent(bstack, acct, groups=[g]))
    out['b1'].status('online')
    out['b2'].status('online')
    return out


def close_everything(stack, team):
    # closing an agent's session gives it the next waiting user: a few
    # rounds (bounded) until nobody is left
    for _ in range(10):
        left = get(stack, '/api/v1/sessions', limit='200')
        if left['total'] == 0:
            return
        for s in left['items']:
            api(stack, 'POST', '/api/v1/sessions/%s/close' % s['openid'],
                json={})
    assert get(stack, '/api/v1/sessions')['total'] == 0


def send(stack, openid, text):
    u = stack.user(openid=openid)
    r = u.send_text(text)
    assert r.status_code == 200
    return u


def test_pages_filters_and_totals_of_a_known_set(bstack, team):
    close_everything(bstack, team)
    g1 = ['oBrdG1x%021d' % i for i in range(7)]
    g2 = ['oBrdG2x%021d' % i for i in range(5)]
    t0 = int(time.time() * 1000)
    for o in g1:
        send(bstack, o, '[g1] 你好')
    for o in g2:
        send(bstack, o, '[g2] 你好')
    # b1 takes the first two of g1, b2 the first two of g2; 8 wait
    waiting = g1[2:] + g2[2:]
    q = get(bstack, '/api/v1/queue')
    assert q['total'] == 8 and q['next'] is None and not q['capped']
    assert [i['openid'] for i in q['items']] == waiting   # longest first
    for i in q['items']:
        assert i['state'] == 'waiting'
        assert t0 + 48 * 3600 * 1000 <= i['window_end_ms'] <= \
            int(time.time() * 1000) + 48 * 3600 * 1000
    # paging: 3 at a time, no one twice, no one left out
    seen, offset = [], 0
    for _ in range(5):
        p = get(bstack, '/api/v1/queue', limit='3', offset=str(offset))
        assert p['total'] == 8 and p['limit'] == 3
        seen += [i['openid'] for i in p['items']]
        if p['next'] is None:
            break
        offset = p['next']
    assert seen == waiting
    # one group: in queue order, with positions
    p = get(bstack, '/api/v1/queue', group='g2')
    assert p['total'] == 3
    assert [(i['openid'], i['position']) for i in p['items']] == \
        [(o, n + 1) for n, o in enumerate(g2[2:])]
    # the old per-group view is still there
    groups = {g['group']: g for g in q['groups']}
    assert groups['g1']['length'] == 5 and groups['g2']['length'] == 3
    assert [w['openid'] for w in groups['g1']['waiting']] == g1[2:]
    # an OpenID prefix, alone and with a group
    p = get(bstack, '/api/v1/queue', q='oBrdG2')
    assert p['total'] == 3 and [i['openid'] for i in p['items']] == g2[2:]
    p = get(bstack, '/api/v1/queue', q='oBrdG', group='g1', limit='2',
            offset='1')
    assert p['total'] == 5
    assert [i['openid'] for i in p['items']] == g1[3:5] and p['next'] == 3
    assert get(bstack, '/api/v1/queue', q='oNobody')['total'] == 0
    # sessions: the active ones by agent, then the waiting ones
    s = get(bstack, '/api/v1/sessions')
    assert s['total'] == 12
    assert [i['openid'] for i in s['items']] == \
        sorted(g1[:2]) + sorted(g2[:2]) + waiting
    assert s['sessions'] == s['items']          # the old name
    s = get(bstack, '/api/v1/sessions', state='active', agent='b1')
    assert s['total'] == 2 and {i['agent'] for i in s['items']} == {'b1'}
    s = get(bstack, '/api/v1/sessions', group='g2')
    assert s['total'] == 5
    s = get(bstack, '/api/v1/sessions', limit='3', offset='3')
    assert [i['openid'] for i in s['items']] == \
        [sorted(g2[:2])[1]] + waiting[:2]
    assert s['next'] == 6
    s = get(bstack, '/api/v1/sessions', state='waiting', group='g1', q='oBrdG1')
    assert s['total'] == 5
    # the board: every agent with its load, capacity and conversations
    b = get(bstack, '/api/v1/board')
    agents = {a['account']: a for a in b['agents']}
    assert agents['b1']['load'] == 2 and agents['b1']['capacity'] == 2
    assert agents['c1']['status'] == 'offline'
    assert sorted(x['openid'] for x in agents['b1']['sessions']) == \
        sorted(g1[:2])
    for x in agents['b1']['sessions']:
        assert x['user_ms'] >= x['assigned_ms'] > 0 and x['reply_ms'] == 0
    assert b['stats']['waiting'] == 8
    assert {g['group']: g['waiting'] for g in b['groups']}['g1'] == 5
    # an answer stops the "waiting for an answer" clock
    r = requests.post(bstack.base + '/api/v1/sessions/%s/messages' % g1[0],
                      headers=team['b1'].h, json={'msgtype': 'text',
                                                  'text': {'content': '在'}},
                      timeout=30)
    assert r.status_code in (200, 202), r.text
    b = get(bstack, '/api/v1/board')
    x = [x for a in b['agents'] if a['account'] == 'b1'
         for x in a['sessions'] if x['openid'] == g1[0]][0]
    assert x['reply_ms'] >= x['user_ms']
    assert_load_invariant(bstack, 2)


@pytest.mark.parametrize('query', [
    {'limit': '0'}, {'limit': '1001'}, {'limit': 'x'}, {'offset': '-1'},
    {'offset': '99999999'}, {'q': 'o/x'}, {'q': 'o' * 65},
    {'agent': 'a b'}, {'group': 'a,b'}, {'state': 'sleeping'}])
def test_bad_filters_are_400(bstack, team, query):
    assert_error(api(bstack, 'GET', '/api/v1/sessions', params=query), 400,
                 'invalid_field')


def test_an_old_client_asking_1000_gets_pages_of_200(bstack, team):
    p = get(bstack, '/api/v1/sessions', limit='1000')
    assert p['limit'] == 200


def commands(stack):
    info = stack.redis.info('commandstats')
    return {k[len('cmdstat_'):]: v['calls'] for k, v in info.items()}


def test_ten_thousand_waiting_cost_a_page_not_the_queue(bstack, team):
    """10,000 users waiting in group big, filled as an earlier release
    left them (in the queue only, not in the lists' index): the first list
    builds the index once; after that a page deep in the list reads its
    own rows only — counted with Redis's per-command call counts."""
    close_everything(bstack, team)
    p = 'wxkf:{%s}:' % bstack.app_id
    fill = bstack.redis.register_script(FILL_LUA)
    for start in range(1, BIG + 1, 2000):
        fill(keys=[p], args=[start, start + 1999])
    first = get(bstack, '/api/v1/queue', limit='50')
    assert first['total'] == BIG
    assert first['items'][0]['openid'] == 'oBig%024d' % 1
    assert bstack.redis.zcard(p + 'waitq') == BIG
    before = commands(bstack)
    t = time.monotonic()
    deep = get(bstack, '/api/v1/queue', limit='100', offset=str(BIG - 100))
    wall = time.monotonic() - t
    after = commands(bstack)
    assert deep['total'] == BIG and deep['next'] is None
    assert [i['openid'] for i in deep['items']] == \
        ['oBig%024d' % i for i in range(BIG - 99, BIG + 1)]
    assert [i['position'] for i in deep['items']] == \
        list(range(BIG - 99, BIG + 1))
    hgetall = after.get('hgetall', 0) - before.get('hgetall', 0)
    hget = after.get('hget', 0) - before.get('hget', 0)
    # one HGETALL and one HGET per row listed (+ a few by `wxkf jobs`)
    assert 100 <= hgetall < 150 and hget < 250, (hgetall, hget)
    # a prefix search and a group filter are bounded the same way
    before = commands(bstack)
    t2 = time.monotonic()
    pre = get(bstack, '/api/v1/queue', q='oBig00000000000000000000999',
              limit='200')
    grp = get(bstack, '/api/v1/sessions', group='big', limit='200',
              offset='5000')
    wall2 = time.monotonic() - t2
    after = commands(bstack)
    assert pre['total'] == 10   # 9990..9999, by OpenID
    assert [i['openid'] for i in pre['items']] == \
        ['oBig%024d' % i for i in range(9990, 10000)]
    assert grp['total'] == BIG and len(grp['items']) == 200
    assert grp['items'][0]['openid'] == 'oBig%024d' % 5001
    assert after.get('hgetall', 0) - before.get('hgetall', 0) < 300
    print('\n10,000 waiting: a page of 100 at offset 9,900 in %.1f ms; a '
          'prefix page and a group page at offset 5,000 in %.1f ms'
          % (wall * 1000, wall2 * 1000))
    # the index moves with the queue: one user moved out of big
    o7 = 'oBig%024d' % 7
    r = api(bstack, 'POST', '/api/v1/queue/%s/assign' % o7,
            json={'group': 'g2'})
    assert r.status_code == 200, r.text
    assert r.json()['result'] == 'assigned' and r.json()['agent'] == 'b2'
    assert get(bstack, '/api/v1/queue', group='big')['total'] == BIG - 1
    assert get(bstack, '/api/v1/queue')['total'] == BIG - 1
    assert bstack.redis.zcard(p + 'waitq') == BIG - 1
    api(bstack, 'POST', '/api/v1/sessions/%s/close' % o7, json={})
    bstack.redis.delete(p + 'queue:big', p + 'waitq', p + 'waitlex')
    bstack.redis.srem(p + 'queues', 'big')
    for start in range(1, BIG + 1, 1000):
        bstack.redis.delete(*[p + 'sess:oBig%024d' % i
                              for i in range(start, start + 1000)])


def test_moving_waiting_users(bstack, team):
    close_everything(bstack, team)
    users = ['oBrdMv%022d' % i for i in range(6)]
    for o in users:
        send(bstack, o, '[g1] 在吗')
    # b1 (capacity 2) has two; four wait in g1
    assert sorted(team['b1'].sessions()) == users[:2]
    # to a full agent, an offline agent, an unknown agent: refused
    mv = '/api/v1/queue/%s/assign'
    assert_error(api(bstack, 'POST', mv % users[2], json={'agent': 'b1'}),
                 409, 'agent_full')
    assert_error(api(bstack, 'POST', mv % users[2], json={'agent': 'c1'}),
                 409, 'agent_offline')
    assert_error(api(bstack, 'POST', mv % users[2], json={'agent': 'zz'}),
                 404, 'unknown_agent')
    assert_error(api(bstack, 'POST', mv % users[0], json={'agent': 'b2'}),
                 409, 'not_waiting')
    assert_error(api(bstack, 'POST', mv % 'oBrdNobody', json={'agent': 'b2'}),
                 404, 'no_session')
    assert_error(api(bstack, 'POST', mv % users[2], json={'group': 'g1'}),
                 409, 'same_group')
    assert_error(api(bstack, 'POST', mv % users[2], json={'group': 'nope'}),
                 404, 'unknown_group')
    for body in ({}, {'agent': 'b2', 'group': 'g2'}, {'agent': 7},
                 {'group': 'a,b'}):
        assert_error(api(bstack, 'POST', mv % users[2], json=body), 400,
                     'invalid_field')
    # to an agent with room (another group's): served at once
    r = api(bstack, 'POST', mv % users[4], json={'agent': 'b2'})
    assert r.status_code == 200, r.text
    assert r.json() == {'openid': users[4], 'result': 'assigned',
                        'agent': 'b2'}
    assert team['b2'].sessions() == [users[4]]
    q = get(bstack, '/api/v1/queue', group='g1')
    assert [i['openid'] for i in q['items']] == [users[2], users[3],
                                                 users[5]]
    # to a group: b2 has room for one more, so the user is served there
    r = api(bstack, 'POST', mv % users[5], json={'group': 'g2'})
    assert r.json()['result'] == 'assigned' and r.json()['agent'] == 'b2'
    # b2 is full now: the next one moved to g2 waits there
    r = api(bstack, 'POST', mv % users[3], json={'group': 'g2'})
    assert r.status_code == 200, r.text
    assert r.json()['result'] == 'queued' and r.json()['position'] == 1
    assert get(bstack, '/api/v1/queue', group='g2')['items'][0]['openid'] \
        == users[3]
    assert get(bstack, '/api/v1/queue')['total'] == 2
    assert get(bstack, '/api/v1/board')['stats']['waiting'] == 2
    assert_load_invariant(bstack, 2)


def test_forcing_an_agent_paused_then_offline(bstack, team):
    close_everything(bstack, team)
    lead = staff(bstack, 'boardlead', 'supervisor')
    users = ['oBrdFo%022d' % i for i in range(3)]
    for o in users[:2]:
        send(bstack, o, '[g1] 在吗')
    assert sorted(team['b1'].sessions()) == users[:2]
    st = '/api/v1/agents/%s/status'
    # an offline agent cannot be paused; online cannot be forced
    assert_error(api(bstack, 'POST', st % 'c1', lead,
                     json={'status': 'paused'}), 409, 'not_at_work')
    for body in ({'status': 'online'}, {}, {'status': 3}):
        assert_error(api(bstack, 'POST', st % 'b1', lead, json=body), 400,
                     'invalid_field')
    assert_error(api(bstack, 'POST', st % 'nobody', lead,
                     json={'status': 'paused'}), 404, 'unknown_agent')
    # paused by the supervisor: b1 keeps its users, takes no new one
    r = api(bstack, 'POST', st % 'b1', lead, json={'status': 'paused'})
    assert r.status_code == 200, r.text
    assert r.json() == {'account': 'b1', 'status': 'paused',
                        'by': 'boardlead', 'moved': 0}
    api(bstack, 'POST', '/api/v1/sessions/%s/close' % users[0], json={})
    send(bstack, users[2], '[g1] 在吗')
    assert team['b1'].sessions() == [users[1]]
    assert get(bstack, '/api/v1/queue')['items'][0]['openid'] == users[2]
    b1 = [a for a in get(bstack, '/api/v1/board')['agents']
          if a['account'] == 'b1'][0]
    assert b1['status'] == 'paused' and b1['status_by'] == 'boardlead'
    # its console is told, in its feed, who did it
    feed = team['b1'].get('/api/v1/me/events').json()['events']
    forced = [e for e in feed if e.get('type') == 'presence']
    assert forced[-1]['status'] == 'paused' and \
        forced[-1]['by'] == 'boardlead' and forced[-1]['reason'] == 'forced'
    # c1 (g1) comes online: takes the waiting user; then b1 is forced
    # offline and its user goes to c1, as when b1 leaves by itself
    team['c1'].status('online')
    assert team['c1'].sessions() == [users[2]]
    r = api(bstack, 'POST', st % 'b1', json={'status': 'offline'})
    assert r.status_code == 200, r.text
    assert r.json()['moved'] == 1 and r.json()['by'] == 'admin'
    assert team['b1'].sessions() == []
    assert sorted(team['c1'].sessions()) == sorted(users[1:3])
    # a user moved off a forced agent that nobody can take waits at the
    # front, first in the list too (it was being served)
    extra = ['oBrdFoQ%021d' % i for i in range(2)]
    for o in extra:
        send(bstack, o, '[g1] 在吗')            # c1 is full (2): they wait
    r = api(bstack, 'POST', st % 'c1', lead, json={'status': 'offline'})
    assert r.json()['moved'] == 2
    q = get(bstack, '/api/v1/queue')
    # c1 had users[2] first (from the queue), then users[1] (from b1)
    assert [i['openid'] for i in q['items']] == [users[2], users[1]] + extra
    assert [i['position'] for i in q['items']] == [1, 2, 3, 4]
    me = team['b1'].get('/api/v1/me').json()
    assert me['status'] == 'offline' and me['status_by'] == 'admin'
    # forced offline, an agent can be deleted by an admin
    r = api(bstack, 'DELETE', '/api/v1/agents/b1')
    assert r.status_code == 200, r.text
    assert_load_invariant(bstack, 2)
    # the agent setting a status itself takes status_by off
    team['c1'].status('paused')
    c1 = [a for a in get(bstack, '/api/v1/board')['agents']
          if a['account'] == 'c1'][0]
    assert c1['status_by'] == ''
    team['b1'] = Agent(bstack, 'b1', add_agent(bstack, 'b1', groups=['g1']))
    team['b1'].status('online')
    team['c1'].status('offline')


LEAD_ROUTES = [('GET', '/api/v1/board'), ('GET', '/api/v1/queue'),
               ('GET', '/api/v1/sessions'),
               ('POST', '/api/v1/queue/oBrdNobody/assign'),
               ('POST', '/api/v1/agents/nobody/status')]


@pytest.mark.parametrize('method,path', LEAD_ROUTES)
def test_agents_are_refused_supervisors_and_admins_allowed(bstack, team,
                                                           method, path):
    body = {'agent': 'b2'} if 'assign' in path else {'status': 'paused'}
    r = api(bstack, method, path, team['b2'].h, json=body)
    assert_error(r, 403, 'forbidden')
    r = api(bstack, method, path, {}, json=body)
    assert_error(r, 401, 'unauthorized')
    lead = staff(bstack, 'lead%d' % LEAD_ROUTES.index((method, path)),
                 'supervisor')
    for h in (lead, None):
        r = api(bstack, method, path, h, json=body)
        if method == 'GET':
            assert r.status_code == 200, r.text
        else:       # allowed: the refusal is about the target
            assert r.status_code == 404, r.text
            assert r.json()['error']['code'] in ('no_session',
                                                 'unknown_agent')
    # a supervisor's write still needs its CSRF token
    if method == 'POST':
        r = api(bstack, method, path, {'Cookie': lead['Cookie']}, json=body)
        assert_error(r, 403, 'csrf_failed')
