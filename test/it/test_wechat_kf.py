"""[wechat] mode = wechat_kf against the WeChat API simulator: agents who
work in WeChat's own customer-service tool. Their presence comes from
WeChat (`wxkf jobs` polls getonlinekflist every [presence] wechat_poll
seconds, here 20) and is kept past [presence] heartbeat_ttl without any
console heartbeat; through wxkf's API they can only pause and resume; a user's message is answered with
transfer_customer_service naming an agent WeChat lists online; an agent
going offline in WeChat is no longer routed to and its users move on;
and what wxkf does to a session reaches WeChat's side: a close is a
kfsession/close, a transfer a close of the old agent's session and a
create of the new one's, each made once. The tests run in order: each
builds on the state the one before left."""

import re
import time

import pytest
import requests

from conftest import run_sim_stack, sim_server, wait_until
from test_outbound import SECRET, user_writes
from test_routing import Agent, add_agent, admin

KA, KB = 'ka@simkf', 'kb@simkf'
POLL_S = 20
HEARTBEAT_TTL_S = 35


@pytest.fixture(scope='module')
def sim():
    yield from sim_server(SECRET)


@pytest.fixture(scope='module')
def kstack(sim):
    yield from run_sim_stack('wechat-kf', sim, SECRET, workers=2, extra={
        'wechat': {'mode': 'wechat_kf'},
        'presence': {'wechat_poll': str(POLL_S),
                     'heartbeat_ttl': str(HEARTBEAT_TTL_S)},
        'routing': {'queue_timeout': '0'},
    })


def kf_online(sim, account, status):
    st, out = sim.call('POST', '/_sim/kf_online',
                       {'kf_account': account, 'status': status})
    assert st == 200, out


@pytest.fixture(scope='module')
def agents(sim, kstack):
    """Two agents at WeChat and in wxkf; only KA is online in WeChat. No
    agent ever calls /api/v1/me/status or /heartbeat here."""
    out = {}
    for acct, nick in ((KA, '小甲'), (KB, '小乙')):
        st, res = sim.call('POST', '/customservice/kfaccount/add',
                           {'kf_account': acct, 'nickname': nick},
                           query={'access_token': sim.token()})
        assert st == 200 and res['errcode'] == 0, res
        out[acct] = Agent(kstack, acct, add_agent(kstack, acct, nick))
    kf_online(sim, KA, 1)
    return out


def status_of(stack, account):
    r = requests.get(stack.base + '/api/v1/agents/' + account,
                     headers=admin(stack), timeout=10)
    assert r.status_code == 200, r.text
    return r.json()['agent']['status']


def wait_status(stack, account, status):
    wait_until(lambda: status_of(stack, account) == status, POLL_S + 15,
               what='%s %s (a getonlinekflist poll is every %d s)'
               % (account, status, POLL_S))


def kf_log(sim, openid):
    """The kfsession calls the simulator got for openid: (op, account,
    errcode), oldest first."""
    st, kf = sim.call('GET', '/_sim/kf')
    assert st == 200, kf
    return [(e['op'], e['kf_account'], e['errcode']) for e in kf['log']
            if e['openid'] == openid]


def wechat_session(sim, openid):
    st, kf = sim.call('GET', '/_sim/kf')
    s = kf['sessions'].get(openid)
    return s['kf_account'] if s else ''


def transfer_to(out):
    """The KfAccount of a transfer_customer_service reply, else None."""
    rep = out.get('reply') or {}
    if (rep.get('fields') or {}).get('MsgType') != \
            'transfer_customer_service':
        return None
    m = re.search(r'<KfAccount><!\[CDATA\[([^\]]+)\]\]></KfAccount>',
                  rep.get('xml') or '')
    return m.group(1) if m else ''


def presence_events(stack, account):
    return [f for _id, f in stack.entries()
            if f.get('type') == 'presence' and f.get('agent') == account]


STATE = {}


def test_presence_comes_from_wechat(sim, kstack, agents):
    wait_status(kstack, KA, 'online')
    STATE['ka_online_at'] = time.monotonic()
    assert status_of(kstack, KB) == 'offline'
    (ev,) = presence_events(kstack, KA)
    assert ev['status'] == 'online' and ev['reason'] == 'wechat'
    assert presence_events(kstack, KB) == []


def test_the_agent_only_pauses_and_resumes_through_wxkf(sim, kstack,
                                                        agents):
    def status(who, st):
        return agents[who].post('/api/v1/me/status', {'status': st})

    for who, st in ((KA, 'offline'), (KB, 'online'), (KB, 'paused')):
        r = status(who, st)
        assert r.status_code == 409, r.text
        assert r.json()['error']['code'] == 'presence_from_wechat'
    assert status_of(kstack, KA) == 'online'
    assert status_of(kstack, KB) == 'offline'
    r = status(KA, 'paused')
    assert r.status_code == 200 and r.json()['status'] == 'paused', r.text
    r = status(KA, 'online')
    assert r.status_code == 200 and r.json()['status'] == 'online', r.text
    STATE['ka_online_at'] = time.monotonic()   # its last heartbeat


def test_a_user_is_transferred_to_the_agent_wechat_lists(sim, kstack,
                                                         agents):
    o = 'oKfMode00000000000000000001'
    out = user_writes(sim, o)
    assert transfer_to(out) == KA
    assert out['transfer'] == 'session'         # WeChat made the session
    assert wechat_session(sim, o) == KA
    assert o in agents[KA].sessions()
    # the user writes on: WeChat's tool has it, wxkf is not asked
    out = sim.user_send(o, type='text', content='还在吗', mode='safe')
    assert out['routed'] == 'kf_session' and out['status'] is None, out
    STATE['first'] = o


def test_a_session_wxkf_closes_is_closed_at_wechat(sim, kstack, agents):
    o = STATE['first']
    r = agents[KA].post('/api/v1/sessions/%s/close' % o)
    assert r.status_code == 200, r.text
    wait_until(lambda: kf_log(sim, o) == [('close', KA, 0)], 15,
               what='kfsession/close from wxkf jobs')
    assert wechat_session(sim, o) == ''
    # the callback's transfer made the session: never a create for it
    assert all(op != 'create' for op, _a, _e in kf_log(sim, o))


def test_a_transfer_closes_and_creates_at_wechat(sim, kstack, agents):
    o = 'oKfMode00000000000000000002'
    assert transfer_to(user_writes(sim, o)) == KA
    kf_online(sim, KB, 1)
    wait_status(kstack, KB, 'online')
    r = agents[KA].post('/api/v1/sessions/%s/transfer' % o,
                        {'to_agent': KB})
    assert r.status_code == 200 and r.json()['result'] == 'assigned:' + KB, \
        r.text
    wait_until(lambda: len(kf_log(sim, o)) >= 2, 15,
               what='kfsession/close and /create from wxkf jobs')
    assert kf_log(sim, o) == [('close', KA, 0), ('create', KB, 0)]
    assert wechat_session(sim, o) == KB
    assert o in agents[KB].sessions()
    STATE['second'] = o


def test_wechat_presence_outlives_the_heartbeat_ttl(sim, kstack, agents):
    # no agent sent a heartbeat: the polls kept KA online past the ttl
    left = STATE['ka_online_at'] + HEARTBEAT_TTL_S + 5 - time.monotonic()
    if left > 0:
        time.sleep(left)
    assert status_of(kstack, KA) == 'online'
    assert [(e['status'], e['reason']) for e in
            presence_events(kstack, KA)] == [('online', 'wechat'),
                                             ('paused', 'request'),
                                             ('online', 'request')]
    assert not [f for _id, f in kstack.entries()
                if f.get('reason') == 'heartbeat_lost']


def test_a_failed_poll_keeps_presence(sim, kstack, agents):
    def failed_polls():
        r = requests.get(kstack.base + '/metrics', timeout=10)
        m = re.search(r'^wxkf_wechat_kf_polls_total\{[^}]*result="failed"'
                      r'[^}]*\} (\d+)$', r.text, re.M)
        return int(m.group(1)) if m else 0

    # a permanent refusal (no retries inside the call): one poll fails
    sim.fault(path='/cgi-bin/customservice/getonlinekflist',
              kind='errcode', errcode=48001, count=1)
    wait_until(lambda: failed_polls() == 1, POLL_S + 15,
               what='a failed poll counted in /metrics')
    assert status_of(kstack, KA) == 'online'
    assert status_of(kstack, KB) == 'online'
    with open(kstack.log_file, encoding='utf-8') as f:
        assert 'kf_poll_failed' in f.read()


def test_an_agent_offline_in_wechat_is_no_longer_routed_to(sim, kstack,
                                                           agents):
    o2 = STATE['second']
    o3 = 'oKfMode00000000000000000003'
    assert transfer_to(user_writes(sim, o3)) in (KA, KB)
    holder = wechat_session(sim, o3)
    other = KA if holder == KB else KB
    kf_online(sim, holder, 0)
    wait_status(kstack, holder, 'offline')
    (ev,) = [e for e in presence_events(kstack, holder)
             if e['status'] == 'offline']
    assert ev['reason'] == 'wechat'
    # its user moved to the colleague, at WeChat too
    assert o3 in agents[other].sessions()
    wait_until(lambda: wechat_session(sim, o3) == other, 15,
               what='the moved session created at WeChat')
    assert kf_log(sim, o3)[-1] == ('create', other, 0)
    # new users go to the colleague only
    for i in range(3):
        o = 'oKfMode0000000000000000001%d' % i
        assert transfer_to(user_writes(sim, o)) == other
    # and every session the agent had is the colleague's now
    assert agents[holder].sessions() == []
    assert o2 in agents[other].sessions()
