"""Canned replies over HTTP (docs/api.md "Canned replies"): who reads and
writes which list (the authorization matrix), the field checks, the
variables filled for a user the agent serves, CSV export and the
all-or-nothing import, the bounded list, and the rows carrying the
account's app_id in PostgreSQL."""

import csv
import io

import psycopg2
import pytest
import requests

from conftest import assert_error, run_stack, wait_until
from test_attacks import HOSTILE, MARK, is_json_text, json_with
from test_routing import Agent, add_agent

ACCOUNT_NAME = '好物商城'


@pytest.fixture(scope='module')
def cstack():
    yield from run_stack('canned',
                         extra={'wechat': {'account_name': ACCOUNT_NAME}})


@pytest.fixture(scope='module')
def agents(cstack):
    """Two agents (a serves one user) and the admin's headers."""
    a = Agent(cstack, 'can_a', add_agent(cstack, 'can_a', nick='小李'))
    b = Agent(cstack, 'can_b', add_agent(cstack, 'can_b', nick='小王'))
    return a, b


def admin(stack):
    return {'Authorization': 'Bearer ' + stack.admin_token}


def call(stack, method, path, headers=None, **kw):
    return requests.request(method, stack.base + path, headers=headers,
                            timeout=10, **kw)


def as_agent(ag, method, path, **kw):
    return call(ag.stack, method, path, ag.h, **kw)


def titles(resp):
    assert resp.status_code == 200, resp.text
    return sorted(r['title'] for r in resp.json()['replies'])


def test_authorization_matrix(cstack, agents):
    a, b = agents
    adm = admin(cstack)
    # Nobody without a token.
    for method, path in (('GET', '/api/v1/canned'),
                         ('POST', '/api/v1/canned'),
                         ('PATCH', '/api/v1/canned/1'),
                         ('DELETE', '/api/v1/canned/1'),
                         ('GET', '/api/v1/canned/export'),
                         ('POST', '/api/v1/canned/import')):
        assert_error(call(cstack, method, path), 401, 'unauthorized')
        assert_error(call(cstack, method, path,
                          {'Authorization': 'Bearer nope'}), 401,
                     'unauthorized')

    # Admins write the shared list, agents their own.
    r = call(cstack, 'POST', '/api/v1/canned', adm,
             json={'folder': '售后', 'title': 'M矩阵共享', 'text': '共享',
                   'sort': 2})
    assert r.status_code == 201, r.text
    shared = r.json()
    assert shared['scope'] == 'shared' and shared['owner'] is None
    assert shared['folder'] == '售后' and shared['sort'] == 2
    r = as_agent(a, 'POST', '/api/v1/canned',
                 json={'title': 'M矩阵A', 'text': 'a的'})
    assert r.status_code == 201, r.text
    mine = r.json()
    assert mine['scope'] == 'personal' and mine['owner'] == 'can_a'
    assert mine['folder'] == '' and mine['sort'] == 0
    assert_error(as_agent(a, 'POST', '/api/v1/canned',
                          json={'scope': 'shared', 'title': 't',
                                'text': 'x'}), 403, 'canned_shared')
    assert_error(call(cstack, 'POST', '/api/v1/canned', adm,
                      json={'scope': 'personal', 'title': 't',
                            'text': 'x'}), 400, 'invalid_field')

    # Reads: an agent sees the shared list and its own, never another's;
    # an admin the shared list.
    ta = titles(as_agent(a, 'GET', '/api/v1/canned'))
    tb = titles(as_agent(b, 'GET', '/api/v1/canned'))
    tadm = titles(call(cstack, 'GET', '/api/v1/canned', adm))
    assert 'M矩阵共享' in ta and 'M矩阵A' in ta
    assert 'M矩阵共享' in tb and 'M矩阵A' not in tb
    assert 'M矩阵共享' in tadm and 'M矩阵A' not in tadm

    # Writes of another's row: an agent on a shared row is told why, on
    # another agent's row (or an admin on a personal one) sees nothing.
    sid, mid = shared['id'], mine['id']
    for method in ('PATCH', 'DELETE'):
        assert_error(as_agent(a, method, '/api/v1/canned/%d' % sid,
                              json={'title': 'x'}), 403, 'canned_shared')
        assert_error(as_agent(b, method, '/api/v1/canned/%d' % mid,
                              json={'title': 'x'}), 404, 'no_canned')
        assert_error(call(cstack, method, '/api/v1/canned/%d' % mid, adm,
                          json={'title': 'x'}), 404, 'no_canned')
    for bad in ('0', '999999999', '12a', '9007199254740993'):
        assert_error(as_agent(a, 'PATCH', '/api/v1/canned/' + bad,
                              json={'title': 'x'}), 404, 'no_canned')

    # The owner changes its row; the admin the shared one.
    r = as_agent(a, 'PATCH', '/api/v1/canned/%d' % mid,
                 json={'text': '改过', 'folder': '我的'})
    assert r.status_code == 200, r.text
    assert r.json()['text'] == '改过' and r.json()['title'] == 'M矩阵A'
    assert r.json()['folder'] == '我的'
    r = call(cstack, 'PATCH', '/api/v1/canned/%d' % sid, adm,
             json={'sort': 5})
    assert r.status_code == 200 and r.json()['sort'] == 5, r.text
    assert as_agent(a, 'DELETE', '/api/v1/canned/%d' % mid).status_code \
        == 204
    assert_error(as_agent(a, 'DELETE', '/api/v1/canned/%d' % mid), 404,
                 'no_canned')
    assert call(cstack, 'DELETE', '/api/v1/canned/%d' % sid,
                adm).status_code == 204


def test_fields_are_checked(cstack, agents):
    a, _ = agents
    for body, field in (({'text': 'x'}, 'title'),
                        ({'title': 't'}, 'text'),
                        ({'title': '长' * 65, 'text': 'x'}, 'title'),
                        ({'title': 't', 'text': 'x' * 1001}, 'text'),
                        ({'title': 't', 'text': 'a\x1bb'}, 'text'),
                        ({'title': 'a\nb', 'text': 'x'}, 'title'),
                        ({'folder': 'f' * 33, 'title': 't', 'text': 'x'},
                         'folder'),
                        ({'title': 't', 'text': 'x', 'sort': -1}, 'sort'),
                        ({'title': 't', 'text': 'x', 'sort': '1'}, 'sort'),
                        ({'title': 5, 'text': 'x'}, 'title')):
        err = assert_error(as_agent(a, 'POST', '/api/v1/canned', json=body),
                           400, 'invalid_field')
        assert field in err['message'], (body, err)
    r = as_agent(a, 'POST', '/api/v1/canned',
                 json={'title': '长' * 64, 'text': '行一\n行二\t' + 'x' * 994})
    assert r.status_code == 201, r.text
    assert_error(as_agent(a, 'PATCH', '/api/v1/canned/%d' % r.json()['id'],
                          json={}), 400, 'invalid_field')
    assert as_agent(a, 'DELETE', '/api/v1/canned/%d'
                    % r.json()['id']).status_code == 204


def test_variables_for_a_served_user(cstack, agents):
    a, b = agents
    r = as_agent(a, 'POST', '/api/v1/canned',
                 json={'title': '问候',
                       'text': '{nickname}您好，我是{agent}，欢迎来到'
                               '{account}！{other}'})
    assert r.status_code == 201, r.text
    rid = r.json()['id']
    a.status('online')
    user = cstack.user()
    assert user.send_text('你好').status_code == 200
    wait_until(lambda: user.openid in a.sessions(), 10, what='assigned')
    r = as_agent(a, 'GET', '/api/v1/canned', params={'openid': user.openid})
    assert r.status_code == 200, r.text
    row = [x for x in r.json()['replies'] if x['id'] == rid][0]
    short = user.openid[:6] + '…' + user.openid[-6:]
    assert row['rendered'] == ('%s您好，我是小李，欢迎来到%s！{other}'
                               % (short, ACCOUNT_NAME))
    assert row['text'].startswith('{nickname}')
    # Without openid nothing is rendered; another agent's user is refused.
    r = as_agent(a, 'GET', '/api/v1/canned')
    assert all('rendered' not in x for x in r.json()['replies'])
    assert_error(as_agent(b, 'GET', '/api/v1/canned',
                          params={'openid': user.openid}), 403, 'not_yours')
    assert_error(as_agent(a, 'GET', '/api/v1/canned',
                          params={'openid': 'bad id!'}), 400,
                 'invalid_field')
    assert as_agent(a, 'DELETE', '/api/v1/canned/%d' % rid).status_code \
        == 204


def export(stack, headers, **params):
    r = call(stack, 'GET', '/api/v1/canned/export', headers, params=params)
    assert r.status_code == 200, r.text
    assert r.headers['Content-Type'].startswith('text/csv')
    assert r.content.startswith(b'\xef\xbb\xbf')
    return r.content


def rows_of(content):
    return list(csv.DictReader(io.StringIO(content.decode('utf-8-sig'),
                                           newline='')))


def test_csv_export_import_round_trip(cstack, agents):
    adm = admin(cstack)
    src = ('\ufefffolder,title,text,sort\r\n'
           '售后,退货,"您好，{nickname}：\r\n请把货寄回""仓库""",1\r\n'
           ',公式,=1+1,0\r\n'
           '售前,"逗号, 标题",@提及,3\r\n')
    r = call(cstack, 'POST', '/api/v1/canned/import',
             {**adm, 'Content-Type': 'text/csv'},
             params={'replace': '1'}, data=src.encode('utf-8'))
    assert r.status_code == 200, r.text
    assert r.json() == {'imported': 3, 'replaced': True}
    rows = rows_of(export(cstack, adm))
    got = {x['title']: x for x in rows}
    assert got['退货']['text'] == '您好，{nickname}：\r\n请把货寄回"仓库"'
    assert got['公式']['text'] == "'=1+1"        # kept out of formulas
    assert got['逗号, 标题']['folder'] == '售前'
    # What was exported imports back to the same list.
    content = export(cstack, adm)
    r = call(cstack, 'POST', '/api/v1/canned/import', adm,
             params={'replace': '1'}, data=content)
    assert r.status_code == 200 and r.json()['imported'] == 3, r.text
    assert export(cstack, adm) == content
    r = call(cstack, 'GET', '/api/v1/canned', adm)
    texts = sorted(x['text'] for x in r.json()['replies'])
    assert '=1+1' in texts and '@提及' in texts


def test_bad_csv_imports_nothing(cstack, agents):
    a, _ = agents
    before = export(cstack, a.h)
    bad = ('title,text\n'
           'ok,fine\n'
           ',no title\n'
           'ok2,"never closed\n')
    r = as_agent(a, 'POST', '/api/v1/canned/import',
                 data=bad.encode('utf-8'))
    err = assert_error(r, 400, 'invalid_csv')
    assert [x['row'] for x in err['rows']] == [3, 4]
    assert 'title' in err['rows'][0]['message']
    assert 'not closed' in err['rows'][1]['message']
    assert export(cstack, a.h) == before
    err = assert_error(as_agent(a, 'POST', '/api/v1/canned/import',
                                data=b'name,text\nx,y\n'), 400,
                       'invalid_csv')
    assert 'columns' in err['detail']
    # Over the size: refused by nginx or the worker, never stored.
    r = as_agent(a, 'POST', '/api/v1/canned/import',
                 data=b'title,text\n' + b'x,' + b'y' * (600 * 1024) + b'\n')
    assert r.status_code == 413
    assert export(cstack, a.h) == before
    # An agent's import is its own list; scopes of an export.
    r = as_agent(a, 'POST', '/api/v1/canned/import',
                 data='title,text\n我的一,甲\n我的二,乙\n'.encode('utf-8'))
    assert r.status_code == 200 and r.json()['imported'] == 2, r.text
    assert [x['title'] for x in rows_of(export(cstack, a.h))] == \
        ['我的一', '我的二']
    assert '退货' in [x['title'] for x in
                    rows_of(export(cstack, a.h, scope='shared'))]
    assert_error(call(cstack, 'GET', '/api/v1/canned/export', admin(cstack),
                      params={'scope': 'personal'}), 400, 'invalid_field')


def test_list_is_bounded_and_rows_carry_the_account(cstack, agents):
    _, b = agents
    full = 'title,text\n' + ''.join('t%d,x\n' % i for i in range(500))
    r = as_agent(b, 'POST', '/api/v1/canned/import', params={'replace': '1'},
                 data=full.encode())
    assert r.status_code == 200 and r.json()['imported'] == 500, r.text
    assert_error(as_agent(b, 'POST', '/api/v1/canned',
                          json={'title': 'one more', 'text': 'x'}), 409,
                 'canned_full')
    assert_error(as_agent(b, 'POST', '/api/v1/canned/import',
                          data=b'title,text\nmore,x\n'), 409, 'canned_full')
    db = psycopg2.connect(host='127.0.0.1', port=cstack.pg_port,
                          dbname='wxkf', user='wxkf', connect_timeout=5)
    try:
        with db.cursor() as cur:
            cur.execute("SELECT DISTINCT app_id FROM canned_replies")
            assert cur.fetchall() == [(cstack.app_id,)]
            cur.execute("SELECT count(*) FROM canned_replies "
                        "WHERE owner = 'can_b'")
            assert cur.fetchone()[0] == 500
    finally:
        db.close()
    # Replacing with an empty file empties the list.
    r = as_agent(b, 'POST', '/api/v1/canned/import', params={'replace': '1'},
                 data=b'title,text\n')
    assert r.status_code == 200 and r.json()['imported'] == 0, r.text
    assert rows_of(export(cstack, b.h)) == []


def canned_field_ok(field, v):
    """docs/api.md "Canned replies": UTF-8 JSON text, a length in
    characters, no control characters but line breaks and tabs in text."""
    if not is_json_text(v):
        return False
    lo, hi = {'folder': (0, 32), 'title': (1, 64), 'text': (1, 1000)}[field]
    if not lo <= len(v) <= hi:
        return False
    for i, c in enumerate(v):
        if ord(c) < 0x20 or 0x7f <= ord(c) < 0xa0:
            if field != 'text':
                return False
            if not (c in '\t\n' or (c == '\r' and v[i + 1:i + 2] == '\n')):
                return False
    return True


def test_hostile_strings_are_stored_as_text_or_refused(cstack):
    """test_attacks' 15 hostile strings in each field: a 201 that stores
    them byte for byte (the API, PostgreSQL and an export that imports
    back the same), or a 4xx JSON error with its code; never a 5xx."""
    c = Agent(cstack, 'can_h', add_agent(cstack, 'can_h', nick='H'))
    db = psycopg2.connect(host='127.0.0.1', port=cstack.pg_port,
                          dbname='wxkf', user='wxkf', connect_timeout=5)
    stored, column = [], {'folder': 'folder', 'title': 'title',
                          'text': 'body'}
    try:
        for name, v in HOSTILE:
            for field in ('folder', 'title', 'text'):
                where = '%s x %s' % (field, name)
                body = {'folder': 'f', 'title': 't', 'text': 'x'}
                body[field] = MARK
                r = requests.post(cstack.base + '/api/v1/canned',
                                  data=json_with(body, v), timeout=10,
                                  headers={**c.h, 'Content-Type':
                                           'application/json'})
                if len(json_with(body, v)) > 16384:
                    assert r.status_code == 413, (where, r.text[:200])
                    continue
                if not canned_field_ok(field, v):
                    err = assert_error(r, 400, r.json()['error']['code'])
                    assert err['code'] in ('invalid_field', 'bad_json'), \
                        (where, err)
                    continue
                assert r.status_code == 201, (where, r.text[:200])
                row = r.json()
                assert row[field] == v, where
                with db.cursor() as cur:
                    cur.execute('SELECT ' + column[field] + ' FROM '
                                'canned_replies WHERE id = %s', (row['id'],))
                    assert cur.fetchone()[0] == v, where
                stored.append((row['folder'], row['title'], row['text']))
    finally:
        db.close()
    assert len(stored) >= 20, stored
    mine = sorted((x['folder'], x['title'], x['text']) for x in
                  as_agent(c, 'GET', '/api/v1/canned').json()['replies']
                  if x['scope'] == 'personal')
    assert mine == sorted(stored)
    content = export(cstack, c.h)
    r = as_agent(c, 'POST', '/api/v1/canned/import', params={'replace': '1'},
                 data=content)
    assert r.status_code == 200 and r.json()['imported'] == len(stored), \
        r.text
    again = sorted((x['folder'], x['title'], x['text']) for x in
                   as_agent(c, 'GET', '/api/v1/canned').json()['replies']
                   if x['scope'] == 'personal')
    assert again == sorted(stored)
    assert export(cstack, c.h) == content
