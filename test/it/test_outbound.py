"""Agents answer users through WeChat's customer-service API — here the
bundled simulator (test/sim/wechat_api_sim.py) in place of WeChat: the
reply arrives with the agent's kf_account, the 48-hour window and the send
quota are enforced before WeChat is called, transient failures are queued
and delivered by `wxkf jobs`, one token serves every worker, the rate limit
holds across processes, and a user who waited too long gets the
leave-a-message text."""

import concurrent.futures
import time

import pytest

from conftest import run_sim_stack, sim_server, wait_until
from test_routing import Agent, add_agent

SECRET = 'simSecret0123456789abcdef'
LEAVE = '请留言，我们会尽快回复您'
SEND = '/cgi-bin/message/custom/send'


@pytest.fixture(scope='module')
def sim():
    yield from sim_server(SECRET)


@pytest.fixture(scope='module')
def ostack(sim):
    yield from run_sim_stack('outbound', sim, SECRET, workers=8, extra={
        'wechat': {'api_retries': '2'},
        'routing': {'queue_timeout': '2', 'default_capacity': '50'},
        'ratelimit': {'wechat_api_per_min': '600'},
        'texts': {'leave_message': LEAVE},
    })


KF = 'ob1@simshop'


def kf_agent(sim, stack, account, nickname):
    """An online agent that is a customer-service account at WeChat
    too."""
    st, out = sim.call('POST', '/customservice/kfaccount/add',
                       {'kf_account': account, 'nickname': nickname},
                       query={'access_token': sim.token()})
    assert st == 200 and out['errcode'] == 0, out
    a = Agent(stack, account, add_agent(stack, account))
    a.status('online')
    return a


@pytest.fixture(scope='module')
def agent(sim, ostack):
    return kf_agent(sim, ostack, KF, '小欧')


def user_writes(sim, openid, content='你好', mode='safe'):
    out = sim.user_send(openid, type='text', content=content, mode=mode)
    assert out['status'] == 200, out
    return out


def sent_to(sim, openid):
    return [s for s in sim.sent() if s['body']['touser'] == openid] \
        if isinstance(sim.sent(), list) else \
        [s for s in sim.sent()['sent'] if s['body']['touser'] == openid]


def reply(a, openid, text):
    return a.post('/api/v1/sessions/%s/messages' % openid,
                  {'msgtype': 'text', 'text': {'content': text}})


def feed(a, after=''):
    r = a.get('/api/v1/me/events?after=%s' % after)
    assert r.status_code == 200, r.text
    return r.json()


def test_reply_reaches_wechat_as_the_agent(sim, ostack, agent):
    o = 'oOutbound0000000000000000001'
    user_writes(sim, o)
    assert o in agent.sessions()
    r = reply(agent, o, '您好，请问有什么可以帮您？')
    assert r.status_code == 200, r.text
    assert r.json()['status'] == 'sent' and r.json()['left'] == 4
    got = sent_to(sim, o)
    assert len(got) == 1
    body = got[0]['body']
    assert body['msgtype'] == 'text'
    assert body['text']['content'] == '您好，请问有什么可以帮您？'
    assert body['customservice']['kf_account'] == KF
    evs = [e for e in feed(agent)['events'] if e.get('openid') == o]
    kinds = [e['type'] for e in evs]
    assert 'msg_in' in kinds and 'msg_out' in kinds
    assert [e['status'] for e in evs if e['type'] == 'delivery'] == ['sent']


def test_quota_is_enforced_before_calling_wechat(sim, ostack, agent):
    o = 'oOutbound0000000000000000002'
    user_writes(sim, o)
    for i in range(5):
        r = reply(agent, o, 'answer %d' % i)
        assert r.status_code == 200 and r.json()['left'] == 4 - i
    r = reply(agent, o, 'one too many')
    assert r.status_code == 409
    assert r.json()['error']['code'] == 'quota_exhausted'
    assert len(sent_to(sim, o)) == 5            # WeChat never saw it
    user_writes(sim, o, '再问一个问题')            # a new message: 5 again
    assert reply(agent, o, 'sure').status_code == 200


def test_outside_the_48_hour_window_is_refused(sim, ostack, agent):
    o = 'oOutbound0000000000000000003'
    user_writes(sim, o)
    # Time travel: the user's last message was 49 hours ago.
    key = 'wxkf:{%s}:win:%s' % (ostack.app_id, o)
    ostack.redis.hset(key, 'last_ms', int((time.time() - 49 * 3600) * 1000))
    r = reply(agent, o, 'too late')
    assert r.status_code == 409
    assert r.json()['error']['code'] == 'outside_48h_window'
    assert sent_to(sim, o) == []


def test_transient_failure_is_queued_then_delivered(sim, ostack, agent):
    o = 'oOutbound0000000000000000004'
    user_writes(sim, o)
    cursor = feed(agent)['next']
    sim.fault(path=SEND, kind='errcode', errcode=-1, count=3)
    r = reply(agent, o, 'eventually')
    assert r.status_code == 202, r.text
    assert r.json()['status'] == 'queued'
    wait_until(lambda: len(sent_to(sim, o)) == 1, 15,
               what='wxkf jobs to deliver the queued reply')
    statuses = []

    def delivered():
        nonlocal cursor
        page = feed(agent, cursor)
        cursor = page['next']
        statuses.extend(e['status'] for e in page['events']
                        if e['type'] == 'delivery' and e['openid'] == o)
        return 'sent' in statuses
    wait_until(delivered, 10, what='the delivery event')
    assert statuses == ['queued', 'sent']       # in order, none twice
    assert feed(agent, cursor)['events'] == []  # nothing more after it


def test_wechat_refusal_is_reported_and_the_send_given_back(sim, ostack,
                                                            agent):
    o = 'oOutbound0000000000000000005'
    user_writes(sim, o)
    sim.fault(path=SEND, kind='errcode', errcode=45015, count=1)
    r = reply(agent, o, 'refused')
    assert r.status_code == 409
    err = r.json()['error']
    assert err['code'] == 'outside_48h_window' and err['errcode'] == 45015
    r = reply(agent, o, 'accepted')
    assert r.status_code == 200 and r.json()['left'] == 4


def stable_token_fetches(sim):
    return sim.calls()['paths'].get('/cgi-bin/stable_token',
                                    {}).get('count', 0)


def test_one_token_serves_every_worker(sim, ostack, agent):
    """8 workers answering 16 users at once: the access token was fetched
    once for the whole module (cached in Redis, refreshed under a lock),
    and every send used it."""
    users = ['oOutboundTok%016d' % i for i in range(16)]
    for o in users:
        user_writes(sim, o, mode='plain')
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        codes = list(ex.map(lambda o: reply(agent, o, 'hi').status_code,
                            users))
    assert codes == [200] * 16
    assert stable_token_fetches(sim) == 1
    ours = [t for t, u in sim.calls()['tokens'].items()
            if SEND in u['paths']]
    assert len(ours) == 1


def test_forced_token_invalidation_refreshes_once(sim, ostack, agent):
    o = 'oOutbound0000000000000000007'
    user_writes(sim, o)
    before = stable_token_fetches(sim)
    sim.call('POST', '/_sim/token', {'revoke_all': True})
    r = reply(agent, o, 'after the token was revoked')
    assert r.status_code == 200, r.text         # refreshed and retried
    assert stable_token_fetches(sim) == before + 1


def test_waiting_too_long_gets_the_leave_message(sim, ostack, agent):
    agent.status('offline')
    o = 'oOutbound0000000000000000006'
    user_writes(sim, o)
    wait_until(lambda: any(s['body']['text']['content'] == LEAVE
                           for s in sent_to(sim, o)), 15,
               what='the leave-a-message text')
    agent.status('online')
