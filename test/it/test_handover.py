"""The handover over HTTP (docs/api.md): a transfer's note travels with
the session to its receiver — GET /api/v1/me/sessions and the receiver's
feed name who passed it on, their nickname and the note — to an agent
or through a group's queue; a note too long or with control characters
is refused with its own error code and changes nothing; a user taken
from the queue arrives marked with how long they waited; the archive
keeps the giver and the note with the transfer."""

import time

import pytest
import requests

from conftest import assert_error, run_stack, wait_until
from test_archive import query, wait_archived
from test_routing import Agent, add_agent

NOTE = '用户要退款，订单 20250102 已核实 "急"'


@pytest.fixture(scope='module')
def hstack():
    yield from run_stack('handover')


@pytest.fixture(scope='module')
def agents(hstack):
    a = Agent(hstack, 'ho_a', add_agent(hstack, 'ho_a', nick='小安'))
    b = Agent(hstack, 'ho_b', add_agent(hstack, 'ho_b', nick='小白'))
    c = Agent(hstack, 'ho_c', add_agent(hstack, 'ho_c', nick='小陈',
                                        groups=['退款']))
    return a, b, c


def serve(stack, agent, others):
    """A new user whose session is agent's (the others paused)."""
    for o in others:
        o.status('paused')
    agent.status('online')
    u = stack.user()
    assert u.send_text('你好').status_code == 200
    wait_until(lambda: u.openid in agent.sessions(), 10,
               what='the user assigned to %s' % agent.account)
    return u


def session_of(agent, openid):
    r = agent.get('/api/v1/me/sessions')
    assert r.status_code == 200, r.text
    got = [s for s in r.json()['sessions'] if s['openid'] == openid]
    return got[0] if got else None


def transfer(agent, openid, body):
    return agent.post('/api/v1/sessions/%s/transfer' % openid, body)


def feed(agent):
    r = agent.get('/api/v1/me/events?limit=500')
    assert r.status_code == 200, r.text
    return r.json()['events']


def transfers_of(stack, openid):
    return query(stack, 'SELECT kind, to_agent, grp, by_agent, note FROM '
                 'transfers WHERE openid = %s ORDER BY at', (openid,))


def test_the_receiver_sees_who_passed_it_on_and_the_note(hstack, agents):
    a, b, c = agents
    u = serve(hstack, a, [b, c])
    assert 'handed' not in session_of(a, u.openid)
    assert 'from_queue' not in session_of(a, u.openid)
    b.status('online')
    t0 = int(time.time() * 1000)
    r = transfer(a, u.openid, {'to_agent': 'ho_b', 'note': NOTE})
    assert r.status_code == 200 and r.json()['result'] == 'assigned:ho_b'
    assert u.openid not in a.sessions()

    s = session_of(b, u.openid)
    assert s['handed']['from'] == 'ho_a'
    assert s['handed']['from_nick'] == '小安'
    assert s['handed']['note'] == NOTE
    assert t0 <= s['handed']['at_ms'] <= int(time.time() * 1000)
    assert 'from_queue' not in s and 'handing' not in s
    assert b.get('/api/v1/sessions/%s' % u.openid).json()['handed'] == \
        s['handed']
    # the receiver's feed says it as it happens
    ev = [e for e in feed(b) if e.get('type') == 'transfer' and
          e.get('openid') == u.openid]
    assert ev and ev[-1]['by'] == 'ho_a' and ev[-1]['by_nick'] == '小安' \
        and ev[-1]['note'] == NOTE

    # ... and the archive keeps the giver and the note with the transfer
    wait_archived(hstack, 30)
    assert transfers_of(hstack, u.openid) == [
        ('transfer', 'ho_b', '_all', 'ho_a', NOTE)]

    # passed on again without a note: the new giver, no old note
    r = transfer(b, u.openid, {'to_agent': 'ho_a'})
    assert r.status_code == 200, r.text
    s = session_of(a, u.openid)
    assert s['handed']['from'] == 'ho_b' and s['handed']['note'] == ''
    assert b.post('/api/v1/sessions/%s/close' % u.openid).status_code == 403
    assert a.post('/api/v1/sessions/%s/close' % u.openid).status_code == 200


def test_a_bad_note_is_refused_and_nothing_moves(hstack, agents):
    a, b, c = agents
    u = serve(hstack, a, [b, c])
    b.status('online')
    for body, status, code in (
            ({'note': '售' * 201}, 400, 'note_too_long'),
            ({'note': '第一行\n第二行'}, 400, 'invalid_note'),
            ({'note': 'red \u001b[31m'}, 400, 'invalid_note'),
            ({'note': 'a\u2028b'}, 400, 'invalid_note'),
            ({'note': 42}, 400, 'invalid_field')):
        body['to_agent'] = 'ho_b'
        assert_error(transfer(a, u.openid, body), status, code)
    r = transfer(a, u.openid, {'to_group': '_all', 'note': '\u0007'})
    assert_error(r, 400, 'invalid_note')
    assert u.openid in a.sessions() and u.openid not in b.sessions()
    # 200 characters pass (600 bytes)
    r = transfer(a, u.openid, {'to_agent': 'ho_b', 'note': '售' * 200})
    assert r.status_code == 200, r.text
    assert session_of(b, u.openid)['handed']['note'] == '售' * 200
    assert b.post('/api/v1/sessions/%s/close' % u.openid).status_code == 200


def test_a_user_taken_from_the_queue_says_how_long_they_waited(hstack,
                                                               agents):
    a, b, c = agents
    for x in (a, b, c):
        x.status('paused')
    u = hstack.user()
    t0 = time.monotonic()
    assert u.send_text('有人吗').status_code == 200
    time.sleep(1.2)
    a.status('online')              # takes the waiting user at once
    waited = time.monotonic() - t0
    s = session_of(a, u.openid)
    assert s is not None and 'handed' not in s
    assert 1 <= s['from_queue']['waited_s'] <= waited + 1
    ev = [e for e in feed(a) if e.get('type') == 'assign' and
          e.get('openid') == u.openid]
    assert ev and ev[-1]['reason'] == 'dequeued' and \
        int(ev[-1]['waited_ms']) >= 1000
    # answered or not, the badge stays with this assignment; a transfer
    # replaces it
    b.status('online')
    r = transfer(a, u.openid, {'to_agent': 'ho_b', 'note': '请跟进'})
    assert r.status_code == 200, r.text
    s = session_of(b, u.openid)
    assert 'from_queue' not in s and s['handed']['note'] == '请跟进'
    assert b.post('/api/v1/sessions/%s/close' % u.openid).status_code == 200


def test_a_transfer_to_a_busy_group_keeps_the_note_through_the_queue(
        hstack, agents):
    a, b, c = agents
    u = serve(hstack, a, [b, c])     # c, the group's only member, paused
    r = transfer(a, u.openid, {'to_group': '退款', 'note': NOTE})
    assert r.status_code == 200 and r.json()['result'].startswith('queued:')
    assert u.openid not in a.sessions()
    c.status('online')
    wait_until(lambda: u.openid in c.sessions(), 10,
               what='the queued user given to ho_c')
    s = session_of(c, u.openid)
    assert s['handed']['from'] == 'ho_a' and s['handed']['from_nick'] == \
        '小安' and s['handed']['note'] == NOTE
    assert 'from_queue' in s
    # one transfer archived (the queue it went into), not a second one
    # for the assignment that took it from the queue
    wait_archived(hstack, 30)
    assert transfers_of(hstack, u.openid) == [
        ('queue', None, '退款', 'ho_a', NOTE)]
    # an admin's transfer: no giver account
    a.status('online')
    r = requests.post(hstack.base + '/api/v1/sessions/%s/transfer' %
                      u.openid, json={'to_agent': 'ho_a', 'note': '管理员转'},
                      headers={'Authorization': 'Bearer ' +
                               hstack.admin_token}, timeout=10)
    assert r.status_code == 200, r.text
    s = session_of(a, u.openid)
    assert s['handed'] == {'from': '', 'from_nick': '', 'note': '管理员转',
                           'at_ms': s['handed']['at_ms']}
    assert a.post('/api/v1/sessions/%s/close' % u.openid).status_code == 200
