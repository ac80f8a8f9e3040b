"""The audit log of staff actions (docs/security.md, "The audit log";
lib/audit): the list of routes comes from the binary itself (`wxkf
routes`, the table of fcgi/routes.c); every state-changing one that is
not in the one exempt list is called successfully as a role allowed to,
and must leave a new audit_log row with its action, actor, role,
target, address, request id (nginx's, the response's X-Request-Id) and
account — the rows of changes made in Redis once the archiver has copied
them from the event stream. A route added without an audited call here,
or one whose call writes no row, fails the test with its name. Failed
sign-ins and the lock-out are audited too."""

import subprocess

import pytest
import requests

from conftest import APP_ID, run_stack, wait_until, wxkf_bin
from test_archive import query
from test_routing import Agent, add_agent
from test_staff import PW, Cookie, add_user, login
from test_wrapup import admin, archived, close, serve

WRITES = ('POST', 'PATCH', 'DELETE')


@pytest.fixture(scope='module')
def astack():
    yield from run_stack('audit')


def routes():
    """(method, pattern) -> ('read' | 'audited' | 'exempt', why)."""
    out = subprocess.run([wxkf_bin(), 'routes'], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    got = {}
    for line in out.stdout.splitlines():
        f = line.split('\t')          # method, path, role, audit[, why]
        assert len(f) in (4, 5), line
        got[(f[0], f[1])] = (f[3], f[4] if len(f) == 5 else '')
    return got


def audit_row(stack, rid, what):
    """The audit_log row written under request id rid (waits for the
    archiver's copy of a Redis-path row)."""
    def row():
        rows = query(stack, 'SELECT action, actor, role, target, ip, app_id '
                     'FROM audit_log WHERE request_id = %s', (rid,))
        return rows or None
    rows = wait_until(row, 20, what='the audit row of ' + what)
    assert len(rows) == 1, (what, rows)
    return rows[0]


class World:
    """Who acts: two agents by token, a staff agent, a supervisor and an
    admin by password, the bootstrap admin token."""

    def __init__(self, stack):
        self.stack = stack
        self.a = Agent(stack, 'au_a', add_agent(stack, 'au_a'))
        self.b = Agent(stack, 'au_b', add_agent(stack, 'au_b'))
        add_user(stack, 'wang', 'agent', agent='au_a')
        add_user(stack, 'lead', 'supervisor')
        add_user(stack, 'boss', 'admin')
        self.adm = admin(stack)
        self.ids = {}

    def api(self, method, path, headers=None, **kw):
        return requests.request(method, self.stack.base + path,
                                headers=headers or self.adm, timeout=30, **kw)


@pytest.fixture(scope='module')
def world(astack):
    return World(astack)


def keep_id(w, key, r):
    w.ids[key] = r.json().get('id') if r.status_code == 201 else None


def made(w, key, create):
    """The id of the row kept as key, made by create(w) when there is
    none (or it was removed)."""
    if not w.ids.get(key):
        create(w)
    return w.ids[key]


# --- one successful call per audited route --------------------------------
# Each returns (response, action, actor, role, target) of what it did.

def c_status(w):
    r = w.b.post('/api/v1/me/status', {'status': 'paused'})
    return r, 'agent.status', 'au_b', 'agent', 'au_b'


def c_close(w):
    u = serve(w.stack, w.a, [w.b])
    w.ids['closed'] = u
    r = close(w.a, u.openid, {})
    return r, 'session.close', 'au_a', 'agent', u.openid


def c_transfer(w):
    u = serve(w.stack, w.a, [w.b])
    w.b.status('online')
    r = w.a.post('/api/v1/sessions/%s/transfer' % u.openid,
                 {'to_agent': 'au_b'})
    w.ids['transferred'] = u
    return r, 'session.transfer', 'au_a', 'agent', u.openid


def c_reopen(w):
    u = w.ids.get('closed') or c_close(w) and w.ids['closed']
    sid = archived(w.stack, u.openid)[0]
    w.a.status('online')
    r = w.a.post('/api/v1/sessions/%s/reopen' % u.openid, {'session': sid})
    return r, 'session.reopen', 'au_a', 'agent', u.openid


def openid(w):
    if 'closed' not in w.ids:
        c_close(w)
    return w.ids['closed'].openid


def c_profile(w):
    o = openid(w)
    r = w.api('PATCH', '/api/v1/users/%s/profile' % o,
              json={'display_name': '王女士'})
    return r, 'user.display_name', 'admin', 'admin', o


def c_note_add(w):
    o = openid(w)
    r = w.api('POST', '/api/v1/users/%s/notes' % o, json={'body': '喜欢电话'})
    keep_id(w, 'note', r)
    return r, 'user_note.add', 'admin', 'admin', o


def c_note_edit(w):
    o, n = openid(w), made(w, 'note', c_note_add)
    r = w.api('PATCH', '/api/v1/users/%s/notes' % o, params={'id': n},
              json={'body': '喜欢微信'})
    return r, 'user_note.edit', 'admin', 'admin', o


def c_note_delete(w):
    o, n = openid(w), made(w, 'note', c_note_add)
    w.ids['note'] = None
    r = w.api('DELETE', '/api/v1/users/%s/notes' % o, params={'id': n})
    return r, 'user_note.delete', 'admin', 'admin', o


def boss(w):
    if 'boss' not in w.ids:
        w.ids['boss'] = Cookie(w.stack, 'boss')
    return w.ids['boss']


def c_label_create(w):
    r = boss(w).call('POST', '/api/v1/labels',
                     json={'name': '退款', 'color': '#e53935'})
    keep_id(w, 'label', r)
    return r, 'label.create', 'boss', 'admin', '退款'


def c_label_patch(w):
    n = made(w, 'label', c_label_create)
    r = boss(w).call('PATCH', '/api/v1/labels/%d' % n,
                     json={'color': '#1e88e5'})
    return r, 'label.update', 'boss', 'admin', str(n)


def c_label_delete(w):
    n = made(w, 'label', c_label_create)
    w.ids['label'] = None
    r = boss(w).call('DELETE', '/api/v1/labels/%d' % n)
    return r, 'label.delete', 'boss', 'admin', str(n)


def c_login(w):
    r = login(w.stack, 'lead')
    return r, 'staff.login', 'lead', 'supervisor', 'lead'


def c_logout(w):
    r = Cookie(w.stack, 'lead').call('POST', '/api/v1/auth/logout')
    return r, 'staff.logout', 'lead', 'supervisor', 'lead'


def c_logout_all(w):
    r = Cookie(w.stack, 'lead').call('POST', '/api/v1/auth/logout-all')
    return r, 'staff.logout_all', 'lead', 'supervisor', 'lead'


def c_password(w):
    r = Cookie(w.stack, 'wang').call('POST', '/api/v1/auth/password',
                                     json={'old_password': PW,
                                           'new_password': PW})
    return r, 'staff.password', 'wang', 'agent', 'wang'


def c_reset(w):
    r = boss(w).call('POST', '/api/v1/staff/lead/password',
                     json={'new_password': PW})
    return r, 'staff.password_reset', 'boss', 'admin', 'lead'


def c_agent_create(w):
    r = w.api('POST', '/api/v1/agents', json={'account': 'au_c',
                                              'nick': '小陈'})
    return r, 'agent.create', 'admin', 'admin', 'au_c'


def agent_c(w):
    if 'au_c' not in w.ids:
        w.ids['au_c'] = c_agent_create(w)[0].status_code
    return 'au_c'


def c_agent_patch(w):
    r = w.api('PATCH', '/api/v1/agents/' + agent_c(w), json={'weight': 3})
    return r, 'agent.update', 'admin', 'admin', 'au_c'


def c_agent_token(w):
    r = w.api('POST', '/api/v1/agents/%s/token' % agent_c(w))
    return r, 'agent.token', 'admin', 'admin', 'au_c'


def c_agent_delete(w):
    r = w.api('DELETE', '/api/v1/agents/' + agent_c(w))
    return r, 'agent.delete', 'admin', 'admin', 'au_c'


def c_canned_create(w):
    r = w.a.post('/api/v1/canned', {'folder': '售后', 'title': '退货',
                                    'text': '请把货寄回'})
    keep_id(w, 'canned', r)
    return r, 'canned.create', 'au_a', 'agent', '退货'


def c_canned_patch(w):
    n = made(w, 'canned', c_canned_create)
    r = requests.patch(w.stack.base + '/api/v1/canned/%d' % n,
                       json={'text': '请寄回仓库'}, headers=w.a.h, timeout=30)
    return r, 'canned.update', 'au_a', 'agent', str(n)


def c_canned_delete(w):
    n = made(w, 'canned', c_canned_create)
    w.ids['canned'] = None
    r = requests.delete(w.stack.base + '/api/v1/canned/%d' % n,
                        headers=w.a.h, timeout=30)
    return r, 'canned.delete', 'au_a', 'agent', str(n)


def c_canned_import(w):
    r = w.api('POST', '/api/v1/canned/import',
              headers={**w.adm, 'Content-Type': 'text/csv'},
              data='folder,title,text,sort\r\n售前,问候,您好,1\r\n'
              .encode('utf-8'))
    return r, 'canned.import', 'admin', 'admin', None


def c_whisper(w):
    u = serve(w.stack, w.a, [w.b])
    w.ids['whispered'] = u
    r = w.api('POST', '/api/v1/sessions/%s/whisper' % u.openid,
              json={'text': '这位用户上周投诉过'})
    return r, 'session.whisper', 'admin', 'admin', u.openid


def c_takeover(w):
    if 'chief' not in w.ids:
        add_agent(w.stack, 'au_s')
        add_user(w.stack, 'chief', 'supervisor', agent='au_s')
        w.ids['chief'] = Cookie(w.stack, 'chief')
    u = w.ids.get('whispered') or serve(w.stack, w.a, [w.b])
    r = w.ids['chief'].call('POST', '/api/v1/sessions/%s/takeover' % u.openid)
    return r, 'session.takeover', 'chief', 'supervisor', u.openid


def c_move(w):
    w.a.status('paused')        # nobody takes a new user: it waits
    w.b.status('paused')
    u = w.stack.user()
    assert u.send_text('有人吗').status_code == 200
    r = boss(w).call('POST', '/api/v1/queue/%s/assign' % u.openid,
                     json={'agent': 'au_a'})
    w.a.status('online')
    return r, 'session.move', 'boss', 'admin', u.openid


def c_force(w):
    w.b.status('online')
    r = boss(w).call('POST', '/api/v1/agents/au_b/status',
                     json={'status': 'paused'})
    return r, 'agent.force_status', 'boss', 'admin', 'au_b'


def c_token_create(w):
    r = boss(w).call('POST', '/api/v1/tokens',
                     json={'name': 'erp', 'scopes': ['read']})
    keep_id(w, 'token', r)
    return r, 'token.create', 'boss', 'admin', 'erp'


def c_token_revoke(w):
    n = made(w, 'token', c_token_create)
    r = boss(w).call('DELETE', '/api/v1/tokens/%d' % n)
    return r, 'token.revoke', 'boss', 'admin', str(n)


def c_staff_create(w):
    r = boss(w).call('POST', '/api/v1/staff',
                     json={'login': 'newbie', 'name': '新人',
                           'role': 'supervisor', 'password': PW})
    return r, 'staff.create', 'boss', 'admin', 'newbie'


def c_staff_patch(w):
    r = boss(w).call('PATCH', '/api/v1/staff/newbie', json={'name': '小新'})
    return r, 'staff.update', 'boss', 'admin', 'newbie'


CALLS = {
    ('POST', '/api/v1/me/status'): c_status,
    ('POST', '/api/v1/sessions/*/close'): c_close,
    ('POST', '/api/v1/sessions/*/transfer'): c_transfer,
    ('POST', '/api/v1/sessions/*/reopen'): c_reopen,
    ('PATCH', '/api/v1/users/*/profile'): c_profile,
    ('POST', '/api/v1/users/*/notes'): c_note_add,
    ('PATCH', '/api/v1/users/*/notes'): c_note_edit,
    ('DELETE', '/api/v1/users/*/notes'): c_note_delete,
    ('POST', '/api/v1/labels'): c_label_create,
    ('PATCH', '/api/v1/labels/*'): c_label_patch,
    ('DELETE', '/api/v1/labels/*'): c_label_delete,
    ('POST', '/api/v1/auth/login'): c_login,
    ('POST', '/api/v1/auth/logout'): c_logout,
    ('POST', '/api/v1/auth/logout-all'): c_logout_all,
    ('POST', '/api/v1/auth/password'): c_password,
    ('POST', '/api/v1/staff/*/password'): c_reset,
    ('POST', '/api/v1/agents'): c_agent_create,
    ('PATCH', '/api/v1/agents/+'): c_agent_patch,
    ('POST', '/api/v1/agents/+/token'): c_agent_token,
    ('DELETE', '/api/v1/agents/+'): c_agent_delete,
    ('POST', '/api/v1/canned'): c_canned_create,
    ('PATCH', '/api/v1/canned/*'): c_canned_patch,
    ('DELETE', '/api/v1/canned/*'): c_canned_delete,
    ('POST', '/api/v1/canned/import'): c_canned_import,
    ('POST', '/api/v1/sessions/*/whisper'): c_whisper,
    ('POST', '/api/v1/sessions/*/takeover'): c_takeover,
    ('POST', '/api/v1/queue/*/assign'): c_move,
    ('POST', '/api/v1/agents/+/status'): c_force,
    ('POST', '/api/v1/tokens'): c_token_create,
    ('DELETE', '/api/v1/tokens/*'): c_token_revoke,
    ('POST', '/api/v1/staff'): c_staff_create,
    ('PATCH', '/api/v1/staff/*'): c_staff_patch,
}


def test_every_state_changing_route_is_audited_or_exempt_with_a_reason():
    got = routes()
    assert ('GET', '/api/v1/me') in got and ('POST', '/wechat') in got
    for (method, path), (kind, why) in got.items():
        assert kind == ('read' if method in ('GET', 'HEAD') else kind), \
            (method, path)
        if method in WRITES:
            assert kind in ('audited', 'exempt'), (method, path, kind)
            assert (kind == 'exempt') == bool(why), (method, path)
    missing = sorted('%s %s' % k for k, (kind, _) in got.items()
                     if kind == 'audited' and k not in CALLS)
    assert not missing, ('state-changing routes with no audited call in '
                         'test_audit.py: ' + ', '.join(missing))
    stale = sorted('%s %s' % k for k in CALLS
                   if got.get(k, ('', ''))[0] != 'audited')
    assert not stale, 'calls for routes that are not audited: %s' % stale


def test_each_audited_route_writes_its_row(astack, world):
    failed = []
    got = routes()
    # in the order of CALLS: a row is made before it is changed
    audited = [k for k in CALLS if got.get(k, ('', ''))[0] == 'audited']
    for key in audited:
        name = '%s %s' % key
        r, action, actor, role, target = CALLS[key](world)
        assert r.status_code in (200, 201, 204), (name, r.status_code,
                                                  r.text)
        rid = r.headers.get('X-Request-Id', '')
        assert rid, name
        try:
            row = audit_row(astack, rid, name)
        except AssertionError as e:
            failed.append('%s: %s' % (name, e))
            continue
        want = (action, actor, role, target, '127.0.0.1', APP_ID)
        if row != want:
            failed.append('%s: %r, not %r' % (name, row, want))
    assert not failed, 'routes that wrote no right audit row:\n' + \
        '\n'.join(failed)


def test_a_refused_change_writes_no_row(astack, world):
    r = world.a.post('/api/v1/sessions/%s/close' % 'oNobodyHere000', {})
    assert r.status_code in (403, 404, 409), r.text
    r2 = world.api('DELETE', '/api/v1/labels/999999')
    assert r2.status_code == 404, r2.text
    r3 = world.api('POST', '/api/v1/staff/nosuch/password',
                   json={'new_password': PW})
    assert r3.status_code == 404, r3.text
    # a write that did happen afterwards is archived: the refused ones,
    # before it on the stream, would have been too
    ok = c_status(world)[0]
    audit_row(astack, ok.headers['X-Request-Id'], 'agent.status')
    rids = [x.headers['X-Request-Id'] for x in (r, r2, r3)]
    assert query(astack, 'SELECT count(*) FROM audit_log WHERE request_id '
                 '= ANY(%s)', (rids,)) == [(0,)]


def test_failed_sign_ins_and_the_lock_out_are_audited(astack, world):
    add_user(astack, 'kim', 'supervisor')
    rids = []
    for _ in range(5):           # the fifth failure in a row locks
        r = login(astack, 'kim', 'not the password at all')
        assert r.status_code == 401, r.text
        rids.append(r.headers['X-Request-Id'])
    for rid in rids[:-1]:
        assert audit_row(astack, rid, 'a failed sign-in') == (
            'staff.login_failed', 'anonymous', 'none', 'kim', '127.0.0.1',
            APP_ID)
    rows = wait_until(lambda: query(
        astack, 'SELECT action, actor, role, target FROM audit_log WHERE '
        'request_id = %s ORDER BY id', (rids[-1],)) or None, 20,
        what='the lock-out audited')
    assert sorted(rows) == [('staff.lock', 'anonymous', 'none', 'kim'),
                            ('staff.login_failed', 'anonymous', 'none',
                             'kim')], rows
    # locked: the next attempt is refused before any password is checked
    assert login(astack, 'kim').status_code == 429


def test_commands_are_audited_as_cli(astack, world):
    add_agent(astack, 'au_cli')
    out = subprocess.run([wxkf_bin(), 'agent', 'remove', '-c', astack.conf,
                          '--account', 'au_cli'], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    add_user(astack, 'temp', 'supervisor')
    out = subprocess.run([wxkf_bin(), 'user', 'disable', '-c', astack.conf,
                          '--login', 'temp'], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    rows = query(astack, "SELECT action, target, role, ip, request_id, "
                 "app_id FROM audit_log WHERE actor = 'cli' ORDER BY id")
    for want in (('agent.create', 'au_cli'), ('agent.delete', 'au_cli'),
                 ('staff.create', 'temp'), ('staff.disable', 'temp')):
        assert want + ('cli', None, None, APP_ID) in rows, (want, rows)
    # a refused command writes nothing
    out = subprocess.run([wxkf_bin(), 'user', 'disable', '-c', astack.conf,
                          '--login', 'nobody'], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1
    assert query(astack, "SELECT count(*) FROM audit_log WHERE target = "
                 "'nobody'") == [(0,)]
