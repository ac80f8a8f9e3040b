"""Fixtures and helpers of the multi-host fail-over suite (test/cluster):
the topology of topology.py, simulated WeChat users posting through the
front nginx from their own namespace, agents, and the checks every test
ends with (each acknowledged callback in PostgreSQL exactly once; every
agent's load equals its active sessions).

Run by `make test-cluster` (as root):
    WXKF_BIN=<abs path of build/san/wxkf> /usr/bin/python3 -m pytest -q -s \\
        test/cluster
WXKF_KEEP_CLUSTER=1 keeps the run's folder (logs, data); it is kept anyway
when a test failed.
"""

import concurrent.futures
import datetime
import itertools
import json
import os
import random
import signal
import string
import sys
import threading
import time

import psycopg2
import pytest
import redis as redis_lib
import requests

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..'))
SIM = os.path.join(REPO, 'test', 'sim')
for p in (HERE, SIM):
    if p not in sys.path:
        sys.path.insert(0, p)

import topology as topo  # noqa: E402
from topology import (ADDR, AES_KEY, APP_HOSTS, APP_ID,  # noqa: E402
                      ORIGINAL_ID, PG_PORT, TOKEN, Cluster, enter_netns,
                      netns, wait_until)
from wxkf_checks import assert_each_once as each_once  # noqa: E402
from wxkf_checks import load_violations  # noqa: E402
from wxuser import WxUser  # noqa: E402

ARCHIVER = 'archiver'
CAPACITY = 40               # per agent; 4 agents: 160 of the users active
AGENTS = ('ca1', 'ca2', 'ca3', 'ca4')
N_USERS = 300

ACTIVE = []                 # clusters, for failure reports

_msgids = itertools.count(int(time.time() * 1000) % 10 ** 12 * 1000 +
                          700000000)
_msgid_lock = threading.Lock()


def next_msgid():
    with _msgid_lock:
        return str(next(_msgids))


def wxkf_bin():
    return os.path.abspath(os.environ.get('WXKF_BIN') or os.path.join(
        REPO, 'build', 'san', 'wxkf'))


def random_openid(prefix='oCL'):
    alphabet = string.ascii_letters + string.digits
    return prefix + ''.join(random.choice(alphabet)
                            for _ in range(28 - len(prefix)))


def session():
    """A requests session that ignores proxy settings of the environment
    (everything here is on the cluster's private subnet)."""
    s = requests.Session()
    s.trust_env = False
    return s


# --- talking to the data host from the client namespace ---------------------

class NsRedis(redis_lib.Redis):
    """A redis-py client whose connections are made inside a network
    namespace (every command enters it, so a reconnect does too)."""

    def __init__(self, ns, **kw):
        super().__init__(**kw)
        self._ns = ns

    def execute_command(self, *args, **kw):
        with netns(self._ns):
            return super().execute_command(*args, **kw)


class Ctl:
    """What the tests use: the cluster plus clients living in its client
    namespace ('cl')."""

    def __init__(self, cluster):
        self.c = cluster
        self.cl_ns = cluster.ns['cl']
        self._redis = {}

    def redis(self, port):
        if port not in self._redis:
            self._redis[port] = NsRedis(self.cl_ns, host=ADDR['data'],
                                        port=port, decode_responses=True,
                                        socket_timeout=5,
                                        socket_connect_timeout=2)
        return self._redis[port]

    def master(self):
        """The Redis the Sentinels name as master now."""
        return self.redis(self.c.master_port())

    def close(self):
        for r in self._redis.values():
            try:
                r.close()
            except Exception:           # noqa: BLE001
                pass
        self._redis = {}

    def query(self, sql, args=None):
        with netns(self.cl_ns):
            conn = psycopg2.connect(host=ADDR['data'], port=PG_PORT,
                                    dbname='wxkf', user='wxkf',
                                    connect_timeout=5)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchall()
        finally:
            conn.close()

    def http(self, method, path, timeout=10, **kw):
        """One request through the front, from the client namespace."""
        with netns(self.cl_ns):
            s = session()
            try:
                return s.request(method, self.c.front_url + path,
                                 timeout=timeout, **kw)
            finally:
                s.close()


# --- agents ------------------------------------------------------------------

class Agent:
    def __init__(self, ctl, account, token):
        self.ctl, self.account, self.token = ctl, account, token
        self.h = {'Authorization': 'Bearer ' + token}

    def post(self, path, body=None):
        return self.ctl.http('POST', path, json=body, headers=self.h)

    def get(self, path):
        return self.ctl.http('GET', path, headers=self.h)

    def status(self, st):
        r = self.post('/api/v1/me/status', {'status': st})
        assert r.status_code == 200, r.text
        return r.json()


def add_agent(ctl, host, account, capacity):
    """`wxkf agent add` on an app host (PostgreSQL + the Redis mirror)."""
    r = ctl.c.wxkf(host, ['agent', 'add'], ['--account', account, '--nick',
                                            account, '--capacity',
                                            str(capacity)])
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)['token']


class Heartbeats:
    """Every agent's heartbeat every `every` s through the front, from a
    thread in the client namespace, while a test runs (bounded by
    max_seconds). Failures are counted, not fatal (they happen while a
    host dies)."""

    def __init__(self, agents, ns, url, every=3.0, max_seconds=300):
        self.agents, self.ns, self.url = agents, ns, url
        self.every, self.max_seconds = every, max_seconds
        self.ok = self.failed = 0
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        enter_netns(self.ns)
        s = session()
        deadline = time.monotonic() + self.max_seconds
        try:
            while not self.stop_ev.is_set() and time.monotonic() < deadline:
                for a in self.agents:
                    try:
                        r = s.post(self.url + '/api/v1/me/heartbeat',
                                   headers=a.h, timeout=5)
                        good = r.status_code == 200
                    except requests.RequestException:
                        good = False
                    if good:
                        self.ok += 1
                    else:
                        self.failed += 1
                self.stop_ev.wait(self.every)
        finally:
            s.close()

    def start(self):
        self.t.start()
        return self

    def stop(self):
        self.stop_ev.set()
        self.t.join(15)


# --- simulated WeChat users --------------------------------------------------

class Load:
    """n text callbacks from `threads` threads of the client namespace to
    the front nginx, optionally paced at `rate` per second, the whole run
    bounded by max_seconds (callbacks not started by then are not sent).
    Any 2xx answer counts as acknowledged (WeChat retries anything else):
    `acked` holds their msgids, `non2xx` (msgid, status or exception)."""

    def __init__(self, ctl, n, users, threads=8, rate=None, max_seconds=180,
                 label='load'):
        self.ctl, self.n, self.users = ctl, n, users
        self.threads, self.rate = threads, rate
        self.max_seconds, self.label = max_seconds, label
        self.acked, self.non2xx = [], []
        self.events = []            # (wall time done, msgid, status, body)
        self.sent = 0
        self.lock = threading.Lock()
        self.tls = threading.local()
        self.done = threading.Event()
        self.t0 = self.t_end = None
        self.t = threading.Thread(target=self._run, daemon=True)

    def _init_thread(self):
        enter_netns(self.ctl.cl_ns)
        self.tls.session = session()

    def _one(self, i):
        if self.rate:
            delay = self.t0 + i / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        if time.monotonic() - self.t0 > self.max_seconds:
            return
        mid = next_msgid()
        u = WxUser(self.ctl.c.callback_url, TOKEN, APP_ID, AES_KEY,
                   original_id=ORIGINAL_ID, openid=self.users[i % len(
                       self.users)], session=self.tls.session)
        status, body = None, ''
        t = time.monotonic()
        try:
            r = u.send_text('%s %d %s' % (self.label, i, mid), msgid=mid)
            status, body = r.status_code, r.text
        except Exception as e:      # noqa: BLE001 - not acknowledged
            status = type(e).__name__
        took = time.monotonic() - t
        with self.lock:
            self.sent += 1
            self.events.append((time.time(), mid, status, body, took))
            if isinstance(status, int) and 200 <= status < 300:
                self.acked.append(mid)
            else:
                self.non2xx.append((mid, status))

    def _run(self):
        try:
            with concurrent.futures.ThreadPoolExecutor(
                    self.threads, initializer=self._init_thread) as ex:
                list(ex.map(self._one, range(self.n)))
        finally:
            self.t_end = time.monotonic()
            self.done.set()

    def start(self):
        self.t0 = time.monotonic()
        self.t.start()
        return self

    def run(self):
        return self.start().join()

    def wait_sent(self, k, timeout=120):
        wait_until(lambda: self.sent >= k or self.done.is_set(), timeout,
                   0.02, '%d callbacks sent' % k)

    def join(self, timeout=None):
        timeout = timeout or self.max_seconds + 60
        assert self.done.wait(timeout), 'load did not finish'
        self.t.join(5)
        return self

    def seconds(self):
        return (self.t_end or time.monotonic()) - self.t0

    def rate_done(self):
        return self.sent / max(self.seconds(), 1e-6)

    @staticmethod
    def kind(body):
        """'success', or 'reply' for a passive text reply (the journal's
        [texts] fallback, a welcome), or 'other'."""
        if body == 'success':
            return 'success'
        if body.startswith('<xml>') and '<MsgType><![CDATA[text]]>' in body:
            return 'reply'
        return 'other'

    def ok_events(self, after=0.0):
        return [e for e in self.events if isinstance(e[2], int) and
                200 <= e[2] < 300 and e[0] >= after]

    def bodies(self):
        out = {}
        for e in self.ok_events():
            k = self.kind(e[3])
            out[k] = out.get(k, 0) + 1
        return out

    def latency(self, after=0.0, before=float('inf')):
        """(p50, p99, max) in s of the answers that came in the window."""
        xs = sorted(e[4] for e in self.events if after <= e[0] < before)
        if not xs:
            return None
        return (round(xs[len(xs) // 2], 3),
                round(xs[min(len(xs) - 1, int(len(xs) * 0.99))], 3),
                round(xs[-1], 3))

    def longest_gap(self, after=0.0):
        """The longest time (s) between consecutive 2xx answers that came
        after wall time `after`, and when it started."""
        ts = sorted(e[0] for e in self.ok_events(after))
        best, at = 0.0, None
        for a, b in zip(ts, ts[1:]):
            if b - a > best:
                best, at = b - a, a
        return best, at


# --- the checks --------------------------------------------------------------

def assert_load_invariant(ctl, default_capacity=5):
    """Every agent's load equals its active sessions and never exceeds its
    capacity. Returns {agent: load}."""
    loads, bad = load_violations(ctl.master(), ctl.c.prefix,
                                 default_capacity)
    assert loads, 'no agents in Redis'
    assert not bad, bad
    return loads


class InvariantWatch:
    """assert_load_invariant's check, sampled atomically on whichever Redis
    is master every `every` s from a thread of the client namespace while
    a load runs (bounded by max_seconds): the invariants must hold
    throughout, not only once things have settled. A sample that cannot
    reach a master (mid fail-over) is counted as missed, not as a
    violation."""

    def __init__(self, ctl, default_capacity, every=0.3, max_seconds=240):
        self.ctl, self.cap = ctl, default_capacity
        self.every, self.max_seconds = every, max_seconds
        self.samples = self.missed = 0
        self.violations = []
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        r = None
        deadline = time.monotonic() + self.max_seconds
        while not self.stop_ev.is_set() and time.monotonic() < deadline:
            try:
                port = self.ctl.c.master_port()
                with netns(self.ctl.cl_ns):
                    r = redis_lib.Redis(host=ADDR['data'], port=port,
                                        decode_responses=True,
                                        socket_timeout=2,
                                        socket_connect_timeout=1)
                    if r.execute_command('ROLE')[0] != 'master':
                        raise redis_lib.ConnectionError('not a master')
                    _loads, bad = load_violations(r, self.ctl.c.prefix,
                                                  self.cap)
                self.samples += 1
                self.violations.extend(bad)
            except (redis_lib.RedisError, OSError, AssertionError):
                self.missed += 1          # no master named or reachable
            finally:
                if r is not None:
                    r.close()
                    r = None
            self.stop_ev.wait(self.every)

    def start(self):
        self.t.start()
        return self

    def stop(self):
        """Stops the sampling; asserts every sample held and there were
        some."""
        self.stop_ev.set()
        self.t.join(15)
        assert not self.violations, self.violations[:10]
        assert self.samples >= 3, (self.samples, self.missed)
        return self.samples, self.missed


def lag(ctl):
    """(pending, undelivered) of the archiver group on the master."""
    r = ctl.master()
    for g in r.xinfo_groups(ctl.c.stream):
        if g['name'] == ARCHIVER:
            if not r.xrange(ctl.c.stream, '(' + g['last-delivered-id'], '+',
                            count=1):
                return g['pending'], 0
            return g['pending'], max(1, g.get('lag') or 1)
    return None


def journal_lines(cluster, host):
    n = 0
    for name in ('callbacks.jsonl', 'callbacks.replay.jsonl'):
        p = os.path.join(cluster.app_dir(host), 'journal', name)
        if os.path.exists(p):
            with open(p, 'rb') as f:
                n += sum(1 for _ in f)
    return n


def settle(ctl, hosts=APP_HOSTS, timeout=90):
    """The journals of `hosts` replayed, then the archiver caught up.
    Returns the seconds it took."""
    t0 = time.monotonic()
    wait_until(lambda: all(journal_lines(ctl.c, h) == 0 for h in hosts),
               timeout, 0.2, 'the journals replayed (%r)' % {
                   h: journal_lines(ctl.c, h) for h in hosts})
    wait_until(lambda: lag(ctl) == (0, 0), timeout, 0.1,
               'the archiver to catch up')
    return time.monotonic() - t0


def assert_each_once(ctl, msgids):
    each_once(ctl.query, msgids)


def push_log(cluster, host, after=0.0):
    """The workers' callback lines (ev=push) of a host, as (epoch seconds,
    line), logged at or after `after`."""
    out = []
    for ln in cluster.grep_logs(host, ' ev=push '):
        if not ln.startswith('ts='):
            continue
        try:
            t = datetime.datetime.strptime(
                ln[3:ln.index(' ')], '%Y-%m-%dT%H:%M:%S.%fZ').replace(
                    tzinfo=datetime.timezone.utc).timestamp()
        except ValueError:
            continue
        if t >= after:
            out.append((t, ln))
    return out


def journaled(cluster):
    """Callbacks the workers have kept in their journal so far (both
    hosts), from the logs."""
    return sum(len(cluster.grep_logs(h, 'journaled=1')) for h in APP_HOSTS)


# --- pytest plumbing ---------------------------------------------------------

def _sigterm_to_interrupt(signum, frame):
    raise KeyboardInterrupt('SIGTERM')


def pytest_configure(config):
    try:
        signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    except ValueError:
        pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for c in list(ACTIVE):
            c.failed = True
            rep.sections.append(('wxkf cluster logs (%s)' % c.dir,
                                 c.log_tails(25)))


def cluster_conf():
    """The wxkf settings of the suite: Sentinel (topology.py) and every
    callback confirmed on a replica before it is acknowledged."""
    return {
        'redis': {'wait_replicas': '1', 'wait_timeout_ms': '500'},
        'routing': {'default_capacity': str(CAPACITY),
                    'queue_timeout': '0', 'first_reply_timeout': '0'},
        'presence': {'heartbeat_ttl': '60'},
    }


@pytest.fixture(scope='session')
def cluster():
    if not os.access(wxkf_bin(), os.X_OK):
        raise RuntimeError('WXKF_BIN %s is not an executable (make san)'
                           % wxkf_bin())
    c = Cluster(wxkf_bin(), conf_extra=cluster_conf())
    ACTIVE.append(c)
    hits = []
    try:
        try:
            took = c.start()
        except BaseException:
            c.failed = True
            sys.stderr.write(c.log_tails(30) + '\n')
            raise
        print('\ncluster up in %.1f s (%s, folder %s)' % (took, c.tag, c.dir))
        yield c
    finally:
        ACTIVE.remove(c)
        c.stop_gracefully()
        hits = c.sanitizer_reports()
        if hits:
            c.failed = True
        c.teardown(graceful=False)
    assert not hits, 'sanitizer reports:\n' + '\n'.join(hits[:20])


@pytest.fixture(scope='session')
def ctl(cluster):
    ctl = Ctl(cluster)
    yield ctl
    ctl.close()


@pytest.fixture(scope='session')
def users():
    return [random_openid() for _ in range(N_USERS)]


@pytest.fixture(scope='session')
def agents(ctl):
    ags = [Agent(ctl, a, add_agent(ctl, 'app1', a, CAPACITY))
           for a in AGENTS]
    for a in ags:
        a.status('online')
    return ags


@pytest.fixture
def heartbeats(ctl, agents):
    hb = Heartbeats(agents, ctl.cl_ns, ctl.c.front_url).start()
    yield hb
    hb.stop()


__all__ = ['topo', 'Cluster', 'Ctl', 'Load', 'assert_each_once',
           'assert_load_invariant', 'InvariantWatch', 'settle', 'lag', 'journal_lines',
           'journaled', 'wait_until', 'APP_HOSTS', 'ADDR']
