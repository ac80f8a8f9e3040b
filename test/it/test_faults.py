"""Faults under load from simulated users, each bounded in count and time,
on loopback: workers killed one by one, Redis shut down and restarted
(AOF), Redis killed with appendfsync always. After each, every callback
that got a 2xx is in PostgreSQL exactly once and every agent's load equals
its active sessions."""

import os
import signal
import subprocess
import time

import pytest

from conftest import run_stack, wait_until
from test_archive import Load, assert_each_once, next_msgid, stack_start, \
    wait_archived
from test_routing import assert_load_invariant


@pytest.fixture(scope='module')
def fstack():
    yield from run_stack('faults', workers=4, extra={
        'archiver': {'keep_ms': '0'},
        'media': {'fetch': '0'},
    })


class AckLoad(Load):
    """Load where any 200 counts as acknowledged (during a Redis outage
    the answer is the fallback text, not 'success')."""

    def _one(self, i):
        mid = next_msgid()
        u = self.users[i % len(self.users)]
        try:
            r = u.send_text('fault load %d %s' % (i, mid), msgid=mid)
            ok = r.status_code == 200
        except Exception:       # noqa: BLE001 - counted, not acknowledged
            ok = False
        with self.lock:
            self.sent += 1
            (self.acked if ok else self.failed).append(mid)


def journal_lines(st):
    n = 0
    for name in ('callbacks.jsonl', 'callbacks.replay.jsonl'):
        path = os.path.join(st.dir, 'journal', name)
        if os.path.exists(path):
            with open(path, 'rb') as f:
                n += sum(1 for _ in f)
    return n


def redis_pid(st):
    with open(os.path.join(st.dir, 'run', 'redis.pid')) as f:
        return int(f.read().strip())


def journaled(st):
    """How many callbacks the workers have kept in the journal so far."""
    with open(os.path.join(st.dir, 'logs', 'wxkf.log'), errors='replace') as f:
        return sum(1 for line in f if 'journaled=1' in line)


def settle(st):
    """The journal replayed and the archiver caught up."""
    wait_until(lambda: journal_lines(st) == 0, 30, 0.2, 'journal replayed')
    wait_archived(st, 60)


def check(st, load):
    assert load.acked, 'nothing was acknowledged'
    assert_each_once(st, load.acked)
    assert_load_invariant(st)


def test_workers_killed_one_by_one_under_load(fstack):
    st = fstack
    before = set(st.worker_pids())
    assert len(before) == 4
    load = AckLoad(st, 1200, threads=8).start()
    killed = 0
    for pid in sorted(before):
        load.wait_sent(150 * (killed + 1))
        os.kill(pid, signal.SIGKILL)
        killed += 1
    load.join()
    assert killed == 4
    wait_until(lambda: len(st.worker_pids()) == 4, 10, 0.1,
               'multiwatch to replace the workers')
    assert not (set(st.worker_pids()) & before)
    settle(st)
    check(st, load)
    # only requests inside a killed worker can fail (nginx answers 502)
    assert len(load.failed) <= killed * 8, len(load.failed)


def test_redis_restarted_under_load(fstack):
    st = fstack
    kept = journaled(st)
    load = AckLoad(st, 1200, threads=8).start()
    load.wait_sent(300)
    subprocess.run(['redis-cli', '-h', '127.0.0.1', '-p', str(st.redis_port),
                    'shutdown'], capture_output=True, timeout=20,
                   stdin=subprocess.DEVNULL)
    load.wait_sent(600)            # these reach a Redis that is away
    stack_start(st)
    load.join()
    settle(st)
    check(st, load)
    assert not load.failed, load.failed[:5]
    assert journaled(st) > kept, 'nothing went through the journal'


def test_redis_killed_with_appendfsync_always_loses_nothing(fstack):
    st = fstack
    st.redis.config_set('appendfsync', 'always')
    kept = journaled(st)
    load = AckLoad(st, 1200, threads=8).start()
    load.wait_sent(300)
    os.kill(redis_pid(st), signal.SIGKILL)   # no shutdown, no flush
    load.wait_sent(600)
    stack_start(st)                          # back with everysec from AOF
    load.join()
    settle(st)
    check(st, load)
    assert not load.failed, load.failed[:5]
    assert journaled(st) > kept, 'nothing went through the journal'
