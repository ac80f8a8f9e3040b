"""Who the user is, end to end (docs/api.md "Who the user is"): a user
writes through the WeChat simulator, `wxkf jobs` looks the user up with
cgi-bin/user/info and keeps it in PostgreSQL; the agent serving the user
reads the profile with the past sessions, sets a display name and the
remark (pushed to WeChat with user/info/updateremark, WeChat's refusals
answered as such) and writes notes that colleagues see and only the
author or an admin may change; who may read and write what."""

import secrets
import string

import psycopg2
import pytest
import requests

from conftest import APP_ID, assert_error, run_sim_stack, sim_server, \
    wait_until
from test_routing import Agent, add_agent

SECRET = 'simSecret0123456789abcdef'
ID_CHARS = string.ascii_letters + string.digits


@pytest.fixture(scope='module')
def sim():
    yield from sim_server(SECRET)


@pytest.fixture(scope='module')
def pstack(sim):
    yield from run_sim_stack('profile', sim, secret=SECRET, extra={
        'wechat': {'api_retries': '0'},
        'routing': {'default_capacity': '50'}})


@pytest.fixture(scope='module')
def db(pstack):
    conn = psycopg2.connect(host='127.0.0.1', port=pstack.pg_port,
                            dbname='wxkf', user='wxkf', connect_timeout=5)
    conn.autocommit = True
    yield conn
    conn.close()


@pytest.fixture(scope='module')
def agents(pstack):
    """prof_a online (every new user goes to it), prof_b paused."""
    a = Agent(pstack, 'prof_a', add_agent(pstack, 'prof_a', nick='小爱'))
    b = Agent(pstack, 'prof_b', add_agent(pstack, 'prof_b'))
    a.status('online')
    b.status('paused')
    return a, b


def new_openid():
    return 'oProf' + ''.join(secrets.choice(ID_CHARS) for _ in range(23))


def admin(stack):
    return {'Authorization': 'Bearer ' + stack.admin_token}


def call(stack, method, path, who=None, **kw):
    h = who.h if isinstance(who, Agent) else who
    return requests.request(method, stack.base + path, headers=h,
                            timeout=15, **kw)


def served_user(sim, pstack, agents):
    """A user who wrote and was assigned to prof_a."""
    a = agents[0]
    openid = new_openid()
    out = sim.user_send(openid, mode='safe', content='你好')
    assert out['status'] == 200, out
    wait_until(lambda: openid in a.sessions(), 10, what='user assigned')
    return openid


def asked(sim, path='/cgi-bin/user/info'):
    """How many times the simulator was asked path."""
    st, out = sim.call('GET', '/_sim/calls', query={'path': path})
    assert st == 200, out
    return out['count']


def nothing_due(stack):
    """Waits until `wxkf jobs` has read every event and has no look-up
    left to make."""
    P = 'wxkf:{%s}:' % APP_ID

    def idle():
        last = stack.redis.xinfo_stream(P + 'events')['last-generated-id']
        g = [g for g in stack.redis.xinfo_groups(P + 'events')
             if g['name'] == 'profile']
        return g and g[0]['last-delivered-id'] == last and \
            stack.redis.zcard(P + 'profile_due') == 0
    wait_until(idle, 20, 0.2, 'nothing due')


def profile(stack, openid, who):
    r = call(stack, 'GET', '/api/v1/users/%s/profile' % openid, who)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_new_user_is_looked_up_by_jobs(sim, pstack, agents):
    a = agents[0]
    before = asked(sim)
    openid = served_user(sim, pstack, agents)
    p = wait_until(lambda: profile(pstack, openid, a)['info'] and
                   profile(pstack, openid, a), 20, 0.2,
                   'wxkf jobs to look the user up')
    info = p['info']
    assert info['subscribe'] is True
    assert info['language'] == 'zh_CN'
    assert info['tagid_list'] == [2]
    assert info['subscribe_scene'] == 'ADD_SCENE_QR_CODE'
    assert info['unionid'].startswith('u_')
    assert 'nickname' not in info and 'headimgurl' not in info
    assert p['fetch_error'] is None and p['fetched_at']
    assert asked(sim) == before + 1
    # the session shows in the past sessions once archived, with its agent
    p = wait_until(lambda: profile(pstack, openid, a)['sessions'] and
                   profile(pstack, openid, a), 20, 0.2, 'session archived')
    s = p['sessions'][0]
    assert s['agent'] == 'prof_a' and s['agent_nick'] == '小爱'
    assert s['closed_at'] is None and s['messages'] >= 0
    assert s['summary'] is None and s['labels'] == []
    # closed with a wrap-up: the past session shows its summary and labels
    r = call(pstack, 'POST', '/api/v1/labels', admin(pstack),
             json={'name': '地址', 'color': '#1e88e5'})
    assert r.status_code in (201, 409), r.text
    label = [x for x in call(pstack, 'GET', '/api/v1/labels', a).json()
             ['labels'] if x['name'] == '地址'][0]
    r = call(pstack, 'POST', '/api/v1/sessions/%s/close' % openid, a,
             json={'summary': '改了收货地址', 'labels': [label['id']]})
    assert r.status_code == 200, r.text
    p = wait_until(lambda: profile(pstack, openid, a)['sessions'][0]
                   ['closed_at'] and profile(pstack, openid, a), 20, 0.2,
                   'the close archived')
    s = p['sessions'][0]
    assert s['summary'] == '改了收货地址' and s['labels'] == ['地址']


def test_who_may_read_a_profile(sim, pstack, agents):
    a, b = agents
    openid = served_user(sim, pstack, agents)
    path = '/api/v1/users/%s/profile' % openid
    assert_error(call(pstack, 'GET', path), 401)
    assert_error(call(pstack, 'GET', path, {'Authorization': 'Bearer x'}),
                 401)
    assert_error(call(pstack, 'GET', path, b), 403, 'not_yours')
    assert_error(call(pstack, 'POST', '/api/v1/users/%s/notes' % openid, b,
                      json={'body': '看不到'}), 403, 'not_yours')
    assert_error(call(pstack, 'PATCH', path, b, json={'display_name': 'x'}),
                 403, 'not_yours')
    assert call(pstack, 'GET', path, a).status_code == 200
    assert call(pstack, 'GET', path, admin(pstack)).status_code == 200
    # an admin may read any user, even one never seen
    r = call(pstack, 'GET', '/api/v1/users/%s/profile' % new_openid(),
             admin(pstack))
    assert r.status_code == 200 and r.json()['info'] is None
    assert r.json()['sessions'] == [] and r.json()['notes'] == []
    # what is not an OpenID never reaches the handler
    for bad in ('x' * 65, 'o%27%3B--'):
        assert_error(call(pstack, 'GET', '/api/v1/users/%s/profile' % bad,
                          admin(pstack)), 404, 'not_found')
    # once transferred to prof_b, prof_b serves it and prof_a served it
    b.status('online')
    try:
        r = call(pstack, 'POST', '/api/v1/sessions/%s/transfer' % openid, a,
                 json={'to_agent': 'prof_b'})
        assert r.status_code == 200, r.text
        wait_until(lambda: call(pstack, 'GET', path, b).status_code == 200,
                   10, 0.2, 'prof_b to see the profile')
        wait_until(lambda: call(pstack, 'GET', path, a).status_code == 200,
                   20, 0.2, 'prof_a (served it) to see the profile')
    finally:
        b.status('paused')


def test_display_name_and_remark(sim, pstack, agents, db):
    a = agents[0]
    openid = served_user(sim, pstack, agents)
    path = '/api/v1/users/%s/profile' % openid
    r = call(pstack, 'PATCH', path, a, json={'display_name': '王女士',
                                             'remark': '老客户'})
    assert r.status_code == 200, r.text
    assert r.json()['display_name'] == '王女士'
    assert r.json()['remark'] == '老客户'
    # WeChat has it: user/info says so
    st, u = sim.call('GET', '/_sim/users/%s' % openid)
    assert st == 200 and u['remark'] == '老客户', u
    # 31 characters: refused before WeChat is asked
    before = asked(sim, '/cgi-bin/user/info/updateremark')
    assert_error(call(pstack, 'PATCH', path, a, json={'remark': '客' * 31}),
                 400, 'invalid_field')
    assert_error(call(pstack, 'PATCH', path, a,
                      json={'display_name': 'a\nb'}), 400, 'invalid_field')
    assert_error(call(pstack, 'PATCH', path, a, json={'remark': 7}), 400,
                 'invalid_field')
    assert asked(sim, '/cgi-bin/user/info/updateremark') == before
    # WeChat's refusal is answered with its errcode; nothing changes
    sim.fault(path='/cgi-bin/user/info/updateremark', errcode=45009,
              count=1)
    r = call(pstack, 'PATCH', path, a, json={'remark': '不会保存'})
    err = assert_error(r, 502, 'wechat_refused')
    assert err['errcode'] == 45009
    assert profile(pstack, openid, a)['remark'] == '老客户'
    # a user WeChat does not know: 40003
    r = call(pstack, 'PATCH', '/api/v1/users/%s/profile' % new_openid(),
             admin(pstack), json={'remark': 'x'})
    assert assert_error(r, 502, 'wechat_refused')['errcode'] == 40003
    # clearing the display name
    r = call(pstack, 'PATCH', path, a, json={'display_name': ''})
    assert r.status_code == 200 and r.json()['display_name'] is None
    with db.cursor() as cur:
        cur.execute("SELECT actor, action FROM audit_log WHERE target = %s "
                    "ORDER BY id", (openid,))
        assert cur.fetchall() == [('prof_a', 'user.remark'),
                                  ('prof_a', 'user.display_name'),
                                  ('prof_a', 'user.display_name')]


def test_the_profile_names_the_users_tags(sim, pstack, agents):
    """user/info's tagid_list by name: `wxkf jobs` keeps the account's
    tag list (cgi-bin/tags/get, fetched when it starts, then hourly or
    for an id it lacks — not per look-up, nor per read); an id the list
    does not have comes with name null (the console says 标签 #id)."""
    a = agents[0]
    openid = new_openid()
    st, out = sim.call('POST', '/_sim/users/%s/tags' % openid,
                       {'tagid_list': [101, 2, 777]})
    assert st == 200, out
    out = sim.user_send(openid, mode='safe', content='你好')
    assert out['status'] == 200, out
    wait_until(lambda: openid in a.sessions(), 10, what='user assigned')
    p = wait_until(lambda: profile(pstack, openid, a)['info'] and
                   profile(pstack, openid, a), 20, 0.2,
                   'wxkf jobs to look the user up')
    assert p['info']['tagid_list'] == [101, 2, 777]
    assert p['tags'] == [{'id': 101, 'name': '华东大区'},
                         {'id': 2, 'name': '星标组'},
                         {'id': 777, 'name': None}]
    # the admin reads the same names; reads never ask WeChat
    fetched = asked(sim, '/cgi-bin/tags/get')
    assert 1 <= fetched <= 2        # at the start, perhaps once for 777
    assert profile(pstack, openid, admin(pstack))['tags'] == p['tags']
    assert asked(sim, '/cgi-bin/tags/get') == fetched


def test_a_lookup_refused_by_wechat_is_shown(sim, pstack, agents):
    """user/info answering 40003: the profile says so, and a second
    message the same day does not make jobs ask again."""
    a = agents[0]
    nothing_due(pstack)
    sim.fault(path='/cgi-bin/user/info', errcode=40003, count=1)
    openid = served_user(sim, pstack, agents)
    p = wait_until(lambda: profile(pstack, openid, a)['fetch_error'] and
                   profile(pstack, openid, a), 20, 0.2, 'the look-up error')
    assert p['fetch_error']['errcode'] == 40003 and p['info'] is None
    out = sim.user_send(openid, mode='safe', content='还在吗')
    assert out['status'] == 200, out
    # jobs reads the events in order: once a later user is looked up, the
    # second message has been seen
    later = served_user(sim, pstack, agents)
    wait_until(lambda: profile(pstack, later, a)['info'], 20, 0.2,
               'the later user looked up')
    again = profile(pstack, openid, a)
    assert again['fetched_at'] == p['fetched_at']
    assert again['fetch_error']['errcode'] == 40003


def test_notes_seen_by_colleagues_changed_by_author_or_admin(sim, pstack,
                                                             agents, db):
    a, b = agents
    openid = served_user(sim, pstack, agents)
    notes = '/api/v1/users/%s/notes' % openid
    r = call(pstack, 'POST', notes, a, json={'body': '喜欢电话联系'})
    assert r.status_code == 201, r.text
    note = r.json()
    assert note['author'] == 'prof_a' and note['body'] == '喜欢电话联系'
    for bad in ({'body': ''}, {'body': 'x' * 2001}, {'body': 5}, {}):
        assert_error(call(pstack, 'POST', notes, a, json=bad), 400,
                     'invalid_field')
    # prof_b serves the user after a transfer: sees the note, may not
    # change it
    b.status('online')
    try:
        r = call(pstack, 'POST', '/api/v1/sessions/%s/transfer' % openid, a,
                 json={'to_agent': 'prof_b'})
        assert r.status_code == 200, r.text
        wait_until(lambda: call(pstack, 'GET', notes.replace(
            'notes', 'profile'), b).status_code == 200, 10, 0.2, 'transfer')
        assert [n['body'] for n in profile(pstack, openid, b)['notes']] == \
            ['喜欢电话联系']
        q = '%s?id=%d' % (notes, note['id'])
        assert_error(call(pstack, 'PATCH', q, b, json={'body': 'x'}), 403,
                     'not_author')
        assert_error(call(pstack, 'DELETE', q, b), 403, 'not_author')
        r = call(pstack, 'POST', notes, b, json={'body': '已退款'})
        assert r.status_code == 201
    finally:
        b.status('paused')
    # prof_a served it: known from the archived history, within seconds
    wait_until(lambda: call(pstack, 'GET', notes.replace('notes', 'profile'),
                            a).status_code == 200, 20, 0.2,
               'prof_a (served it) to see the profile')
    q = '%s?id=%d' % (notes, note['id'])
    r = call(pstack, 'PATCH', q, a, json={'body': '喜欢微信联系'})
    assert r.status_code == 200 and r.json()['body'] == '喜欢微信联系'
    r = call(pstack, 'PATCH', q, admin(pstack), json={'body': '只在白天联系'})
    assert r.status_code == 200 and r.json()['author'] == 'prof_a'
    assert_error(call(pstack, 'DELETE', notes + '?id=x', a), 400,
                 'invalid_field')
    assert_error(call(pstack, 'DELETE', notes + '?id=999999999', a), 404,
                 'no_note')
    assert call(pstack, 'DELETE', q, a).status_code == 200
    assert_error(call(pstack, 'DELETE', q, a), 404, 'no_note')
    with db.cursor() as cur:
        cur.execute("SELECT actor, action FROM audit_log WHERE target = %s "
                    "AND action LIKE 'user_note.%%' ORDER BY id", (openid,))
        assert cur.fetchall() == [('prof_a', 'user_note.add'),
                                  ('prof_b', 'user_note.add'),
                                  ('prof_a', 'user_note.edit'),
                                  ('admin', 'user_note.edit'),
                                  ('prof_a', 'user_note.delete')]
