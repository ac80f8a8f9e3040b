"""A supervisor inside a conversation (docs/api.md, "Supervisors in a
conversation"): the whisper — an internal note a supervisor, an admin or
the serving agent writes into a live session, delivered to the serving
agent's feed, archived with the conversation and returned by the history
reads marked as a whisper, never sent to WeChat (the simulator sees
nothing of it) nor exported — and the take-over: a supervisor linked to
an agent account (`wxkf user add --role supervisor --agent ACCOUNT`) takes
an agent's live session, written as a transfer (reason takeover), the old
agent's load freed and its feed told who took it; the old agent's send is
then refused and the supervisor answers through the usual send path."""

import json

import pytest
import requests

from conftest import APP_ID, assert_error, run_sim_stack, sim_server, \
    wait_until
from test_archive import query, wait_archived
from test_outbound import feed, kf_agent, reply, sent_to, user_writes
from test_staff import Cookie, add_user, user_cmd

SECRET = 'simSecret0123456789abcdef'
WHISPER = '这位用户上周投诉过，先道歉 "注意语气"'


@pytest.fixture(scope='module')
def sim():
    yield from sim_server(SECRET)


@pytest.fixture(scope='module')
def vstack(sim):
    yield from run_sim_stack('supervise', sim, SECRET, workers=2, extra={
        'routing': {'default_capacity': '20'},
    })


@pytest.fixture(scope='module')
def team(sim, vstack):
    a = kf_agent(sim, vstack, 'sva@simshop', '小安')
    b = kf_agent(sim, vstack, 'svb@simshop', '小白')
    lead = kf_agent(sim, vstack, 'lead@simshop', '主管老李')
    lead.status('offline')
    add_user(vstack, 'lead', 'supervisor', agent='lead@simshop',
             name='老李')
    add_user(vstack, 'watcher', 'supervisor', name='值班主管')
    add_user(vstack, 'boss', 'admin', name='老板')
    return {'a': a, 'b': b, 'lead_agent': lead,
            'lead': Cookie(vstack, 'lead'),
            'watcher': Cookie(vstack, 'watcher'),
            'boss': Cookie(vstack, 'boss')}


def served_by(sim, agent, others, openid, text='你好'):
    """openid writes and is served by agent (the others paused)."""
    for o in others:
        o.status('paused')
    agent.status('online')
    user_writes(sim, openid, text)
    wait_until(lambda: openid in agent.sessions(), 10,
               what='the user served by %s' % agent.account)
    for o in others:
        o.status('online')


def admin(stack, method, path, **kw):
    return requests.request(method, stack.base + path, timeout=30,
                            headers={'Authorization': 'Bearer ' +
                                     stack.admin_token}, **kw)


def whisper(caller, openid, text):
    path = '/api/v1/sessions/%s/whisper' % openid
    if isinstance(caller, Cookie):
        return caller.call('POST', path, json={'text': text})
    return caller.post(path, {'text': text})


def load(stack, agent):
    return stack.redis.smembers('wxkf:{%s}:load:%s' % (APP_ID, agent))


def test_a_supervisor_may_be_linked_to_an_agent_an_admin_may_not(
        vstack, team):
    out = user_cmd(vstack, 'add', '--login', 'boss2', '--name', 'b',
                   '--role', 'admin', '--agent', 'svb@simshop',
                   password='correct horse battery\n')
    assert out.returncode == 1 and 'invalid' in out.stderr
    out = user_cmd(vstack, 'list', '--json')
    users = {u['login']: u for u in json.loads(out.stdout)['users']}
    assert users['lead']['agent'] == 'lead@simshop'
    assert users['watcher']['agent'] is None
    me = team['lead'].call('GET', '/api/v1/me').json()
    assert me['role'] == 'supervisor' and me['account'] == 'lead@simshop'
    me = team['watcher'].call('GET', '/api/v1/me').json()
    assert me['role'] == 'supervisor' and 'account' not in me


def test_who_may_whisper_and_what_a_whisper_must_be(vstack, sim, team):
    a, b = team['a'], team['b']
    o = 'oSupervise00000000000000001'
    served_by(sim, a, [b], o)
    assert_error(whisper(b, o, '不是我的'), 403, 'not_yours')
    r = requests.post(vstack.base + '/api/v1/sessions/%s/whisper' % o,
                      json={'text': 'x'}, timeout=30)
    assert r.status_code == 401
    assert_error(team['watcher'].call(
        'POST', '/api/v1/sessions/%s/whisper' % o, csrf=False,
        json={'text': 'x'}), 403, 'csrf_failed')
    assert_error(whisper(team['watcher'], o, 'x' * 501), 400,
                 'whisper_too_long')
    assert_error(whisper(team['watcher'], o, 'a\x07b'), 400,
                 'invalid_whisper')
    assert_error(whisper(team['watcher'], o, ' \n '), 400, 'invalid_whisper')
    assert_error(whisper(team['watcher'], o, None), 400, 'invalid_field')
    assert_error(whisper(team['watcher'], 'oNobodyHere0000000000000001', 'x'),
                 404, 'no_session')
    for caller in (team['watcher'], a):
        r = whisper(caller, o, WHISPER)
        assert r.status_code == 200, r.text
        assert r.json()['agent'] == 'sva@simshop'
        assert r.json()['id'].startswith('w_')
    r = admin(vstack, 'POST', '/api/v1/sessions/%s/whisper' % o,
              json={'text': '第二行\n' + 'y' * 496})
    assert r.status_code == 200, r.text
    got = [e for e in feed(a)['events']
           if e['type'] == 'whisper' and e['openid'] == o]
    assert len(got) == 3
    p = json.loads(got[0]['payload'])
    assert p == {'id': got[0]['msg_id'], 'content': WHISPER,
                 'author': 'watcher',
                 'author_name': '值班主管', 'author_role': 'supervisor'}
    assert json.loads(got[1]['payload'])['author_role'] == 'agent'
    assert json.loads(got[2]['payload'])['author'] == 'admin'
    assert got[0]['msg_id'].startswith('w_')
    assert not [e for e in feed(b)['events'] if e.get('openid') == o]


def test_a_whisper_never_reaches_the_user(vstack, sim, team):
    a, b = team['a'], team['b']
    o = 'oSupervise00000000000000002'
    served_by(sim, a, [b], o)
    assert whisper(team['watcher'], o, WHISPER).status_code == 200
    assert reply(a, o, '您好').status_code == 200
    out = user_writes(sim, o, '还在吗')
    assert WHISPER not in json.dumps(out, ensure_ascii=False)
    sent = sent_to(sim, o)
    assert [s['body']['text']['content'] for s in sent] == ['您好']
    assert WHISPER not in json.dumps(sim.calls(), ensure_ascii=False)

    wait_archived(vstack, 20)
    rows = query(vstack, "SELECT direction, content, agent, payload->>"
                 "'author' FROM messages WHERE openid = %s AND "
                 "direction = 'w'", (o,))
    assert rows == [('w', WHISPER, 'sva@simshop', 'watcher')]
    # staff's reads show it, marked; the export leaves it out
    for path in ('/api/v1/users/%s/messages' % o,
                 '/api/v1/sessions/%s/transcript' % o):
        for r in (a.get(path), team['watcher'].call('GET', path)):
            assert r.status_code == 200, r.text
            ws = [m for m in r.json()['messages'] if m.get('whisper')]
            assert [(m['direction'], m['content']) for m in ws] == \
                [('whisper', WHISPER)]
            assert ws[0]['payload']['author_name'] == '值班主管'
    r = admin(vstack, 'GET', '/api/v1/history/export',
              params={'openid': o, 'format': 'json'})
    assert r.status_code == 200, r.text
    assert r.json() and WHISPER not in r.text
    assert all(x['direction'] in ('in', 'out') for x in r.json())


def test_take_over_moves_the_session_and_the_old_agent_is_refused(
        vstack, sim, team):
    a, b, lead = team['a'], team['b'], team['lead']
    o = 'oSupervise00000000000000003'
    served_by(sim, a, [b], o)
    path = '/api/v1/sessions/%s/takeover' % o
    assert_error(a.post(path), 403, 'forbidden')
    assert_error(team['watcher'].call('POST', path), 409,
                 'no_agent_identity')
    assert_error(admin(vstack, 'POST', path), 409, 'no_agent_identity')
    assert_error(team['boss'].call('POST', path), 409, 'no_agent_identity')
    assert_error(lead.call('POST', path, csrf=False), 403, 'csrf_failed')
    assert_error(lead.call('POST', '/api/v1/sessions/oNobodyHere0000000000000001'
                           '/takeover'), 404, 'no_session')
    assert o in load(vstack, 'sva@simshop')

    r = lead.call('POST', path)
    assert r.status_code == 200, r.text
    assert r.json() == {'openid': o, 'result': 'taken_over',
                        'agent': 'lead@simshop', 'from': 'sva@simshop'}
    assert o not in load(vstack, 'sva@simshop')
    assert o in load(vstack, 'lead@simshop')
    assert o not in a.sessions()
    assert team['lead_agent'].get('/api/v1/me').json()['status'] == 'paused'
    rel = [e for e in feed(a)['events']
           if e['type'] == 'release' and e['openid'] == o]
    assert len(rel) == 1 and rel[0]['reason'] == 'takeover'
    assert rel[0]['by_login'] == 'lead' and rel[0]['by_name'] == '老李'
    assert_error(lead.call('POST', path), 409, 'same_agent')

    # the old agent can no longer answer; the supervisor answers as its
    # agent (WeChat sees the supervisor's kf_account)
    assert_error(reply(a, o, '我还在'), 403, 'not_yours')
    r = lead.call('POST', '/api/v1/sessions/%s/messages' % o,
                  json={'msgtype': 'text', 'text': {'content': '我是主管'}})
    assert r.status_code == 200, r.text
    sent = sent_to(sim, o)
    assert [(s['body']['text']['content'],
             s['body']['customservice']['kf_account']) for s in sent] == \
        [('我是主管', 'lead@simshop')]
    r = lead.call('GET', '/api/v1/me/sessions')
    assert o in [s['openid'] for s in r.json()['sessions']]
    # a supervisor reads any session still, and whispers as a supervisor
    r = whisper(lead, o, '已接管')
    assert r.status_code == 200, r.text

    wait_archived(vstack, 20)
    rows = query(vstack, "SELECT kind, to_agent, reason, by_agent FROM "
                 "transfers WHERE openid = %s", (o,))
    assert rows == [('transfer', 'lead@simshop', 'takeover', 'lead@simshop')]


def test_a_waiting_or_closed_session_is_not_taken_over(vstack, sim, team):
    a, b, lead = team['a'], team['b'], team['lead']
    o = 'oSupervise00000000000000004'
    served_by(sim, a, [b], o)
    assert a.post('/api/v1/sessions/%s/close' % o, {}).status_code == 200
    assert_error(lead.call('POST', '/api/v1/sessions/%s/takeover' % o), 404,
                 'no_session')
    assert_error(whisper(lead, o, 'x'), 404, 'no_session')
