"""What a user sees of routing besides the agent's own words, against the
WeChat API simulator: the greeting ([texts] greeting) sent once per
session when the user reaches an agent, delivered by `wxkf jobs`,
counted against the window's five sends and shown to the agent; and
`POST /api/v1/sessions/{openid}/typing` (custom/typing while an agent
types: at most once every 10 s per user, never outside the window, with
WeChat's typing errors as the simulator gives them)."""

import time

import pytest
import requests

from conftest import run_sim_stack, sim_server, wait_until
from test_outbound import (SECRET, feed, kf_agent, reply, sent_to,
                           user_writes)
from test_routing import Agent, add_agent, admin

GREETING = '客服已接收您的消息，请稍候。'
KF = 'gt1@simshop'


@pytest.fixture(scope='module')
def sim():
    yield from sim_server(SECRET)


@pytest.fixture(scope='module')
def gstack(sim):
    yield from run_sim_stack('greeting', sim, SECRET, workers=2, extra={
        'routing': {'default_capacity': '1', 'queue_timeout': '0'},
        'texts': {'greeting': GREETING},
        'presence': {'heartbeat_ttl': '3600'},
    })


@pytest.fixture(scope='module')
def agent(sim, gstack):
    return kf_agent(sim, gstack, KF, '小问')


def texts_to(sim, openid):
    return [s['body']['text']['content'] for s in sent_to(sim, openid)
            if s['body']['msgtype'] == 'text']


def greetings_of(agent, openid):
    return [e for e in feed(agent)['events'] if e.get('openid') == openid
            and e['type'] == 'msg_out' and e.get('marker') == 'greeting']


def close(agent, openid):
    r = agent.post('/api/v1/sessions/%s/close' % openid)
    assert r.status_code == 200, r.text


def test_greeting_reaches_the_user_once_and_counts_against_the_window(
        sim, gstack, agent):
    o = 'oGreeting00000000000000000001'
    user_writes(sim, o)
    assert o in agent.sessions()
    wait_until(lambda: texts_to(sim, o) == [GREETING], 15,
               what='the greeting, delivered by wxkf jobs')
    got = sent_to(sim, o)[0]['body']
    assert got['customservice']['kf_account'] == KF
    # shown to the agent, after the user's message, delivered
    (g,) = greetings_of(agent, o)
    assert g['by'] == 'wxkf' and g['agent'] == KF
    evs = [e for e in feed(agent)['events'] if e.get('openid') == o]
    kinds = [e['type'] for e in evs]
    assert kinds.index('msg_in') < kinds.index('msg_out')
    wait_until(lambda: [e['status'] for e in feed(agent)['events']
                        if e['type'] == 'delivery'
                        and e['msg_id'] == g['msg_id']] == ['sent'], 15,
               what='the greeting\'s delivery event')
    # the greeting was one of the five: the agent has four
    for i in range(4):
        r = reply(agent, o, 'answer %d' % i)
        assert r.status_code == 200 and r.json()['left'] == 3 - i, r.text
    r = reply(agent, o, 'one too many')
    assert r.status_code == 409
    assert r.json()['error']['code'] == 'quota_exhausted'
    # a second message in the same session: no second greeting
    user_writes(sim, o, '还有一个问题')
    assert reply(agent, o, 'sure').status_code == 200
    assert texts_to(sim, o).count(GREETING) == 1
    assert len(greetings_of(agent, o)) == 1
    close(agent, o)


def test_a_waiting_user_is_greeted_when_an_agent_takes_it(sim, gstack,
                                                          agent):
    first, second = ('oGreeting00000000000000000002',
                     'oGreeting00000000000000000003')
    user_writes(sim, first)
    user_writes(sim, second)                    # capacity 1: waits
    wait_until(lambda: texts_to(sim, first) == [GREETING], 15,
               what='the first user\'s greeting')
    assert texts_to(sim, second) == []
    assert greetings_of(agent, second) == []
    close(agent, first)
    assert second in agent.sessions()
    wait_until(lambda: texts_to(sim, second) == [GREETING], 15,
               what='the greeting once the user reached the agent')
    close(agent, second)


def archived_greetings(agent, openid):
    r = agent.get('/api/v1/users/%s/messages' % openid)
    assert r.status_code == 200, r.text
    return [m for m in r.json()['messages']
            if m['direction'] == 'out' and m['content'] == GREETING]


def test_the_greeting_keeps_its_marker_in_the_archived_history(sim, gstack,
                                                               agent):
    """What a reload shows (the history API, written by `wxkf jobs`'s
    archiver) marks the greeting as the live feed did: by wxkf, marker
    greeting — not as an unmarked message."""
    o = 'oGreeting00000000000000000004'
    user_writes(sim, o)
    assert o in agent.sessions()
    wait_until(lambda: len(greetings_of(agent, o)) == 1, 15,
               what='the greeting in the feed')
    (live,) = greetings_of(agent, o)
    wait_until(lambda: len(archived_greetings(agent, o)) == 1, 20,
               what='the greeting archived by wxkf jobs')
    (m,) = archived_greetings(agent, o)
    assert m['payload'].get('by') == live['by'] == 'wxkf'
    assert m['payload'].get('marker') == live['marker'] == 'greeting'
    assert m['agent'] == KF
    # the user's own message carries no marker
    ins = [x for x in agent.get('/api/v1/users/%s/messages' % o)
           .json()['messages'] if x['direction'] == 'in']
    assert ins and all('marker' not in x['payload'] for x in ins)
    close(agent, o)


TYPING = '/cgi-bin/message/custom/typing'


def typing_calls(sim):
    return sim.calls()['paths'].get(TYPING, {}).get('count', 0)


def typing(who, openid):
    return who.post('/api/v1/sessions/%s/typing' % openid)


def test_typing_is_told_to_wechat_at_most_every_ten_seconds(sim, gstack,
                                                           agent):
    o = 'oTyping000000000000000000001'
    user_writes(sim, o)
    assert o in agent.sessions()
    before = typing_calls(sim)
    r = typing(agent, o)
    assert r.status_code == 200 and r.json() == {'sent': True}, r.text
    assert typing_calls(sim) == before + 1
    # again at once: not within 10 s of the last (P typing:<openid>)
    for _ in range(3):
        r = typing(agent, o)
        assert r.json() == {'sent': False, 'reason': 'recent'}, r.text
    assert typing_calls(sim) == before + 1
    key = 'wxkf:{%s}:typing:%s' % (gstack.app_id, o)
    assert 0 < gstack.redis.pttl(key) <= 10000
    # ten seconds later (the key gone): WeChat is asked again; its typing
    # lasts 15 s, so it answers 45081, which is no error to the agent
    gstack.redis.delete(key)
    r = typing(agent, o)
    assert r.status_code == 200, r.text
    assert r.json() == {'sent': False, 'reason': 'already_typing'}
    assert typing_calls(sim) == before + 2
    close(agent, o)


def test_typing_is_never_sent_outside_the_window(sim, gstack, agent):
    o = 'oTyping000000000000000000002'
    user_writes(sim, o)
    win = 'wxkf:{%s}:win:%s' % (gstack.app_id, o)
    before = typing_calls(sim)
    # the user wrote 31 s ago: WeChat would refuse (45080), not asked
    gstack.redis.hset(win, 'last_ms', int(time.time() * 1000) - 31000)
    r = typing(agent, o)
    assert r.status_code == 200, r.text
    assert r.json() == {'sent': False, 'reason': 'quiet'}
    # 49 hours ago: the window is closed, a refusal
    gstack.redis.hset(win, 'last_ms',
                      int((time.time() - 49 * 3600) * 1000))
    r = typing(agent, o)
    assert r.status_code == 409, r.text
    assert r.json()['error']['code'] == 'outside_48h_window'
    assert typing_calls(sim) == before
    close(agent, o)


def test_typing_authorization(sim, gstack, agent):
    o = 'oTyping000000000000000000003'
    user_writes(sim, o)
    other = Agent(gstack, 'gt2@simshop', add_agent(gstack, 'gt2@simshop'))
    before = typing_calls(sim)
    url = gstack.base + '/api/v1/sessions/%s/typing' % o
    assert requests.post(url, timeout=10).status_code == 401
    assert requests.post(url, headers={'Authorization': 'Bearer nope'},
                         timeout=10).status_code == 401
    r = typing(other, o)                  # another agent's user
    assert r.status_code == 403 and r.json()['error']['code'] == 'not_yours'
    r = typing(other, 'oTypingNobody0000000000000000')
    assert r.status_code == 404 and r.json()['error']['code'] == 'no_session'
    assert typing_calls(sim) == before
    # an admin may (as for a send)
    r = requests.post(url, headers=admin(gstack), timeout=10)
    assert r.status_code == 200 and r.json() == {'sent': True}, r.text
    r = agent.get('/api/v1/sessions/%s/typing' % o)
    assert r.status_code == 405
    close(agent, o)
