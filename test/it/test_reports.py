"""Reports (docs/reports.md, docs/api.md): the daily roll-ups `wxkf report
rebuild` and `wxkf jobs` build from the archive, checked against a
reference computed here in Python from the same rows; a rebuild gives
identical rows; the REST reads, the CSV (BOM, Chinese intact) and XLSX
(read back with openpyxl) exports, the conversation export, and who may
call them. One generated day of archived rows in the archiver's shape,
and real traffic through the stack (callbacks, an agent's close with
labels, the archiver, `wxkf jobs`' own build of today)."""

import csv
import datetime as dt
import io
import json
import random
import subprocess

import pytest
import requests

from conftest import assert_error, run_stack, wait_until, wxkf_bin
from test_archive import db, query, wait_archived
from test_routing import Agent, add_agent

DAY = dt.date(2026, 3, 2)           # a Monday
OFF = dt.timedelta(minutes=480)     # [api] stats_utc_offset's default
UTC = dt.timezone.utc
NICK = '张三'
COLS = ('sessions', 'msgs_in', 'msgs_out', 'frt_median_s', 'frt_p90_s',
        'handled', 'handle_ms', 'transfers', 'queued', 'wait_median_s',
        'wait_p90_s', 'abandoned', 'after_hours', 'agents', 'labels')


@pytest.fixture(scope='module')
def rstack():
    yield from run_stack('reports')


def admin(stack):
    return {'Authorization': 'Bearer ' + stack.admin_token}


def local_midnight(day):
    return dt.datetime(day.year, day.month, day.day, tzinfo=UTC) - OFF


def pct(values, p):
    """PostgreSQL's percentile_cont: linear between the closest ranks."""
    if not values:
        return None
    v = sorted(values)
    x = p * (len(v) - 1)
    lo = int(x)
    hi = min(lo + 1, len(v) - 1)
    return (v[lo] + (v[hi] - v[lo]) * (x - lo)) / 1000.0


def generate(seed=18):
    """Sessions, messages and transfers of DAY (and its edges) in the
    shape the archiver writes them (docs/history.md)."""
    rnd = random.Random(seed)
    t0 = local_midnight(DAY)
    sessions, messages, transfers = [], [], []
    for i in range(60):
        sid = 9000000 + i
        agent = rnd.choice(['rep_a', 'rep_a', 'rep_b', None])
        grp = rnd.choice(['售后', '售前', None])
        opened = t0 + dt.timedelta(seconds=rnd.randint(6 * 3600, 22 * 3600))
        if i == 0:      # opened the day before, closed on DAY
            opened = t0 - dt.timedelta(seconds=1800)
        queued = agent is None or rnd.random() < 0.4
        wait = rnd.randint(5, 600) if queued else 0
        openid = 'oRep%024d' % i
        if agent is None:
            assigned, closed = None, opened + dt.timedelta(seconds=wait)
        else:
            assigned = opened + dt.timedelta(seconds=wait)
            closed = assigned + dt.timedelta(seconds=rnd.randint(60, 3000))
        if i == 1:      # opened on DAY, closed the day after
            opened = t0 + dt.timedelta(hours=23, minutes=50)
            assigned = opened if agent else None
            closed = opened + dt.timedelta(hours=1)
        labels = None
        if agent and rnd.random() < 0.6:
            labels = rnd.sample(['退款', '投诉', '咨询'], rnd.randint(1, 2))
        sessions.append(dict(id=sid, openid=openid, agent=agent, grp=grp,
                             opened_at=opened, assigned_at=assigned,
                             closed_at=closed, labels=labels))
        n = 0
        for k in range(rnd.randint(1, 4)):
            n += 1
            at = opened + dt.timedelta(seconds=k * 7)
            messages.append(dict(event_id='%d-%d' % (sid, n), session_id=sid,
                                 openid=openid, agent=agent if assigned and
                                 at >= assigned else None, direction='i',
                                 by=None, created_at=at, content='你好 %d' % k))
        if assigned:
            n += 1
            messages.append(dict(event_id='%d-%d' % (sid, n), session_id=sid,
                                 openid=openid, agent=agent, direction='o',
                                 by='wxkf', created_at=assigned,
                                 content='您好，我是客服'))
            if rnd.random() < 0.85:
                for k in range(rnd.randint(1, 3)):
                    n += 1
                    at = assigned + dt.timedelta(
                        seconds=rnd.randint(3, 300) + 400 * k)
                    messages.append(dict(
                        event_id='%d-%d' % (sid, n), session_id=sid,
                        openid=openid, agent=agent, direction='o', by=agent,
                        created_at=at, content='请稍等'))
            if rnd.random() < 0.3:
                transfers.append(dict(
                    event_id='t%d' % sid, session_id=sid, openid=openid,
                    to_agent=agent, grp=grp, kind='transfer',
                    at=assigned + dt.timedelta(seconds=10)))
            if rnd.random() < 0.1:
                transfers.append(dict(
                    event_id='r%d' % sid, session_id=sid, openid=openid,
                    to_agent=agent, grp=grp, kind='reassign',
                    at=assigned + dt.timedelta(seconds=20)))
    return sessions, messages, transfers


def insert(stack, sessions, messages, transfers):
    conn = db(stack)
    try:
        with conn.cursor() as cur:
            for s in sessions:
                cur.execute(
                    'INSERT INTO sessions (id, openid, agent, grp, opened_at,'
                    ' assigned_at, closed_at, close_reason, labels) VALUES'
                    ' (%s, %s, %s, %s, %s, %s, %s, %s, %s)',
                    (s['id'], s['openid'], s['agent'], s['grp'],
                     s['opened_at'], s['assigned_at'], s['closed_at'],
                     'agent' if s['agent'] else 'queue_timeout',
                     s['labels']))
            for m in messages:
                payload = {'content': m['content']}
                if m['by']:
                    payload['by'] = m['by']
                cur.execute(
                    'INSERT INTO messages (event_id, session_id, openid,'
                    ' agent, direction, msgtype, content, payload,'
                    ' created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s,'
                    ' %s)', (m['event_id'], m['session_id'], m['openid'],
                             m['agent'], m['direction'], 'text',
                             m['content'], json.dumps(payload),
                             m['created_at']))
            for t in transfers:
                cur.execute(
                    'INSERT INTO transfers (event_id, session_id, openid,'
                    ' to_agent, grp, kind, at) VALUES (%s, %s, %s, %s, %s,'
                    ' %s, %s)', (t['event_id'], t['session_id'],
                                 t['openid'], t['to_agent'], t['grp'],
                                 t['kind'], t['at']))
    finally:
        conn.close()


def reference(sessions, messages, transfers, day=DAY):
    """{(kind, dim): {column: value}} by the definitions of
    docs/reports.md, computed without PostgreSQL."""
    lo = local_midnight(day)
    hi = lo + dt.timedelta(days=1)
    inday = lambda t: t is not None and lo <= t < hi     # noqa: E731
    hour = lambda t: '%02d' % (t + OFF).hour               # noqa: E731
    grp_of = {s['id']: s['grp'] or '' for s in sessions}
    acc = {}

    def row(kind, dim):
        return acc.setdefault((kind, dim), dict(
            sessions=0, msgs_in=0, msgs_out=0, frt=[], handled=0,
            handle_ms=0, transfers=0, queued=0, wait=[], abandoned=0,
            after_hours=0, agents=set(), labels={}))

    for s in sessions:
        closed_in, opened_in = inday(s['closed_at']), inday(s['opened_at'])
        if not (closed_in or opened_in):
            continue
        dims = []
        if closed_in and s['agent']:
            dims.append(('agent', s['agent']))
        if closed_in:
            dims.append(('group', s['grp'] or ''))
        if opened_in:
            dims.append(('hour', hour(s['opened_at'])))
        a = s['assigned_at']
        replies = [m['created_at'] for m in messages
                   if m['session_id'] == s['id'] and m['direction'] == 'o'
                   and m['by'] != 'wxkf' and a and m['created_at'] >= a]
        queued = a is None or a > s['opened_at']
        for d in dims:
            r = row(*d)
            r['sessions'] += 1
            if replies:
                r['frt'].append((min(replies) - a).total_seconds() * 1000)
            if a and s['closed_at']:
                r['handled'] += 1
                r['handle_ms'] += int((s['closed_at'] - a).total_seconds()
                                      * 1000)
            if queued:
                r['queued'] += 1
                if a:
                    r['wait'].append((a - s['opened_at']).total_seconds()
                                     * 1000)
            if a is None and s['closed_at']:
                r['abandoned'] += 1
            for lb in s['labels'] or []:
                r['labels'][lb] = r['labels'].get(lb, 0) + 1
    for m in messages:
        if not inday(m['created_at']) or m['by'] == 'wxkf':
            continue
        lt = m['created_at'] + OFF
        after = m['direction'] == 'i' and not (
            lt.isoweekday() <= 5 and 9 <= lt.hour < 18)
        dims = [('group', grp_of.get(m['session_id'], '')),
                ('hour', hour(m['created_at']))]
        if m['agent']:
            dims.append(('agent', m['agent']))
        for d in dims:
            r = row(*d)
            r['msgs_in' if m['direction'] == 'i' else 'msgs_out'] += 1
            r['after_hours'] += after
            if m['direction'] == 'o':
                r['agents'].add(m['agent'])
    for t in transfers:
        if t['kind'] != 'transfer' or not inday(t['at']):
            continue
        for d in (('agent', t['to_agent']), ('group', t['grp'] or ''),
                  ('hour', hour(t['at']))):
            row(*d)['transfers'] += 1
    out = {}
    for k, r in acc.items():
        out[k] = dict(
            sessions=r['sessions'], msgs_in=r['msgs_in'],
            msgs_out=r['msgs_out'], frt_median_s=pct(r['frt'], 0.5),
            frt_p90_s=pct(r['frt'], 0.9), handled=r['handled'],
            handle_ms=r['handle_ms'], transfers=r['transfers'],
            queued=r['queued'], wait_median_s=pct(r['wait'], 0.5),
            wait_p90_s=pct(r['wait'], 0.9), abandoned=r['abandoned'],
            after_hours=r['after_hours'], agents=len(r['agents']),
            labels=r['labels'])
    return out


def rebuild(stack, day, to=None):
    cmd = [wxkf_bin(), 'report', 'rebuild', '-c', stack.conf, '--day',
           day.isoformat()]
    if to:
        cmd += ['--to', to.isoformat()]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def rows(stack, day=DAY):
    got = query(stack, 'SELECT kind, dim, ' + ', '.join(COLS) +
                ' FROM report_days WHERE app_id = %s AND day = %s'
                ' ORDER BY kind, dim', (stack.app_id, day))
    return {(r[0], r[1]): dict(zip(COLS, r[2:])) for r in got}


@pytest.fixture(scope='module')
def day(rstack):
    """DAY generated and inserted, then built by the command."""
    s, m, t = generate()
    insert(rstack, s, m, t)
    add_agent(rstack, 'rep_a', nick=NICK)
    add_agent(rstack, 'rep_b', nick='李四')
    out = rebuild(rstack, DAY)
    assert DAY.isoformat() in out
    return reference(s, m, t)


def close_enough(a, b):
    if a is None or b is None:
        return a is b
    return abs(float(a) - float(b)) < 1e-6


def test_a_day_matches_the_reference_computed_in_python(rstack, day):
    got = rows(rstack)
    assert set(got) == set(day)
    for k, want in day.items():
        for c in COLS:
            if c.endswith('_s'):
                assert close_enough(got[k][c], want[c]), (k, c, got[k][c],
                                                          want[c])
            else:
                assert got[k][c] == want[c], (k, c, got[k][c], want[c])
    # the generated day has all of it: queues, abandonments, transfers,
    # after-hours messages, labels, sessions of two days
    tot = day[('agent', 'rep_a')]
    assert tot['transfers'] and tot['labels'] and tot['frt_median_s']
    g = sum(v['abandoned'] for k, v in day.items() if k[0] == 'group')
    assert g > 0
    assert sum(v['after_hours'] for k, v in day.items()
               if k[0] == 'hour') > 0


def test_a_rebuild_gives_identical_rows(rstack, day):
    sql = ('SELECT * FROM report_days WHERE app_id = %s AND day = %s'
           ' ORDER BY kind, dim')
    before = [r[:-1] for r in query(rstack, sql, (rstack.app_id, DAY))]
    rebuild(rstack, DAY - dt.timedelta(days=1), DAY)
    after = [r[:-1] for r in query(rstack, sql, (rstack.app_id, DAY))]
    assert before == after and len(before) == len(day)


def get(stack, path, params, headers=None):
    return requests.get(stack.base + path, params=params,
                        headers=admin(stack) if headers is None else headers,
                        timeout=30)


def test_the_api_sums_and_ranks_the_days(rstack, day):
    r = get(rstack, '/api/v1/reports',
            {'from': DAY.isoformat(), 'to': DAY.isoformat(), 'by': 'agent'})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body['by'] == 'agent' and body['from'] == DAY.isoformat()
    by = {x['key']: x for x in body['rows']}
    assert set(by) == {'rep_a', 'rep_b'}
    assert by['rep_a']['name'] == NICK
    for acct in by:
        want = day[('agent', acct)]
        for c in ('sessions', 'msgs_in', 'msgs_out', 'transfers', 'queued',
                  'after_hours', 'labels'):
            assert by[acct][c] == want[c], (acct, c)
        assert abs(by[acct]['frt_median_s'] - want['frt_median_s']) <= 0.051
        assert abs(by[acct]['handle_avg_s'] -
                   want['handle_ms'] / want['handled'] / 1000) <= 0.051
    assert body['total']['sessions'] == sum(x['sessions']
                                            for x in body['rows'])
    r = get(rstack, '/api/v1/reports',
            {'from': DAY.isoformat(), 'to': DAY.isoformat(), 'by': 'group'})
    groups = {x['key']: x for x in r.json()['rows']}
    assert set(groups) == {'售后', '售前', ''}
    assert sum(g['abandoned'] for g in groups.values()) == sum(
        v['abandoned'] for k, v in day.items() if k[0] == 'group')
    r = get(rstack, '/api/v1/reports', {'from': DAY.isoformat(),
                                        'to': DAY.isoformat(), 'by': 'hour'})
    assert {x['key'] for x in r.json()['rows']} == {
        k[1] for k in day if k[0] == 'hour'}


def test_csv_export_keeps_chinese_and_opens_in_excel(rstack, day):
    r = get(rstack, '/api/v1/reports/export',
            {'from': DAY.isoformat(), 'to': DAY.isoformat(), 'by': 'group',
             'format': 'csv'})
    assert r.status_code == 200, r.text
    assert r.headers['Content-Type'].startswith('text/csv')
    assert 'attachment' in r.headers['Content-Disposition']
    assert r.content.startswith(b'\xef\xbb\xbf')
    recs = list(csv.DictReader(io.StringIO(r.content.decode('utf-8-sig'))))
    by = {x['key']: x for x in recs}
    assert {'售后', '售前', 'total'} <= set(by)
    assert int(by['售后']['sessions']) == day[('group', '售后')]['sessions']
    labels = day[('group', '售后')]['labels']
    for name, n in labels.items():
        assert '%s:%d' % (name, n) in by['售后']['labels']


def test_xlsx_export_reads_back(rstack, day):
    import openpyxl  # python3-openpyxl, installed by scripts/deps.sh
    r = get(rstack, '/api/v1/reports/export',
            {'from': DAY.isoformat(), 'to': DAY.isoformat(), 'by': 'agent',
             'format': 'xlsx'})
    assert r.status_code == 200, r.text
    assert 'spreadsheetml' in r.headers['Content-Type']
    wb = openpyxl.load_workbook(io.BytesIO(r.content))
    ws = wb.active
    table = [list(x) for x in ws.iter_rows(values_only=True)]
    head = table[0]
    recs = {x[0]: dict(zip(head, x)) for x in table[1:]}
    assert recs['rep_a']['name'] == NICK
    assert recs['rep_a']['sessions'] == day[('agent', 'rep_a')]['sessions']
    assert recs['total']['sessions'] == (day[('agent', 'rep_a')]['sessions']
                                         + day[('agent', 'rep_b')]['sessions'])


@pytest.mark.parametrize('params,status,code', [
    ({'from': '2026-03-02'}, 400, 'invalid_range'),
    ({'from': '2026-02-30', 'to': '2026-03-02'}, 400, 'invalid_range'),
    ({'from': '2026-03-03', 'to': '2026-03-02'}, 400, 'invalid_range'),
    ({'from': "2026-03-02' OR 1=1", 'to': '2026-03-02'}, 400,
     'invalid_range'),
    ({'from': '2025-01-01', 'to': '2026-03-02'}, 400, 'range_too_long'),
    ({'from': '2026-03-02', 'to': '2026-03-02', 'by': 'x'}, 400,
     'invalid_field'),
])
def test_bad_queries_are_refused(rstack, params, status, code):
    assert_error(get(rstack, '/api/v1/reports', params), status, code)


def test_without_dates_the_accounts_last_week_by_its_own_day(rstack):
    """No from and to: the account's last 7 days by [api]
    stats_utc_offset (+8 h), which the console opens with — not the
    browser's or UTC's day (between 16:00 and 24:00 UTC they differ)."""
    for _ in range(2):      # a day could turn between the two clocks read
        before = (dt.datetime.now(dt.timezone.utc) + OFF).date()
        r = get(rstack, '/api/v1/reports', {'by': 'day'})
        after = (dt.datetime.now(dt.timezone.utc) + OFF).date()
        if before == after:
            break
    assert r.status_code == 200, r.text
    body = r.json()
    assert body['to'] == after.isoformat(), body
    assert body['from'] == (after - dt.timedelta(days=6)).isoformat(), body


def test_366_days_are_allowed(rstack, day):
    r = get(rstack, '/api/v1/reports', {'from': '2025-03-02',
                                        'to': '2026-03-02', 'by': 'day'})
    assert r.status_code == 200, r.text
    keys = [x['key'] for x in r.json()['rows']]
    assert DAY.isoformat() in keys and keys == sorted(keys)
    assert all('2025-03-02' <= k <= '2026-03-02' for k in keys)


def test_conversation_export(rstack, day):
    o = 'oRep%024d' % 5
    r = get(rstack, '/api/v1/history/export', {'openid': o,
                                               'format': 'csv'})
    assert r.status_code == 200, r.text
    assert r.content.startswith(b'\xef\xbb\xbf')
    recs = list(csv.DictReader(io.StringIO(r.content.decode('utf-8-sig'))))
    assert recs and all(x['openid'] == o for x in recs)
    assert recs[0]['content'] == '你好 0' and recs[0]['direction'] == 'in'
    assert recs[0]['at'].endswith('+08:00')
    r = get(rstack, '/api/v1/history/export', {
        'from': DAY.isoformat(), 'to': DAY.isoformat(), 'format': 'json'})
    assert r.status_code == 200, r.text
    days = r.json()
    assert days and all(x['at'].startswith(DAY.isoformat()) for x in days)
    assert_error(get(rstack, '/api/v1/history/export', {'format': 'csv'}),
                 400, 'invalid_field')
    assert_error(get(rstack, '/api/v1/history/export',
                     {'openid': 'bad id!', 'format': 'csv'}),
                 400, 'invalid_field')


def test_only_admins_read_reports(rstack, day):
    tok = add_agent(rstack, 'rep_c')
    q = {'from': DAY.isoformat(), 'to': DAY.isoformat()}
    for path in ('/api/v1/reports', '/api/v1/reports/export',
                 '/api/v1/history/export'):
        assert_error(get(rstack, path, q, {}), 401)
        assert_error(get(rstack, path, q,
                         {'Authorization': 'Bearer ' + tok}), 403,
                     'forbidden')


def test_real_traffic_is_built_by_jobs(rstack, day):
    """Callbacks → an agent's session closed with labels → the archiver
    → today's rows (`wxkf report rebuild`; `wxkf jobs` builds today and
    yesterday at its start and every refresh_minutes: its log says so)."""
    a = Agent(rstack, 'rep_live', add_agent(rstack, 'rep_live',
                                            nick='王五'))
    r = requests.post(rstack.base + '/api/v1/labels', headers=admin(rstack),
                      json={'name': '退款', 'color': '#336699'}, timeout=10)
    assert r.status_code == 201, r.text
    refund = r.json()['id']
    a.status('online')
    users = [rstack.user() for _ in range(3)]
    for u in users:
        assert u.send_text('我要退款').status_code == 200
    wait_until(lambda: len(a.sessions()) == 3, 15, what='3 sessions')
    for u in users[:2]:
        r = a.post('/api/v1/sessions/%s/close' % u.openid,
                   {'summary': '已处理', 'labels': [refund]})
        assert r.status_code == 200, r.text
    wait_archived(rstack, 30)
    today = (dt.datetime.now(UTC) + OFF).date()
    rebuild(rstack, today)
    got = rows(rstack, today)[('agent', 'rep_live')]
    assert got['sessions'] == 2 and got['msgs_in'] == 3
    assert got['labels'] == {'退款': 2}
    r = get(rstack, '/api/v1/reports', {'from': today.isoformat(),
                                        'to': today.isoformat()})
    live = [x for x in r.json()['rows'] if x['key'] == 'rep_live'][0]
    assert live['name'] == '王五' and live['sessions'] == 2
    with open(rstack.log_file, encoding='utf-8') as f:
        log = f.read()
    assert 'mod=jobs ev=report days=2' in log
    assert 'ev=report_failed' not in log
