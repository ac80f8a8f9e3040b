"""Reopening a past conversation over HTTP (docs/api.md, POST and GET
/api/v1/sessions/{openid}/reopen): an agent starts a new session with a
user it served before; the user's next message goes to that agent; it is
refused while another agent has the user (saying who), once WeChat's
48-hour window has closed, for a session that was not the agent's own,
and when two agents race for the same user exactly one wins. The archive
shows the new session's start with the reason `reopen`."""

import json
import threading

import pytest
import requests

from conftest import assert_error, run_stack, wait_until
from test_archive import query, wait_archived
from test_routing import Agent, add_agent
from test_wrapup import admin, archived, close, serve

THREAD_TIMEOUT = 20


@pytest.fixture(scope='module')
def rstack():
    yield from run_stack('reopen')


@pytest.fixture(scope='module')
def agents(rstack):
    return tuple(Agent(rstack, acct, add_agent(rstack, acct, capacity=cap))
                 for acct, cap in (('re_a', 2), ('re_b', 2), ('re_c', 2)))


@pytest.fixture(autouse=True)
def nobody_served(rstack, agents):
    """Each test starts with no live session and every agent online."""
    yield
    for a in agents:
        for s in a.get('/api/v1/me/sessions').json().get('sessions', []):
            requests.post(rstack.base + '/api/v1/sessions/%s/close'
                          % s['openid'], json={}, headers=admin(rstack),
                          timeout=10)
        a.status('online')


def reopen(who, openid, body):
    return requests.post(who.stack.base + '/api/v1/sessions/%s/reopen'
                         % openid, json=body, headers=who.h, timeout=10)


def peek(who, openid, session):
    return requests.get(who.stack.base + '/api/v1/sessions/%s/reopen'
                        % openid, params={'session': session},
                        headers=who.h, timeout=10)


def past_session(stack, agent, others, text='在吗'):
    """A user agent served and closed; (user, the archived session id)."""
    u = serve(stack, agent, others, text)
    assert close(agent, u.openid, {}).status_code == 200
    sid = archived(stack, u.openid)[0]
    assert u.openid not in agent.sessions()
    return u, sid


def only_b_takes(agents, u, text):
    """u writes while b is the only agent online: b has the user."""
    a, b, c = agents
    for x in (a, c):
        x.status('paused')
    b.status('online')
    assert u.send_text(text).status_code == 200
    wait_until(lambda: u.openid in b.sessions(), 10, what='b has the user')


def session_hash(stack, openid):
    return stack.redis.hgetall('wxkf:{%s}:sess:%s' % (stack.app_id, openid))


def test_reopen_starts_a_new_session_the_user_writes_into(rstack, agents):
    a, b, c = agents
    u, sid = past_session(rstack, a, [b, c])

    r = peek(a, u.openid, sid)
    assert r.status_code == 200, r.text
    p = r.json()
    assert p['live'] is None and p['window']['open'] is True
    assert p['window']['left'] == 5
    assert p['window']['ends_ms'] > p['now_ms']

    b.status('online')
    r = reopen(a, u.openid, {'session': sid})
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got['result'], got['agent'], got['left']) == ('reopened', 're_a',
                                                         5)
    assert got['session'] != sid
    assert u.openid in a.sessions()
    s = session_hash(rstack, u.openid)
    assert (s['state'], s['agent'], s['id']) == ('active', 're_a',
                                                 str(got['session']))
    why = json.loads(s['why'])
    assert (why['reason'], why['reopens'], why['by']) == ('reopen', sid,
                                                          're_a')
    # no greeting: the agent writes first ([texts] greeting is off here,
    # and the session is marked greeted so it never is)
    assert s.get('greeted') == '1'

    # the user's next message goes to that agent, though b is online too
    assert u.send_text('我又来了').status_code == 200
    assert session_hash(rstack, u.openid)['agent'] == 're_a'
    assert u.openid not in b.sessions()

    # again: the session it has already, nothing changes
    r = reopen(a, u.openid, {'session': sid})
    assert r.status_code == 200, r.text
    assert (r.json()['result'], r.json()['session']) == ('already',
                                                         got['session'])

    # the archive: the new session's start, reopened by the agent
    assert close(a, u.openid, {}).status_code == 200
    wait_archived(rstack, 30)
    rows = query(rstack, "SELECT id, agent, why->>'reason', "
                 "(why->>'reopens')::bigint FROM sessions WHERE openid = %s "
                 "ORDER BY id", (u.openid,))
    assert [r[0] for r in rows] == [sid, got['session']]
    assert rows[0][2] != 'reopen' and rows[0][3] is None
    assert rows[1][1:] == ('re_a', 'reopen', sid)
    ev = [f for _i, f in rstack.entries()
          if f.get('openid') == u.openid and f.get('type') == 'assign'
          and f.get('reason') == 'reopen']
    assert [e['session'] for e in ev] == [str(got['session'])]


def test_a_waiting_user_is_taken_out_of_the_queue(rstack, agents):
    a, b, c = agents
    u, sid = past_session(rstack, a, [b, c])
    for x in agents:
        x.status('paused')
    assert u.send_text('有人吗').status_code == 200
    q = 'wxkf:{%s}:queue:_all' % rstack.app_id
    wait_until(lambda: rstack.redis.zscore(q, u.openid) is not None, 10,
               what='the user queued')
    r = peek(a, u.openid, sid)
    assert r.json()['live'] == {'state': 'waiting', 'agent': ''}

    # a paused agent with a free slot may reopen
    r = reopen(a, u.openid, {'session': sid})
    assert r.status_code == 200, r.text
    assert rstack.redis.zscore(q, u.openid) is None
    assert u.openid in a.sessions()
    assert rstack.redis.scard('wxkf:{%s}:load:re_a' % rstack.app_id) == 1


def test_refused_while_another_agent_has_the_user(rstack, agents):
    a, b, c = agents
    u, sid = past_session(rstack, a, [b, c])
    only_b_takes(agents, u, '还在吗')

    r = reopen(a, u.openid, {'session': sid})
    assert_error(r, 409, 'user_taken')
    assert r.json()['error']['agent'] == 're_b'
    assert peek(a, u.openid, sid).json()['live'] == {'state': 'active',
                                                     'agent': 're_b'}
    assert u.openid in b.sessions() and u.openid not in a.sessions()


def test_refused_once_the_window_has_closed(rstack, agents):
    a, b, c = agents
    u, sid = past_session(rstack, a, [b, c])
    win = 'wxkf:{%s}:win:%s' % (rstack.app_id, u.openid)
    last = int(rstack.redis.hget(win, 'last_ms'))
    rstack.redis.hset(win, 'last_ms', last - 49 * 3600 * 1000)

    p = peek(a, u.openid, sid).json()
    assert p['window']['open'] is False and p['window']['left'] == 0
    assert_error(reopen(a, u.openid, {'session': sid}), 409,
                 'outside_48h_window')
    assert session_hash(rstack, u.openid) == {}

    # the five sends spent: refused the same way
    rstack.redis.hset(win, mapping={'last_ms': last, 'sent': 5})
    assert_error(reopen(a, u.openid, {'session': sid}), 409,
                 'quota_exhausted')
    rstack.redis.hset(win, 'sent', 0)
    assert reopen(a, u.openid, {'session': sid}).status_code == 200


def test_only_the_agent_who_served_it_or_an_admin(rstack, agents):
    a, b, c = agents
    u, sid = past_session(rstack, a, [b, c])
    other, _ = past_session(rstack, b, [a, c])

    # not b's session; not a's session of another user; not for another
    assert_error(reopen(b, u.openid, {'session': sid}), 403, 'not_yours')
    assert_error(peek(b, u.openid, sid), 403, 'not_yours')
    assert_error(reopen(a, other.openid, {'session': sid}), 403,
                 'not_yours')
    assert_error(reopen(a, u.openid, {'session': sid, 'agent': 're_b'}),
                 403, 'forbidden')
    for body in ({}, {'session': 0}, {'session': str(sid)},
                 {'session': sid, 'agent': 7}):
        assert_error(reopen(a, u.openid, body), 400, 'invalid_field')
    assert_error(peek(a, u.openid, 'x'), 400, 'invalid_field')
    assert_error(requests.get(rstack.base + '/api/v1/sessions/%s/reopen'
                              % u.openid, headers=a.h, timeout=10), 400,
                 'invalid_field')
    assert session_hash(rstack, u.openid) == {}

    # an admin reopens for the agent whose session it was, named
    adm = Agent(rstack, 'admin', rstack.admin_token)
    assert_error(reopen(adm, u.openid, {'session': sid}), 400,
                 'invalid_field')
    assert_error(reopen(adm, u.openid, {'session': sid, 'agent': 're_b'}),
                 403, 'not_yours')
    assert peek(adm, u.openid, sid).status_code == 200
    r = reopen(adm, u.openid, {'session': sid, 'agent': 're_a'})
    assert r.status_code == 200, r.text
    assert json.loads(session_hash(rstack, u.openid)['why'])['by'] == ''
    assert u.openid in a.sessions()


def test_an_offline_or_full_agent_cannot_reopen(rstack, agents):
    a, b, c = agents
    u, sid = past_session(rstack, a, [b, c])
    a.status('offline')
    assert_error(reopen(a, u.openid, {'session': sid}), 409,
                 'agent_offline')
    # capacity 2: two users of its own first
    serve(rstack, a, [b, c], '一')
    serve(rstack, a, [b, c], '二')
    assert_error(reopen(a, u.openid, {'session': sid}), 409, 'agent_full')
    assert session_hash(rstack, u.openid) == {}


def test_two_agents_racing_for_a_user_one_wins(rstack, agents):
    a, b, c = agents
    u, sid_a = past_session(rstack, a, [b, c])
    # the same user served by b later: both may reopen it
    only_b_takes(agents, u, '第二次')
    assert close(b, u.openid, {}).status_code == 200
    wait_until(lambda: len(query(rstack, 'SELECT id FROM sessions WHERE '
                                 'openid = %s AND closed_at IS NOT NULL',
                                 (u.openid,))) == 2, 20,
               what='both sessions archived')
    sid_b = query(rstack, 'SELECT id FROM sessions WHERE openid = %s AND '
                  "agent = 're_b'", (u.openid,))[0][0]

    for _round in range(3):
        barrier = threading.Barrier(2, timeout=THREAD_TIMEOUT)
        out = {}

        def go(who, sid):
            barrier.wait()
            out[who.account] = reopen(who, u.openid, {'session': sid})

        ts = [threading.Thread(target=go, args=(a, sid_a)),
              threading.Thread(target=go, args=(b, sid_b))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(THREAD_TIMEOUT)
            assert not t.is_alive(), 'a reopen hung'
        codes = sorted(r.status_code for r in out.values())
        assert codes == [200, 409], {k: v.text for k, v in out.items()}
        winner = next(k for k, v in out.items() if v.status_code == 200)
        loser = next(v for v in out.values() if v.status_code == 409)
        assert loser.json()['error'] == {
            'code': 'user_taken', 'agent': winner,
            'message': 'the user is in a session with another agent'}
        assert session_hash(rstack, u.openid)['agent'] == winner
        loads = [rstack.redis.sismember('wxkf:{%s}:load:%s'
                                        % (rstack.app_id, x.account),
                                        u.openid) for x in (a, b)]
        assert sorted(loads) == [False, True]
        r = requests.post(rstack.base + '/api/v1/sessions/%s/close'
                          % u.openid, json={}, headers=admin(rstack),
                          timeout=10)
        assert r.status_code == 200, r.text
