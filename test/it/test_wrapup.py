"""Wrap-up and past conversations over HTTP (docs/api.md): closing a
session with a summary and labels, both reaching the archived session
exactly once even when `wxkf jobs` is restarted and the stream entries
are delivered again, both checked as untrusted input, the account's
label list (admins write it, agents read it), and who may list, search
and open closed sessions."""

import os
import signal

import pytest
import requests

from conftest import assert_error, run_stack, wait_until
from test_archive import alive, jobs_pid, query, stack_start, wait_archived
from test_routing import Agent, add_agent

ARCHIVER = 'archiver'
SUMMARY = '用户要求退款，"订单" 20250102 已转财务 \\ 处理\n第二行'


@pytest.fixture(scope='module')
def wstack():
    yield from run_stack('wrapup')


@pytest.fixture(scope='module')
def agents(wstack):
    return (Agent(wstack, 'wrap_a', add_agent(wstack, 'wrap_a')),
            Agent(wstack, 'wrap_b', add_agent(wstack, 'wrap_b')))


def admin(stack):
    return {'Authorization': 'Bearer ' + stack.admin_token}


def serve(stack, agent, others, text='你好'):
    """A new user whose session is agent's (the others paused)."""
    for o in others:
        o.status('paused')
    agent.status('online')
    u = stack.user()
    assert u.send_text(text).status_code == 200
    wait_until(lambda: u.openid in agent.sessions(), 10,
               what='the user assigned to %s' % agent.account)
    return u


def close(agent, openid, body):
    return agent.post('/api/v1/sessions/%s/close' % openid, body)


def archived(stack, openid):
    """(id, agent, closed_at, summary, labels) of openid's closed session,
    once the archiver has written it."""
    def row():
        rows = query(stack, 'SELECT id, agent, closed_at, summary, labels '
                     'FROM sessions WHERE openid = %s AND closed_at IS NOT '
                     'NULL', (openid,))
        return rows[0] if rows else None
    return wait_until(row, 20, what='the closed session archived')


def labels_api(stack, method, path='', headers=None, body=None):
    return requests.request(method, stack.base + '/api/v1/labels' + path,
                            json=body, headers=headers, timeout=10)


def new_label(stack, name, color='#e53935'):
    r = labels_api(stack, 'POST', headers=admin(stack),
                   body={'name': name, 'color': color})
    assert r.status_code == 201, r.text
    return r.json()['id']


def listing(stack, headers, **params):
    return requests.get(stack.base + '/api/v1/history/sessions',
                        params=params, headers=headers, timeout=10)


def test_summary_reaches_the_archive_once_across_a_jobs_restart(wstack,
                                                                 agents):
    a, b = agents
    swap = new_label(wstack, '换货')
    u = serve(wstack, a, [b])
    r = close(a, u.openid, {'summary': SUMMARY, 'labels': [swap]})
    assert r.status_code == 200, r.text
    assert r.json()['result'] == 'closed'
    sid, agent, closed_at, summary, labels = archived(wstack, u.openid)
    assert (agent, summary, labels) == ('wrap_a', SUMMARY, ['换货'])
    wait_archived(wstack, 30)
    before = query(wstack, 'SELECT count(*) FROM messages')[0][0]

    # `wxkf jobs` dies after writing; the next one is given every entry
    # of the stream again (as after a crash between COMMIT and XACK)
    pid = jobs_pid(wstack)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not alive(pid), 10, 0.05, 'jobs to die')
    wstack.redis.xgroup_setid(wstack.stream, ARCHIVER, '0')
    stack_start(wstack)
    assert jobs_pid(wstack) != pid
    wait_archived(wstack, 60)

    rows = query(wstack, 'SELECT id, agent, closed_at, summary, labels FROM '
                 'sessions WHERE openid = %s', (u.openid,))
    assert rows == [(sid, 'wrap_a', closed_at, SUMMARY, ['换货'])]
    assert query(wstack, 'SELECT count(*) FROM messages')[0][0] == before


def test_summary_is_checked_and_optional(wstack, agents):
    a, b = agents
    u = serve(wstack, a, [b])
    for body in ({'summary': '售' * 501}, {'summary': 'a\rb'},
                 {'summary': 42}, {'summary': ['x']}):
        assert_error(close(a, u.openid, body), 400, 'invalid_field')
    r = requests.post(wstack.base + '/api/v1/sessions/%s/close' % u.openid,
                      data='{"summary":', headers=a.h, timeout=10)
    assert_error(r, 400, 'bad_json')
    assert u.openid in a.sessions(), 'a refused close closed the session'

    # 500 characters are kept (1500 bytes); no body is still a close
    r = close(a, u.openid, {'summary': '售' * 500})
    assert r.status_code == 200, r.text
    assert archived(wstack, u.openid)[3] == '售' * 500
    u2 = serve(wstack, a, [b])
    r = requests.post(wstack.base + '/api/v1/sessions/%s/close' % u2.openid,
                      headers=a.h, timeout=10)
    assert r.status_code == 200, r.text
    assert archived(wstack, u2.openid)[3] is None


def test_who_lists_searches_and_opens_closed_sessions(wstack, agents):
    a, b = agents
    ua = serve(wstack, a, [b], text='我的快递丢了')
    assert close(a, ua.openid, {'summary': '快递丢失 已补发'}).status_code \
        == 200
    ub = serve(wstack, b, [a], text='发票怎么开')
    assert close(b, ub.openid, {'summary': '发票 已开具'}).status_code == 200
    sa = archived(wstack, ua.openid)[0]
    sb = archived(wstack, ub.openid)[0]
    wait_archived(wstack, 30)

    # no or a bad token
    assert_error(listing(wstack, {}), 401, 'unauthorized')
    assert_error(listing(wstack, {'Authorization': 'Bearer nope'}), 401,
                 'unauthorized')

    # an agent: its own only, whatever it asks for
    r = listing(wstack, a.h)
    assert r.status_code == 200, r.text
    mine = r.json()['sessions']
    assert mine and {s['agent'] for s in mine} == {'wrap_a'}
    top = mine[0]
    assert (top['id'], top['openid'], top['summary']) == \
        (sa, ua.openid, '快递丢失 已补发')
    assert top['close_reason'] == 'agent' and top['closed_at']
    assert_error(listing(wstack, a.h, agent='wrap_b'), 403, 'forbidden')
    assert listing(wstack, a.h, agent='wrap_a').json()['sessions'] == mine
    assert listing(wstack, a.h, q='发票').json()['sessions'] == []

    # search by summary text (q counted in characters, not bytes)
    found = listing(wstack, b.h, q='发票').json()['sessions']
    assert [s['id'] for s in found] == [sb]
    found = listing(wstack, admin(wstack), q='快递丢失').json()['sessions']
    assert [s['id'] for s in found] == [sa]
    for bad in ({'q': '发'}, {'q': 'x' * 101}, {'limit': '0'},
                {'limit': '201'}, {'before': 'nope'}, {'agent': ''}):
        assert_error(listing(wstack, a.h, **bad), 400, 'invalid_field')

    # an admin: everyone's, or one agent's; pages follow `next`
    every = listing(wstack, admin(wstack)).json()['sessions']
    assert {sa, sb} <= {s['id'] for s in every}
    only_b = listing(wstack, admin(wstack), agent='wrap_b').json()
    assert {s['agent'] for s in only_b['sessions']} == {'wrap_b'}
    seen, cursor = [], None
    for _ in range(len(every) + 1):
        page = listing(wstack, admin(wstack), limit='1',
                       **({'before': cursor} if cursor else {})).json()
        seen += [s['id'] for s in page['sessions']]
        cursor = page['next']
        if not cursor:
            break
    assert seen == [s['id'] for s in every]

    # opening a past conversation: its agent and admins, not a colleague
    path = '/api/v1/sessions/%s/transcript?session=%d' % (ua.openid, sa)
    r = a.get(path)
    assert r.status_code == 200, r.text
    assert [m['content'] for m in r.json()['messages']] == ['我的快递丢了']
    assert_error(b.get(path), 403, 'not_yours')
    assert requests.get(wstack.base + path, headers=admin(wstack),
                        timeout=10).status_code == 200
    # not without naming the session, and not another user's session
    assert_error(a.get('/api/v1/sessions/%s/transcript' % ua.openid), 403,
                 'not_yours')
    assert_error(a.get('/api/v1/sessions/%s/transcript?session=%d'
                       % (ub.openid, sa)), 403, 'not_yours')


def test_labels_are_the_admins_and_every_agent_reads_them(wstack, agents):
    a, _b = agents
    adm = admin(wstack)
    # who: no token 401; agents read, only admins write
    assert_error(labels_api(wstack, 'GET'), 401, 'unauthorized')
    assert_error(labels_api(wstack, 'POST', body={'name': 'x', 'color':
                                                  '#000000'}), 401,
                 'unauthorized')
    assert_error(labels_api(wstack, 'POST', headers=a.h,
                            body={'name': '售后', 'color': '#000000'}), 403,
                 'forbidden')
    lid = new_label(wstack, '售后', '#1E88E5')
    assert_error(labels_api(wstack, 'PATCH', '/%d' % lid, a.h,
                            {'name': 'x'}), 403, 'forbidden')
    assert_error(labels_api(wstack, 'DELETE', '/%d' % lid, a.h), 403,
                 'forbidden')
    seen = labels_api(wstack, 'GET', headers=a.h)
    assert seen.status_code == 200, seen.text
    assert {'id': lid, 'name': '售后', 'color': '#1e88e5'} in \
        seen.json()['labels']
    # kept per account
    assert query(wstack, 'SELECT app_id FROM labels WHERE id = %s',
                 (lid,)) == [(wstack.app_id,)]

    # what a label may be
    assert_error(labels_api(wstack, 'POST', headers=adm, body={
        'name': '售后', 'color': '#000000'}), 409, 'label_exists')
    for body in ({'name': '', 'color': '#000000'},
                 {'name': ' 前后空格', 'color': '#000000'},
                 {'name': '长' * 21, 'color': '#000000'},
                 {'name': 'a\u0001b', 'color': '#000000'},
                 {'name': '红色', 'color': 'red'},
                 {'name': '红色', 'color': '#12345g'},
                 {'name': '红色'}, {'color': '#000000'},
                 {'name': 7, 'color': '#000000'}):
        assert_error(labels_api(wstack, 'POST', headers=adm, body=body), 400,
                     'invalid_field')
    assert new_label(wstack, '长' * 20) > 0

    # change and remove
    r = labels_api(wstack, 'PATCH', '/%d' % lid, adm, {'color': '#43A047'})
    assert r.status_code == 200 and r.json() == {
        'id': lid, 'name': '售后', 'color': '#43a047'}, r.text
    other = new_label(wstack, '投诉')
    assert_error(labels_api(wstack, 'PATCH', '/%d' % other, adm,
                            {'name': '售后'}), 409, 'label_exists')
    assert_error(labels_api(wstack, 'PATCH', '/%d' % other, adm, {}), 400,
                 'invalid_field')
    for bad in ('/999999999', '/abc', '/0'):
        assert_error(labels_api(wstack, 'PATCH', bad, adm, {'name': 'y'}),
                     404, 'unknown_label')
    r = labels_api(wstack, 'DELETE', '/%d' % other, adm)
    assert r.status_code == 200 and r.json() == {'id': other,
                                                 'removed': True}
    assert_error(labels_api(wstack, 'DELETE', '/%d' % other, adm), 404,
                 'unknown_label')


def test_labels_travel_with_the_close_and_are_searched(wstack, agents):
    a, b = agents
    refund = new_label(wstack, '退款')
    vip = new_label(wstack, 'VIP 客户', '#8e24aa')
    u = serve(wstack, a, [b])
    for body in ({'labels': 'x'}, {'labels': [refund, refund]},
                 {'labels': [0]}, {'labels': ['退款']},
                 {'labels': list(range(1, 7))}):
        assert_error(close(a, u.openid, body), 400, 'invalid_field')
    assert_error(close(a, u.openid, {'labels': [999999999]}), 404,
                 'unknown_label')
    assert u.openid in a.sessions(), 'a refused close closed the session'
    r = close(a, u.openid, {'labels': [vip, refund]})
    assert r.status_code == 200, r.text
    sid, _agent, _at, summary, labels = archived(wstack, u.openid)
    assert (summary, labels) == (None, ['VIP 客户', '退款'])
    wait_archived(wstack, 30)

    found = listing(wstack, a.h, label='退款').json()['sessions']
    assert [(s['id'], s['labels']) for s in found] == \
        [(sid, ['VIP 客户', '退款'])]
    assert listing(wstack, b.h, label='退款').json()['sessions'] == []
    assert listing(wstack, admin(wstack), label='无此标签').json()[
        'sessions'] == []
    assert_error(listing(wstack, a.h, label=''), 400, 'invalid_field')
    # renaming the label changes no past session
    r = labels_api(wstack, 'PATCH', '/%d' % refund, admin(wstack),
                   {'name': '退款退货'})
    assert r.status_code == 200, r.text
    assert archived(wstack, u.openid)[4] == ['VIP 客户', '退款']
    assert [s['id'] for s in listing(wstack, a.h, label='退款').json()[
        'sessions']] == [sid]
