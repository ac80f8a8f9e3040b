"""Routing, presence and sessions against the real stack: 8 workers,
concurrent clients, agents created with `wxkf agent add`, presence through
the REST API, `wxkf jobs` sweeping. Each assertion is an invariant a user
of the product depends on (docs/routing.md)."""

import collections
import concurrent.futures
import json
import subprocess
import threading
import time

import pytest
import requests

from conftest import run_stack, wait_until, wxkf_bin
from wxkf_checks import load_violations

QUEUED = '前面还有 {n} 位'
OFFLINE = '当前无客服在线'


# --- helpers -------------------------------------------------------------------

def add_agent(stack, account, nick=None, weight=1, capacity=None,
              groups=()):
    cmd = [wxkf_bin(), 'agent', 'add', '-c', stack.conf, '--account',
           account, '--nick', nick or account, '--weight', str(weight)]
    if capacity:
        cmd += ['--capacity', str(capacity)]
    for g in groups:
        cmd += ['--group', g]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)['token']


class Agent:
    def __init__(self, stack, account, token):
        self.stack, self.account, self.token = stack, account, token
        self.h = {'Authorization': 'Bearer ' + token}

    def post(self, path, body=None):
        return requests.post(self.stack.base + path, json=body,
                             headers=self.h, timeout=10)

    def get(self, path):
        return requests.get(self.stack.base + path, headers=self.h,
                            timeout=10)

    def status(self, st):
        r = self.post('/api/v1/me/status', {'status': st})
        assert r.status_code == 200, r.text
        return r.json()

    def sessions(self):
        r = self.get('/api/v1/me/sessions')
        assert r.status_code == 200, r.text
        return [s['openid'] for s in r.json()['sessions']]


def make_agents(stack, specs):
    out = {}
    for spec in specs:
        acct = spec.pop('account')
        out[acct] = Agent(stack, acct, add_agent(stack, acct, **spec))
    return out


def events(stack, kind=None):
    return [f for _id, f in stack.entries()
            if kind is None or f.get('type') == kind]


def assert_load_invariant(stack, default_capacity=5):
    """Every agent's load (SCARD load:<a>) equals its active sessions, and
    never exceeds its capacity ([routing] default_capacity when it has
    none of its own)."""
    _loads, bad = load_violations(stack.redis, 'wxkf:{%s}:' % stack.app_id,
                                  default_capacity)
    assert not bad, bad


def admin(stack):
    return {'Authorization': 'Bearer ' + stack.admin_token}


def reply_text(user, resp):
    rep = user.decode_reply(resp)
    return rep.fields.get('Content') if rep.fields else rep.kind


# --- a stack for the policies and the load test --------------------------------

@pytest.fixture(scope='module')
def rstack():
    yield from run_stack('routing', workers=8, extra={
        'routing': {'policy': 'round_robin', 'default_capacity': '5',
                    'group_policies': 'w:weighted,lb:least_busy,'
                                      '售后:least_busy',
                    'keyword_groups': '[w]:w,[lb]:lb,[q]:q,[p]:p,[x]:x,'
                                      '[o]:o,[e]:e,[售后]:售后',
                    'menu_groups': 'MENU_Q:q',
                    'queue_timeout': '0', 'first_reply_timeout': '0'},
        'texts': {'queued': '您前面还有 {n} 位用户在等待',
                  'no_agent': OFFLINE + '，请留言'},
        # These agents send no heartbeats: on a loaded machine the module
        # outlasts the default 90 s, and a lapsed agent would turn every
        # later routing check into a presence check. Heartbeat loss has
        # its own stack below (tstack, 10 s).
        'presence': {'heartbeat_ttl': '3600'},
    })


@pytest.fixture(scope='module')
def agents(rstack):
    ag = make_agents(rstack, [
        dict(account='rr1', capacity=2000), dict(account='rr2', capacity=2000),
        dict(account='rr3', capacity=2000), dict(account='rr4', capacity=2000),
        dict(account='rr5', capacity=2000),
        dict(account='w3', weight=3, capacity=1000, groups=['w']),
        dict(account='w2', weight=2, capacity=1000, groups=['w']),
        dict(account='w1', weight=1, capacity=1000, groups=['w']),
        dict(account='lb4a', capacity=4, groups=['lb']),
        dict(account='lb4b', capacity=4, groups=['lb']),
        dict(account='lb2', capacity=2, groups=['lb']),
        dict(account='q1', capacity=2, groups=['q']),
        dict(account='p1', groups=['p']),
        dict(account='x1', groups=['x']), dict(account='x2', groups=['x']),
        dict(account='o1', groups=['o']), dict(account='o2', groups=['o']),
        dict(account='e1', capacity=7, groups=['e']),
    ])
    return ag


def test_no_agent_online_answers_offline_text_and_records(rstack, agents):
    u = rstack.user()
    r = u.send_text('有人吗')
    assert r.status_code == 200
    assert OFFLINE in reply_text(u, r)
    ins = [f for f in events(rstack, 'msg_in') if f['openid'] == u.openid]
    assert len(ins) == 1 and ins[0]['decision'].startswith('offline:')
    # The user waits: when an agent comes online they are served.
    agents['rr1'].status('online')
    wait_until(lambda: u.openid in agents['rr1'].sessions(), 5,
               what='the waiting user to be assigned')
    agents['rr1'].post('/api/v1/sessions/%s/close' % u.openid)
    agents['rr1'].status('offline')


def test_round_robin_spread_and_stickiness_under_load(rstack, agents):
    """8 workers, 64 concurrent clients, 20,000 messages from 5,000 users:
    every user stays with one agent, shares differ by at most 1, and every
    load equals its active sessions."""
    rr = ['rr1', 'rr2', 'rr3', 'rr4', 'rr5']
    for a in rr:
        agents[a].status('online')
    users = [rstack.user() for _ in range(5000)]
    errors = []
    counter = iter(range(10 ** 9))
    lock = threading.Lock()

    def one(u, i):
        with lock:
            n = next(counter)
        r = u.send_text('load %d' % i, msgid=str(5000000000 + n))
        if r.status_code != 200 or r.text != 'success':
            errors.append((r.status_code, r.text[:80]))

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(64) as ex:
        for i in range(4):                    # 4 rounds x 5,000 users
            list(ex.map(lambda u: one(u, i), users))
    elapsed = time.monotonic() - t0
    assert not errors, errors[:5]
    ins = [f for f in events(rstack, 'msg_in')
           if f['openid'] in {u.openid for u in users}]
    assert len(ins) == 20000
    by_user = collections.defaultdict(set)
    for f in ins:
        by_user[f['openid']].add(f['agent'])
    assert all(len(a) == 1 for a in by_user.values())     # sticky
    share = collections.Counter(next(iter(a)) for a in by_user.values())
    assert set(share) == set(rr)
    assert max(share.values()) - min(share.values()) <= 1, share
    assert_load_invariant(rstack)
    print('\n20,000 callbacks from 5,000 users, 64 clients, 8 workers: '
          '%.1f s (%.0f/s)' % (elapsed, 20000 / elapsed))
    # The admin closes them all (and the agents leave) for the next tests.
    def close(u):
        r = requests.post(rstack.base + '/api/v1/sessions/%s/close'
                          % u.openid, headers=admin(rstack), timeout=10)
        assert r.status_code == 200, r.text
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        list(ex.map(close, users))
    for a in rr:
        assert agents[a].status('offline')['moved'] == 0
    assert_load_invariant(rstack)
    closes = [f for f in events(rstack, 'close') if f['reason'] == 'admin']
    assert len(closes) >= 5000


def test_weighted_shares_are_exact_without_long_runs(rstack, agents):
    for a in ('w3', 'w2', 'w1'):
        agents[a].status('online')
    users = [rstack.user() for _ in range(60)]
    for u in users:                             # sequential: order matters
        assert u.send_text('[w] 你好').status_code == 200
    seq = [f['agent'] for f in events(rstack, 'assign')
           if f['openid'] in {u.openid for u in users}]
    assert collections.Counter(seq) == {'w3': 30, 'w2': 20, 'w1': 10}
    # nginx's smooth weighted round robin for 3:2:1 never gives one agent
    # more than 2 new users in a row.
    longest = max(len(list(g)) for _k, g in __import__('itertools')
                  .groupby(seq))
    assert longest <= 2, seq[:12]
    assert_load_invariant(rstack)


def test_least_busy_picks_the_lowest_load_ratio(rstack, agents):
    for a in ('lb4a', 'lb4b', 'lb2'):
        agents[a].status('online')
    users = [rstack.user() for _ in range(10)]
    for u in users:
        assert u.send_text('[lb] hi').status_code == 200
    picks = [f for f in events(rstack, 'assign')
             if f['openid'] in {u.openid for u in users}]
    assert len(picks) == 10                     # 4 + 4 + 2 slots
    for f in picks:
        why = json.loads(f['why'])
        assert why['policy'] == 'least_busy' and why['group'] == 'lb'
        ratio = {c['agent']: c['load'] / c['capacity']
                 for c in why['candidates']}
        assert ratio[why['chosen']] == min(ratio.values()), why
    assert_load_invariant(rstack)
    # Everyone is full now: the next user waits, first in line.
    u = rstack.user()
    assert QUEUED.format(n=0) in reply_text(u, u.send_text('[lb] full?'))


def test_queue_is_fifo_and_capacity_is_never_exceeded(rstack, agents):
    q1 = agents['q1']
    q1.status('online')
    users = [rstack.user() for _ in range(5)]
    texts = [reply_text(u, u.send_event('CLICK', EventKey='MENU_Q'))
             for u in users]
    assert texts[:2] == ['success', 'success']
    # {n} counts the users ahead: the first one waiting is told 0
    assert [QUEUED.format(n=i) in t for i, t in zip((0, 1, 2), texts[2:])] \
        == [True, True, True]
    assert sorted(q1.sessions()) == sorted(u.openid for u in users[:2])
    # A second message while waiting says the current position.
    assert QUEUED.format(n=1) in reply_text(users[3],
                                            users[3].send_text('还要等吗'))
    # Sessions close one by one: the waiting users come in arrival order.
    for i in range(3):
        first = sorted(q1.sessions())[0]
        r = q1.post('/api/v1/sessions/%s/close' % first)
        assert r.status_code == 200, r.text
        assert users[2 + i].openid in q1.sessions()
        assert len(q1.sessions()) <= 2
        assert_load_invariant(rstack)


def test_paused_agent_keeps_its_users_but_takes_no_new_ones(rstack, agents):
    a = agents['p1']
    a.status('online')
    u = rstack.user()
    u.send_text('[p] first')
    assert u.openid in a.sessions()
    a.status('paused')
    assert u.send_text('second').text == 'success'      # sticky while paused
    assert u.openid in a.sessions()
    v = rstack.user()
    text = reply_text(v, v.send_text('[p] new user'))
    assert QUEUED.format(n=0) in text                   # not "offline"
    assert v.openid not in a.sessions()
    a.status('online')
    assert v.openid in a.sessions()       # taken at once on un-pausing
    assert_load_invariant(rstack)


def test_transfer_and_close_through_the_api(rstack, agents):
    a, b = agents['x1'], agents['x2']
    a.status('online')
    u = rstack.user()
    u.send_text('[x] transfer me')
    assert u.openid in a.sessions()
    # b may not act on a's session; a refused transfer changes nothing.
    assert b.post('/api/v1/sessions/%s/close' % u.openid).status_code == 403
    assert b.get('/api/v1/sessions/%s' % u.openid).status_code == 403
    r = a.post('/api/v1/sessions/%s/transfer' % u.openid, {'to_agent': 'x2'})
    assert r.status_code == 409 and r.json()['error']['code'] == \
        'agent_offline'
    assert u.openid in a.sessions()
    b.status('online')
    r = a.post('/api/v1/sessions/%s/transfer' % u.openid, {'to_agent': 'x2'})
    assert r.status_code == 200, r.text
    assert u.openid in b.sessions() and u.openid not in a.sessions()
    assert u.send_text('after transfer').text == 'success'
    ins = [f for f in events(rstack, 'msg_in') if f['openid'] == u.openid]
    assert ins[-1]['agent'] == 'x2'
    tr = [f for f in events(rstack, 'transfer') if f['openid'] == u.openid]
    assert tr and tr[-1]['agent'] == 'x2'
    view = b.get('/api/v1/sessions/%s' % u.openid).json()
    assert view['agent'] == 'x2' and view['why']['reason'] == 'transfer'
    # Back to the group: the only other member is x1.
    r = b.post('/api/v1/sessions/%s/transfer' % u.openid, {'to_group': 'x'})
    assert r.status_code == 200 and r.json()['result'] == 'assigned:x1'
    assert a.post('/api/v1/sessions/%s/close' % u.openid).status_code == 200
    assert u.openid not in a.sessions()
    closes = [f for f in events(rstack, 'close') if f['openid'] == u.openid]
    assert closes[-1]['reason'] == 'agent'
    assert a.post('/api/v1/sessions/%s/close' % u.openid).status_code == 404
    assert_load_invariant(rstack)


def test_a_group_named_in_chinese_routes_and_takes_transfers(rstack, agents):
    """售后 (after-sales) is a group like any other: agents join it through
    the admin API and the CLI, a keyword rule routes to it with the
    group's own policy, and a session is transferred to it by name."""
    r = requests.post(rstack.base + '/api/v1/agents', headers=admin(rstack),
                      json={'account': 'sh1', 'nick': '售后一号',
                            'groups': ['售后', 'vip'], 'capacity': 3},
                      timeout=10)
    assert r.status_code == 201, r.text
    s1 = Agent(rstack, 'sh1', r.json()['token'])
    assert r.json()['agent']['groups'] == ['售后', 'vip']
    got = requests.get(rstack.base + '/api/v1/agents/sh1',
                       headers=admin(rstack), timeout=10).json()['agent']
    assert got['groups'] == ['售后', 'vip']
    s2 = Agent(rstack, 'sh2', add_agent(rstack, 'sh2', groups=['售后']))
    s1.status('online')
    s2.status('online')
    u = rstack.user()
    u.send_text('[售后] 我要退货')
    first = s1 if u.openid in s1.sessions() else s2
    other = s2 if first is s1 else s1
    assert u.openid in first.sessions()
    why = first.get('/api/v1/sessions/%s' % u.openid).json()['why']
    assert why['group'] == '售后' and why['policy'] == 'least_busy'
    # Away from the group and back to it by its name.
    r = first.post('/api/v1/sessions/%s/transfer' % u.openid,
                   {'to_group': '售后'})
    assert r.status_code == 200 and \
        r.json()['result'] == 'assigned:' + other.account, r.text
    r = other.post('/api/v1/sessions/%s/transfer' % u.openid,
                   {'to_group': '售 后'})
    assert r.status_code == 400 and \
        r.json()['error']['code'] == 'invalid_field', r.text
    assert other.post('/api/v1/sessions/%s/close' % u.openid
                      ).status_code == 200
    for a in (s1, s2):
        a.status('offline')
    assert_load_invariant(rstack)


def test_going_offline_moves_sessions_to_a_colleague(rstack, agents):
    a, b = agents['o1'], agents['o2']
    a.status('online')
    users = [rstack.user() for _ in range(3)]
    for u in users:
        u.send_text('[o] hello')
    assert sorted(a.sessions()) == sorted(u.openid for u in users)
    b.status('online')
    moved = a.status('offline')['moved']
    assert moved == 3
    assert sorted(b.sessions()) == sorted(u.openid for u in users)
    re = [f for f in events(rstack, 'reassign')
          if f['openid'] in {u.openid for u in users}]
    assert {f['reason'] for f in re} == {'agent_offline'}
    assert_load_invariant(rstack)


def test_api_requires_a_valid_token(rstack, agents):
    base = rstack.base
    assert requests.post(base + '/api/v1/me/heartbeat',
                         timeout=10).status_code == 401
    bad = {'Authorization': 'Bearer wxa_' + '0' * 64}
    assert requests.post(base + '/api/v1/me/heartbeat', headers=bad,
                         timeout=10).status_code == 401
    a = agents['rr1']
    assert a.post('/api/v1/me/heartbeat').status_code == 200
    assert a.get('/api/v1/stats').status_code == 403        # admin only
    r = a.post('/api/v1/me/status', {'status': 'sleeping'})
    assert r.status_code == 400 and r.json()['error']['code'] == \
        'invalid_field'
    r = a.post('/api/v1/me/status', {'status': 5})
    assert r.status_code == 400 and 'status' in r.json()['error']['message']


def test_each_routing_decision_is_explained(rstack, agents):
    a = agents['e1']
    a.status('online')
    u = rstack.user()
    u.send_text('[e] why me?')
    view = a.get('/api/v1/sessions/%s' % u.openid).json()
    why = view['why']
    assert why['chosen'] == 'e1' and why['policy'] == 'round_robin'
    assert why['group'] == 'e' and why['reason'] == 'new_session'
    assert why['candidates'] == [{'agent': 'e1', 'load': 0, 'capacity': 7}]
    stats = requests.get(rstack.base + '/api/v1/stats', headers=admin(rstack),
                         timeout=10).json()
    assert stats['agent_stats']['e1'] == {'status': 'online', 'load': 1,
                                          'share': 1}
    assert stats['online'] >= 1 and stats['sessions_active'] >= 1


# --- a stack with short timeouts -------------------------------------------------

@pytest.fixture(scope='module')
def tstack():
    yield from run_stack('timeouts', workers=2, extra={
        'routing': {'queue_timeout': '3', 'first_reply_timeout': '3',
                    'default_capacity': '1'},
        'session': {'idle_timeout': '5'},
        'presence': {'heartbeat_ttl': '10'},
    })


@pytest.fixture(scope='module')
def tagents(tstack):
    return make_agents(tstack, [dict(account='t1'), dict(account='t2')])


def test_idle_session_expires_and_load_follows(tstack, tagents):
    a = tagents['t1']
    a.status('online')
    u = tstack.user()
    u.send_text('then silence')
    assert u.openid in a.sessions()
    wait_until(lambda: u.openid not in a.sessions(), 15,
               what='the idle session to expire')
    closes = [f for f in events(tstack, 'close') if f['openid'] == u.openid]
    assert closes and closes[-1]['reason'] in ('idle_timeout',
                                               'first_reply_timeout')
    assert_load_invariant(tstack)
    a.status('offline')


def test_unanswered_session_goes_to_another_agent(tstack, tagents):
    a, b = tagents['t1'], tagents['t2']
    a.status('online')
    u = tstack.user()
    u.send_text('anyone?')
    assert u.openid in a.sessions()
    b.status('online')
    wait_until(lambda: u.openid in b.sessions(), 10,
               what='the first-reply timeout to re-route')
    re = [f for f in events(tstack, 'reassign') if f['openid'] == u.openid]
    assert re and re[-1]['reason'] == 'first_reply_timeout'
    assert json.loads(re[-1]['why'])['candidates'][0]['agent'] == 't2'
    assert_load_invariant(tstack)
    a.status('offline')
    b.status('offline')


def test_waiting_too_long_leaves_the_queue(tstack, tagents):
    u = tstack.user()
    u.send_text('nobody here')
    wait_until(lambda: any(f.get('reason') == 'queue_timeout' and
                           f['openid'] == u.openid
                           for f in events(tstack, 'close')), 10,
               what='the queue timeout')
    ev = [f for f in events(tstack, 'close') if f['openid'] == u.openid][-1]
    assert ev['notify'] == 'leave_message'
    assert not tstack.redis.exists('wxkf:{%s}:sess:%s' % (tstack.app_id,
                                                          u.openid))


def test_lost_heartbeat_takes_the_agent_offline(tstack, tagents):
    a = tagents['t1']
    a.status('online')
    u = tstack.user()
    u.send_text('hello')
    assert u.openid in a.sessions()
    # No heartbeat: after heartbeat_ttl (10 s) `wxkf jobs` marks a offline
    # and the user goes back to the queue (nobody else is online).
    wait_until(lambda: tstack.redis.hget('wxkf:{%s}:agent:t1'
                                         % tstack.app_id, 'status')
               == 'offline', 20, interval=0.5, what='heartbeat loss')
    pres = [f for f in events(tstack, 'presence') if f['agent'] == 't1']
    assert pres[-1]['reason'] == 'heartbeat_lost'
    assert u.openid not in a.sessions()
    assert_load_invariant(tstack)


# --- returning customers and the window queue order ----------------------------

@pytest.fixture(scope='module')
def wstack():
    yield from run_stack('returning', workers=4, extra={
        'routing': {'returning': '7', 'queue_order': 'window',
                    'keyword_groups': '[wq]:wq', 'menu_groups': 'MENU_WQ:wq',
                    'queue_timeout': '0'},
        'texts': {'queued': '您前面还有 {n} 位用户在等待'},
        'presence': {'heartbeat_ttl': '3600'},
    })


@pytest.fixture(scope='module')
def wagents(wstack):
    return make_agents(wstack, [
        dict(account='ra', capacity=3), dict(account='rb', capacity=4),
        dict(account='rc', capacity=6), dict(account='wq1', capacity=1,
                                             groups=['wq'])])


def session_view(stack, openid):
    r = requests.get(stack.base + '/api/v1/sessions/%s' % openid,
                     headers=admin(stack), timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def admin_close(stack, openid):
    r = requests.post(stack.base + '/api/v1/sessions/%s/close' % openid,
                      headers=admin(stack), timeout=10)
    assert r.status_code == 200, r.text


def send_all(users, text):
    """One message from every user at once; every reply is 200."""
    with concurrent.futures.ThreadPoolExecutor(len(users)) as ex:
        codes = list(ex.map(lambda u: u.send_text(text).status_code, users))
    assert codes == [200] * len(users)


def test_returning_users_go_back_to_their_agent_within_capacity(wstack,
                                                                 wagents):
    """Six users served by ra and rb come back at once: rb's three all
    return to rb; ra has room for two of its three (a new user holds its
    third slot), and the third gets the normal policy. No agent ever
    holds more than its capacity."""
    ra, rb, rc = wagents['ra'], wagents['rb'], wagents['rc']
    ra.status('online')
    rb.status('online')
    users = [wstack.user() for _ in range(6)]
    send_all(users, '你好')
    first = {u.openid: session_view(wstack, u.openid)['agent']
             for u in users}
    assert sorted(collections.Counter(first.values()).values()) == [3, 3]
    for u in users:
        admin_close(wstack, u.openid)
    rc.status('online')
    holder = wstack.user()
    # round robin over ra, rb, rc: keep sending new users until one is
    # ra's (bounded: three turns at most)
    for _ in range(3):
        holder.send_text('新用户')
        if session_view(wstack, holder.openid)['agent'] == 'ra':
            break
        admin_close(wstack, holder.openid)
        holder = wstack.user()
    assert session_view(wstack, holder.openid)['agent'] == 'ra'
    send_all(users, '我又来了')
    back = {u.openid: session_view(wstack, u.openid) for u in users}
    for o, a in first.items():
        v = back[o]
        if a == 'rb':
            assert v['agent'] == 'rb'
            assert v['why']['reason'] == 'returning'
            assert v['why']['policy'] == 'returning'
    ra_back = [o for o, a in first.items() if a == 'ra'
               and back[o]['agent'] == 'ra']
    assert len(ra_back) == 2
    for o in ra_back:
        assert back[o]['why']['reason'] == 'returning'
    (other,) = [o for o, a in first.items() if a == 'ra'
                and back[o]['agent'] != 'ra']
    assert back[other]['agent'] in ('rb', 'rc')
    assert back[other]['why']['reason'] == 'new_session'
    assert len(ra.sessions()) == 3
    assert_load_invariant(wstack)
    for u in users + [holder]:
        admin_close(wstack, u.openid)
    for a in (ra, rb, rc):
        assert a.status('offline')['moved'] == 0


def test_window_order_serves_the_closing_window_first(wstack, wagents):
    """queue_order = window: a menu click's user (a 1-minute window) is
    told it is next and is served before users who wrote earlier."""
    wq1 = wagents['wq1']
    wq1.status('online')
    served, early, late = wstack.user(), wstack.user(), wstack.user()
    assert reply_text(served, served.send_text('[wq] 你好')) == 'success'
    assert '前面还有 0 位' in reply_text(early, early.send_text('[wq] 在吗'))
    assert '前面还有 0 位' in reply_text(
        late, late.send_event('CLICK', EventKey='MENU_WQ'))
    assert '前面还有 1 位' in reply_text(early, early.send_text('[wq] 还在吗'))
    r = wq1.post('/api/v1/sessions/%s/close' % served.openid)
    assert r.status_code == 200, r.text
    assert late.openid in wq1.sessions()
    assert session_view(wstack, early.openid)['state'] == 'waiting'
    assert_load_invariant(wstack)
