"""The admin's audit view (GET /api/v1/audit) and the audit log's
retention, against a real stack. The rows are put straight into
audit_log (the columns of sql/0002_history.sql and sql/0010_audit.sql),
as the write paths of every route will: the view's filters (actor, action
prefix, target, from/to by the account's day or time), its paging and
totals, that another account's rows are never shown or counted, its
refusals of bad input; then `wxkf jobs` deleting rows older than
[audit] keep_days, this account's only, in bounded batches.

Run: WXKF_BIN=$PWD/build/san/wxkf /usr/bin/python3 -m pytest -q \
     test/it/test_audit_view.py
"""

import datetime as dt
import json
import os
import signal
import subprocess

import pytest
import requests

from conftest import APP_ID, assert_error, run_stack, wxkf_bin
from test_archive import db
from wxkf_checks import wait_until

OTHER = 'wxotherapp00000001'    # another account in the same database
OFFSET = dt.timedelta(hours=8)  # [api] stats_utc_offset = 480 (default)
BULK = 250                      # rows for the paging


@pytest.fixture(scope='module')
def vstack():
    # The stack's own `wxkf jobs` keeps every row (keep_days = 0): the
    # retention tests run one of their own with keep_days set.
    yield from run_stack('auditview', extra={'audit': {'keep_days': '0'}})


def sql(stack, text, args=None):
    conn = db(stack)
    try:
        with conn.cursor() as cur:
            cur.execute(text, args)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def insert(stack, app_id, at, actor, role, action, target, ip=None,
           rid=None, detail=None):
    sql(stack, "INSERT INTO audit_log (app_id, at, actor, role, action,"
        " target, ip, request_id, detail) VALUES (%s, %s, %s, %s, %s, %s,"
        " %s, %s, %s)", (app_id, at, actor, role, action, target, ip, rid,
                         json.dumps(detail or {})))


def audit(stack, **query):
    return requests.get(stack.base + '/api/v1/audit', params=query,
                        timeout=30, headers={
                            'Authorization': 'Bearer ' + stack.admin_token})


def ok(stack, **query):
    r = audit(stack, **query)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope='module')
def day(vstack):
    """A local day three days ago (the account's, UTC+8) with rows on
    both sides of its edges, and BULK rows the day before it; the same
    rows under another account."""
    local = (dt.datetime.now(dt.timezone.utc) + OFFSET).date() - \
        dt.timedelta(days=3)
    start = dt.datetime.combine(local, dt.time(), dt.timezone.utc) - OFFSET
    sec = dt.timedelta(seconds=1)
    rows = [  # at, actor, role, action, target, ip, request id, detail
        (start - sec, 'wang', 'agent', 'session.close', 'oUserA', '10.0.0.1',
         'rid-1', {'labels': [1]}),
        (start, 'wang', 'agent', 'session.transfer', 'oUserA', '10.0.0.2',
         'rid-2', {'to': 'a2@shop'}),
        (start + dt.timedelta(hours=10), 'boss', 'admin', 'sessions.export',
         None, '10.0.0.3', 'rid-3', {}),
        (start + dt.timedelta(days=1) - sec, 'lead', 'supervisor',
         'session.takeover', 'oUserB', '10.0.0.4', 'rid-4', {}),
        (start + dt.timedelta(days=1), 'boss', 'admin', 'agent.create',
         'a1@shop', '10.0.0.5', 'rid-5', {'nick': '小王'}),
    ]
    for app in (APP_ID, OTHER):
        for r in rows:
            insert(vstack, app, *r)
    sql(vstack, "INSERT INTO audit_log (app_id, at, actor, role, action,"
        " target) SELECT a, %s - i * interval '1 minute', 'bulk', 'admin',"
        " 'label.create', 'l' || i FROM generate_series(1, %s) i,"
        " unnest(ARRAY[%s, %s]) a",
        (start - dt.timedelta(days=1), BULK, APP_ID, OTHER))
    return local


def test_rows_newest_first_with_every_field(vstack, day):
    page = ok(vstack, actor='wang')
    assert page['total'] == 2 and page['offset'] == 0 and \
        page['limit'] == 50
    first, second = page['rows']
    assert [first['action'], second['action']] == ['session.transfer',
                                                   'session.close']
    assert first['actor'] == 'wang' and first['role'] == 'agent'
    assert first['target'] == 'oUserA' and first['ip'] == '10.0.0.2'
    assert first['request_id'] == 'rid-2'
    assert first['detail'] == {'to': 'a2@shop'}
    assert first['at'].endswith('Z') and 'T' in first['at']
    assert first['id'] > 0
    export = ok(vstack, action='sessions.')['rows'][0]
    assert export['target'] is None and export['detail'] == {}


def test_filters_narrow_and_combine(vstack, day):
    assert ok(vstack)['total'] == 5 + BULK
    assert ok(vstack, action='session.')['total'] == 3
    assert ok(vstack, action='session')['total'] == 4    # sessions.export
    assert ok(vstack, action='session.transfer')['total'] == 1
    assert ok(vstack, target='oUserA')['total'] == 2
    assert ok(vstack, actor='boss', action='agent.')['total'] == 1
    assert ok(vstack, actor='nobody')['total'] == 0
    # the prefix is a prefix, not a pattern; the filters are parameters
    assert ok(vstack, action='%')['total'] == 0
    assert ok(vstack, action='_ession.')['total'] == 0
    assert ok(vstack, actor="wang' OR '1'='1")['total'] == 0
    assert ok(vstack, actor='小王')['total'] == 0


def test_dates_are_the_accounts_days(vstack, day):
    d = day.isoformat()
    page = ok(vstack, **{'from': d, 'to': d})
    assert sorted(r['request_id'] for r in page['rows']) == \
        ['rid-2', 'rid-3', 'rid-4']
    nxt = (day + dt.timedelta(days=1)).isoformat()
    assert [r['request_id'] for r in ok(vstack, **{'from': nxt})['rows']] \
        == ['rid-5']
    # only `to`: everything up to the end of that day
    assert ok(vstack, to=d)['total'] == 3 + 1 + BULK
    # times: the account's local time, or UTC with Z; to is exclusive
    assert [r['request_id'] for r in ok(vstack, **{
        'from': d + 'T10:00', 'to': d + 'T10:00:01'})['rows']] == ['rid-3']
    utc = (dt.datetime.combine(day, dt.time(10)) - OFFSET)
    assert [r['request_id'] for r in ok(vstack, **{
        'from': utc.strftime('%Y-%m-%dT%H:%M:%SZ'),
        'to': (utc + dt.timedelta(seconds=1)).strftime('%Y-%m-%dT%H:%M:%SZ'),
    })['rows']] == ['rid-3']


def test_pages_cover_every_row_once_with_the_total(vstack, day):
    seen = []
    for offset in range(0, BULK + 200, 200):
        page = ok(vstack, actor='bulk', limit=200, offset=offset)
        assert page['total'] == BULK
        assert page['limit'] == 200 and page['offset'] == offset
        seen += page['rows']
    assert len(seen) == BULK
    assert len({r['id'] for r in seen}) == BULK
    ats = [r['at'] for r in seen]
    assert ats == sorted(ats, reverse=True)
    assert ok(vstack, actor='bulk', limit=1, offset=BULK)['rows'] == []
    assert ok(vstack, actor='bulk', limit=1, offset=BULK)['total'] == BULK


def test_another_accounts_rows_are_never_shown(vstack, day):
    assert sql(vstack, "SELECT count(*) FROM audit_log WHERE app_id = %s",
               (OTHER,))[0][0] == 5 + BULK
    rows = ok(vstack, limit=200)['rows'] + \
        ok(vstack, limit=200, offset=200)['rows']
    assert len(rows) == 5 + BULK
    mine = {r[0] for r in sql(vstack, "SELECT id FROM audit_log WHERE"
                              " app_id = %s", (APP_ID,))}
    assert {r['id'] for r in rows} <= mine


@pytest.mark.parametrize('query,code', [
    ({'from': '2026-13-01'}, 'invalid_time'),
    ({'to': 'yesterday'}, 'invalid_time'),
    ({'from': '2026-03-02T25:00'}, 'invalid_time'),
    ({'from': '2026-03-02T10:00+08:00'}, 'invalid_time'),
    ({'from': '2026-03-03', 'to': '2026-03-02'}, 'invalid_time'),
    ({'from': '2026-03-02T10:00', 'to': '2026-03-02T10:00'}, 'invalid_time'),
    ({'limit': '0'}, 'invalid_limit'),
    ({'limit': '201'}, 'invalid_limit'),
    ({'limit': 'ten'}, 'invalid_limit'),
    ({'limit': '-1'}, 'invalid_limit'),
    ({'offset': '100001'}, 'invalid_limit'),
    ({'actor': 'a' * 129}, 'filter_too_long'),
    ({'target': '账' * 43}, 'filter_too_long'),
    ({'action': 'x' * 5000}, 'bad_query'),     # the query's own limit
    ({'actor': ''}, 'invalid_filter'),
    ({'target': 'a\nb'}, 'invalid_filter'),
    ({'action': 'a\x00b'}, 'bad_query'),      # no NUL in any query
])
def test_bad_input_is_refused_by_name(vstack, query, code):
    assert_error(audit(vstack, **query), 400, code)


def test_limits_at_their_edges_are_accepted(vstack, day):
    assert len(ok(vstack, limit=200)['rows']) == 200
    assert ok(vstack, offset=100000)['rows'] == []
    assert ok(vstack, actor='a' * 128)['total'] == 0


def test_only_admins_see_it(vstack, day):
    r = requests.get(vstack.base + '/api/v1/audit', timeout=30)
    assert_error(r, 401, 'unauthorized')
    token = json.loads(subprocess.run(
        [wxkf_bin(), 'agent', 'add', '-c', vstack.conf, '--account',
         'au1@audit', '--nick', 'au1'], capture_output=True, text=True,
        timeout=60, check=True).stdout)['token']
    r = requests.get(vstack.base + '/api/v1/audit', timeout=30,
                     headers={'Authorization': 'Bearer ' + token})
    assert_error(r, 403, 'forbidden')


# --- retention --------------------------------------------------------------

def test_keep_days_is_checked(vstack):
    env = dict(os.environ, WXKF_AUDIT_KEEP_DAYS='-1')
    r = subprocess.run([wxkf_bin(), 'config', '-c', vstack.conf], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert 'audit.keep_days must be an integer in 0..36500' in r.stderr
    env['WXKF_AUDIT_KEEP_DAYS'] = '0'
    r = subprocess.run([wxkf_bin(), 'config', '-c', vstack.conf], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and 'audit.keep_days = 0' in r.stdout


def count(stack, app, actor):
    return sql(stack, "SELECT count(*) FROM audit_log WHERE app_id = %s AND"
               " actor = %s", (app, actor))[0][0]


def test_jobs_delete_this_accounts_old_rows_in_bounded_batches(vstack):
    """12,000 rows 31 days old go under keep_days = 30: 10,000 in the
    first round (10 statements of 1,000), the rest a second later; rows
    29 days old stay, and so do another account's, however old."""
    sql(vstack, "INSERT INTO audit_log (app_id, at, actor, action) SELECT"
        " %s, now() - interval '31 days' - i * interval '1 second', 'old',"
        " 'label.create' FROM generate_series(1, 12000) i", (APP_ID,))
    sql(vstack, "INSERT INTO audit_log (app_id, at, actor, action) SELECT"
        " %s, now() - interval '29 days', 'young', 'label.create'"
        " FROM generate_series(1, 5)", (APP_ID,))
    sql(vstack, "INSERT INTO audit_log (app_id, at, actor, action) SELECT"
        " %s, now() - interval '400 days', 'old', 'label.create'"
        " FROM generate_series(1, 3)", (OTHER,))
    with open(vstack.log_file, encoding='utf-8') as f:
        f.seek(0, os.SEEK_END)
        mark = f.tell()
    env = dict(os.environ, WXKF_AUDIT_KEEP_DAYS='30')
    env.pop('WXKF_BIN', None)
    env.pop('WXKF_CONF', None)
    jobs = subprocess.Popen([wxkf_bin(), 'jobs', '-c', vstack.conf],
                            stdin=subprocess.DEVNULL, env=env)
    try:
        wait_until(lambda: count(vstack, APP_ID, 'old') == 0, 60, 0.2,
                   'the old rows to go')
    finally:
        jobs.send_signal(signal.SIGTERM)
        jobs.wait(30)
    assert count(vstack, APP_ID, 'young') == 5
    assert count(vstack, OTHER, 'old') == 3
    with open(vstack.log_file, encoding='utf-8') as f:
        f.seek(mark)
        log = f.read()
    purged = [ln for ln in log.splitlines()
              if 'pid=%d ' % jobs.pid in ln and 'ev=audit_purged' in ln]
    assert [ln.split('deleted=')[1].split()[0] for ln in purged] == \
        ['10000', '2000'], purged
    assert 'keep_days=30' in purged[0]
