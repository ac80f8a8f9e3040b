"""The archiver (`wxkf jobs`, lib/archive.c) against the real stack: every
acknowledged callback ends up in PostgreSQL's `messages` exactly once, byte
for byte, through a PostgreSQL restart, a `wxkf jobs` killed with SIGKILL
mid-batch and two archivers at once (docs/history.md).

The drain-rate benchmark runs only under `make bench` (WXKF_BENCH=1; use the
release build: WXKF_BIN=build/rel/wxkf)."""

import concurrent.futures
import itertools
import os
import re
import signal
import subprocess
import threading
import time

import psycopg2
import pytest

from conftest import run_stack, wait_until, wxkf_bin
import wxkf_checks as checks

ARCHIVER = 'archiver'
CLAIM_IDLE_MS = 2000
_msgids = itertools.count(int(time.time() * 1000) % 10 ** 12 * 1000)
_msgid_lock = threading.Lock()


def next_msgid():
    with _msgid_lock:
        return str(next(_msgids))


@pytest.fixture(scope='module')
def astack():
    # keep_ms = 0: the stream is trimmed as soon as every group has an
    # entry, so the tests also see that trimming loses nothing.
    yield from run_stack('archive', workers=4, extra={
        'archiver': {'keep_ms': '0', 'claim_idle_ms': str(CLAIM_IDLE_MS)},
        'media': {'fetch': '0'},
    })


# --- helpers -----------------------------------------------------------------

def db(stack):
    conn = psycopg2.connect(host='127.0.0.1', port=stack.pg_port,
                            dbname='wxkf', user='wxkf', connect_timeout=5)
    conn.autocommit = True
    return conn


def query(stack, sql, args=None):
    conn = db(stack)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()


def lag(stack):
    """(pending, undelivered) of the archiver group; None if it has none."""
    for g in stack.redis.xinfo_groups(stack.stream):
        if g['name'] == ARCHIVER:
            # Redis's own `lag` can be off after a restart: is there an
            # entry after the last delivered one?
            if not stack.redis.xrange(stack.stream,
                                      '(' + g['last-delivered-id'], '+',
                                      count=1):
                return g['pending'], 0
            return g['pending'], max(1, min(g.get('lag') or 1,
                                            stack.xlen()))
    return None


def wait_archived(stack, timeout):
    """Waits until nothing is left to archive; returns the seconds it took."""
    t0 = time.monotonic()
    wait_until(lambda: lag(stack) == (0, 0), timeout, 0.05,
               'the archiver to catch up (lag %r)' % (lag(stack),))
    return time.monotonic() - t0


def send_texts(stack, texts, users=8):
    """Sends each text as a callback (users in turn); returns
    {msgid: text} of the acknowledged ones (200 'success')."""
    us = [stack.user() for _ in range(users)]
    out = {}
    for i, t in enumerate(texts):
        mid = next_msgid()
        r = us[i % users].send_text(t, msgid=mid)
        assert r.status_code == 200 and r.text == 'success', \
            (r.status_code, r.text[:200])
        out[mid] = t
    return out


class Load:
    """n callbacks from `threads` threads in the background; `acked` holds
    the msgids answered 200 'success', `sent` how many were tried."""

    def __init__(self, stack, n, threads=8, users=40):
        self.stack, self.n, self.threads = stack, n, threads
        self.users = [stack.user() for _ in range(users)]
        self.acked, self.failed = [], []
        self.sent = 0
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)

    def _one(self, i):
        mid = next_msgid()
        u = self.users[i % len(self.users)]
        try:
            r = u.send_text('load %d %s' % (i, mid), msgid=mid)
            ok = r.status_code == 200 and r.text == 'success'
        except Exception:       # noqa: BLE001 - counted, not acknowledged
            ok = False
        with self.lock:
            self.sent += 1
            (self.acked if ok else self.failed).append(mid)

    def _run(self):
        try:
            with concurrent.futures.ThreadPoolExecutor(self.threads) as ex:
                list(ex.map(self._one, range(self.n)))
        finally:
            self.done.set()

    def start(self):
        self.t.start()
        return self

    def wait_sent(self, k, timeout=60):
        wait_until(lambda: self.sent >= k or self.done.is_set(), timeout,
                   0.02, '%d callbacks sent' % k)

    def join(self, timeout=300):
        assert self.done.wait(timeout), 'load did not finish'
        self.t.join(5)


def assert_each_once(stack, msgids):
    """Every msgid has exactly one inbound row."""
    checks.assert_each_once(lambda sql, args: query(stack, sql, args),
                            msgids)


def assert_no_duplicates(stack):
    dup = query(stack, "SELECT msgid, count(*) FROM messages WHERE"
                " direction = 'i' AND msgid IS NOT NULL GROUP BY msgid"
                " HAVING count(*) > 1 LIMIT 10")
    assert not dup, dup
    n, distinct = query(stack, "SELECT count(*), count(DISTINCT event_id)"
                        " FROM messages")[0]
    assert n == distinct, (n, distinct)


def jobs_pid(stack):
    with open(os.path.join(stack.dir, 'run', 'jobs.pid')) as f:
        return int(f.read().strip())


def alive(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def stack_start(stack):
    """scripts/stack.sh start: idempotent, (re)starts what is down."""
    r = stack.script('start', 180)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-2000:])


def pg_ctl(stack, *args):
    pg = os.path.join(stack.dir, 'pg')
    cmd = ['/usr/lib/postgresql/15/bin/pg_ctl', '-D',
           os.path.join(pg, 'data')] + list(args)
    if os.getuid() == 0:
        cmd = ['runuser', '-u', 'postgres', '--'] + cmd
    r = subprocess.run(cmd, cwd=pg, capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, (r.stdout, r.stderr)


def jobs_log(stack):
    with open(os.path.join(stack.dir, 'logs', 'wxkf.log'),
              encoding='utf-8', errors='replace') as f:
        return f.read()


# --- tests -------------------------------------------------------------------

def test_callbacks_become_rows(astack):
    texts = ['hello %d 你好' % i for i in range(60)]
    sent = send_texts(astack, texts)
    took = wait_archived(astack, 30)
    rows = query(astack, "SELECT msgid, content, openid, msgtype, payload,"
                 " session_id, created_at FROM messages WHERE msgid = ANY(%s)",
                 (list(sent),))
    assert len(rows) == len(sent)
    for msgid, content, openid, msgtype, payload, session, at in rows:
        assert content == sent[msgid]
        assert openid.startswith('oIT') and msgtype == 'text'
        assert payload['MsgId'] == msgid and payload['Content'] == content
        assert session is not None and at is not None
    # Nobody is online: each user waits in a queue, and has a session.
    openids = {r[2] for r in rows}
    n = query(astack, "SELECT count(*) FROM sessions WHERE openid = ANY(%s)",
              (list(openids),))[0][0]
    assert n == len(openids)
    # keep_ms = 0 and no other group behind: the stream is trimmed.
    wait_until(lambda: astack.xlen() == 0, 5, 0.1, 'the stream trimmed')
    print('\n%d callbacks archived %.2f s after the last one' % (len(sent),
                                                                 took))


def test_a_media_group_left_by_fetch_1_does_not_stop_trimming(astack):
    """[media] fetch was 1 once (its `media` group stayed on the stream at
    the id it had read), now it is 0: `wxkf jobs` drops the group, and the
    stream is trimmed again after the callbacks are archived."""
    astack.redis.xgroup_create(astack.stream, 'media', id='0',
                               mkstream=True)
    sent = send_texts(astack, ['media off %d' % i for i in range(30)])
    wait_archived(astack, 30)
    wait_until(lambda: astack.xlen() == 0, 10, 0.1, 'the stream trimmed')
    assert 'media' not in [g['name'] for g in
                           astack.redis.xinfo_groups(astack.stream)]
    assert len(sent) == 30


def test_hostile_content_is_stored_byte_for_byte(astack):
    binaryish = ''.join(chr(c) for c in range(0x80, 0x100)) + \
        '\\x00\\xff \\N \\. \\\\ \t\t' + '\ufffd\ue000\U0010fffd'
    texts = [
        "O'Brien said \"hi\"; it's '' quoted",
        "'; DROP TABLE messages; -- ",
        "Robert'); DELETE FROM sessions WHERE ('1'='1",
        '4-byte emoji 😀🏳️‍🌈👨‍👩‍👧‍👦 𝄞 𠀋 and 中文',
        binaryish,
        'tab\tnew\nline ]]> <xml>&amp; %s %d $1 \\',
        ('长文本 long text 😀 \'";' * 800)[:20 * 1024],
    ]
    assert len(texts[-1]) >= 10000 and len(texts[-1].encode()) > 20000
    sent = send_texts(astack, texts, users=3)
    wait_archived(astack, 30)
    rows = query(astack, "SELECT msgid, convert_to(content, 'UTF8'),"
                 " payload->>'Content' FROM messages WHERE msgid = ANY(%s)",
                 (list(sent),))
    assert len(rows) == len(texts)
    for msgid, raw, in_payload in rows:
        assert bytes(raw) == sent[msgid].encode('utf-8'), msgid
        assert in_payload == sent[msgid]
    assert query(astack, "SELECT count(*) FROM archive_rejects")[0][0] == 0
    assert query(astack, "SELECT to_regclass('messages') IS NOT NULL")[0][0]


def test_postgres_restart_during_a_load_loses_and_doubles_nothing(astack):
    load = Load(astack, 2000).start()
    load.wait_sent(400)
    pg_ctl(astack, '-m', 'fast', '-w', '-t', '30', 'stop')
    try:
        load.wait_sent(900)
        time.sleep(1.5)            # the archiver finds PostgreSQL gone
        down_lag = lag(astack)
    finally:
        stack_start(astack)       # starts PostgreSQL again (and no more)
    load.join()
    assert not load.failed, '%d callbacks failed' % len(load.failed)
    took = wait_archived(astack, 90)
    assert_each_once(astack, load.acked)
    assert_no_duplicates(astack)
    assert 'ev=archive_failed' in jobs_log(astack)
    print('\nPostgreSQL restarted mid-load: %d callbacks, lag while down %r,'
          ' caught up %.2f s after the load' % (len(load.acked), down_lag,
                                                took))


def test_jobs_killed_mid_batch_its_entries_are_claimed(astack):
    pid = jobs_pid(astack)
    load = Load(astack, 2500).start()

    def frozen_mid_batch():
        # Stopped while it holds a batch it has read and not acknowledged.
        os.kill(pid, signal.SIGSTOP)
        for c in astack.redis.xinfo_consumers(astack.stream, ARCHIVER):
            if c['name'].endswith(':%d' % pid) and c['pending'] > 0:
                return c
        os.kill(pid, signal.SIGCONT)
        return None
    load.wait_sent(300)
    victim = wait_until(frozen_mid_batch, 60, 0.01, 'a batch in flight')
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not alive(pid), 10, 0.05, 'jobs to die')
    left = [c['pending'] for c in astack.redis.xinfo_consumers(
        astack.stream, ARCHIVER) if c['name'] == victim['name']][0]
    assert left > 0
    stack_start(astack)           # a new `wxkf jobs` (another consumer)
    assert jobs_pid(astack) != pid
    load.join()
    assert not load.failed
    took = wait_archived(astack, 90)
    assert_each_once(astack, load.acked)
    assert_no_duplicates(astack)
    dead = [c for c in astack.redis.xinfo_consumers(astack.stream, ARCHIVER)
            if c['name'] == victim['name']]
    assert not dead or dead[0]['pending'] == 0
    # (logged once a second)
    wait_until(lambda: re.search(r'ev=archive written=\d+ claimed=[1-9]',
                                 jobs_log(astack)), 5, 0.1, 'a claim logged')
    print('\njobs killed with %d entries in flight; all %d callbacks'
          ' archived once, %.2f s after the load' % (left, len(load.acked),
                                                     took))


def test_two_archivers_at_once_write_no_duplicates(astack):
    log = os.path.join(astack.dir, 'logs', 'jobs2.log')
    env = dict(os.environ)
    env.pop('WXKF_BIN', None)
    env.pop('WXKF_CONF', None)
    env['WXKF_LOG_FILE'] = log
    with open(log, 'ab') as out:
        second = subprocess.Popen([wxkf_bin(), 'jobs', '-c', astack.conf],
                                  stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=out, env=env)
    try:
        time.sleep(0.5)
        assert second.poll() is None, 'second jobs exited'
        load = Load(astack, 2500, threads=12).start()
        load.join()
        assert not load.failed
        wait_archived(astack, 60)
        time.sleep(1.2)            # both have logged their last second
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(15)
    assert second.returncode == 0
    assert_each_once(astack, load.acked)
    assert_no_duplicates(astack)

    def written(text):
        return sum(int(n) for n in re.findall(r'ev=archive written=(\d+)',
                                              text))
    with open(log, encoding='utf-8', errors='replace') as f:
        by_second = written(f.read())
    assert by_second > 0, 'the second archiver wrote nothing'
    with open(log, encoding='utf-8', errors='replace') as f:
        text = f.read()
    for marker in ('AddressSanitizer', 'runtime error:'):
        assert marker not in text


def test_lag_returns_to_zero_within_5_s_after_a_load(astack):
    load = Load(astack, 3000, threads=16).start()
    load.join()
    assert not load.failed
    took = wait_archived(astack, 30)
    print('\n3000 callbacks (16 clients): lag 0 %.2f s after the load'
          % took)
    assert took < 5.0
    assert_each_once(astack, load.acked)


FILL_LUA = """
local words = {'你好', '请问', '订单', '发货', 'hello', 'refund', '多久',
               '能到', 'price', '谢谢', '客服', 'when', 'address', '退款',
               '怎么', 'shipping'}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n, s = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = s, s + n - 1 do
    local w = {}
    for j = 1, 3 + (i % 7) do
        w[#w + 1] = words[((i * 7 + j * 13) % #words) + 1]
    end
    local content = table.concat(w, ' ') .. ' #' .. i
    local o = string.format('oBENCH%022d', i % 5000)
    local mid = tostring(8000000000000 + i)
    local payload = cjson.encode({ToUserName = 'gh_7c1e9a2b4d6f',
        FromUserName = o, CreateTime = tostring(math.floor(now / 1000)),
        MsgType = 'text', Content = content, MsgId = mid})
    redis.call('XADD', KEYS[1], '*', 'type', 'msg_in', 'key', 'msgid:' .. mid,
               'openid', o, 'msgtype', 'text', 'event', '', 'msgid', mid,
               'create_time', tostring(math.floor(now / 1000)),
               'recv_ms', tostring(now), 'rid', 'bench' .. i,
               'payload', payload, 'decision', 'queued:1', 'agent', '',
               'session', tostring(i % 5000 + 1))
end
return redis.call('XLEN', KEYS[1])
"""


@pytest.mark.bench
def test_drain_rate(astack):
    """WXKF_ARCHIVE_BENCH_N (100,000) msg_in entries put on the stream
    while no archiver runs, then a `wxkf jobs` timed from its start to
    lag 0."""
    n = int(os.environ.get('WXKF_ARCHIVE_BENCH_N', '100000'))
    pid = jobs_pid(astack)
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not alive(pid), 15, 0.05, 'jobs to stop')
    before = query(astack, "SELECT count(*) FROM messages")[0][0]
    for k in range(0, n, 20000):
        astack.redis.eval(FILL_LUA, 1, astack.stream, min(20000, n - k), k)
    env = dict(os.environ)
    env.pop('WXKF_BIN', None)
    env.pop('WXKF_CONF', None)
    t0 = time.monotonic()
    jobs = subprocess.Popen([wxkf_bin(), 'jobs', '-c', astack.conf],
                            stdin=subprocess.DEVNULL, env=env)
    try:
        took = wait_archived(astack, 600)
    finally:
        jobs.send_signal(signal.SIGTERM)
        jobs.wait(15)
    took = time.monotonic() - t0
    after = query(astack, "SELECT count(*) FROM messages")[0][0]
    stack_start(astack)
    assert after - before == n
    print('\ndrained %d entries in %.2f s: %.0f messages/s (from the start'
          ' of `wxkf jobs`; PG_FSYNC=off)' % (n, took, n / took))
