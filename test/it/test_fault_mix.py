"""Several faults in one run, under one load from simulated users, with
agents online so users are routed: a worker SIGKILLed, PostgreSQL stopped
(the archiver waits), `wxkf jobs` SIGKILLed while PostgreSQL is down,
Redis SIGKILLed (appendfsync always) while PostgreSQL is still down, then
everything started again. Afterwards every callback that got a 200 is in
PostgreSQL exactly once, nothing is left in the journal, and every
agent's load equals its active sessions. Bounded: 1,600 callbacks, 8
senders, every wait has a deadline; loopback only."""

import os
import signal

import pytest

from conftest import run_stack, wait_until
from test_archive import assert_each_once, jobs_pid, pg_ctl, stack_start, \
    wait_archived
from test_faults import AckLoad, journal_lines, journaled, redis_pid
from test_routing import Agent, add_agent, assert_load_invariant

TOTAL = 1600


@pytest.fixture(scope='module')
def mstack():
    yield from run_stack('fault-mix', workers=3, extra={
        'archiver': {'keep_ms': '0', 'claim_idle_ms': '2000'},
        'media': {'fetch': '0'},
        'routing': {'default_capacity': '50'},
    })


def pg_down(st):
    pg_ctl(st, 'stop', '-m', 'fast', '-w', '-t', '30')


def test_worker_postgres_jobs_and_redis_fail_in_one_run(mstack):
    st = mstack
    agents = [Agent(st, 'mix%d@shop' % i, add_agent(st, 'mix%d@shop' % i))
              for i in range(3)]
    for a in agents:
        a.status('online')
    st.redis.config_set('appendfsync', 'always')
    kept = journaled(st)
    workers = st.worker_pids()
    load = AckLoad(st, TOTAL, threads=8).start()

    load.wait_sent(200)
    os.kill(workers[0], signal.SIGKILL)          # 1. a worker
    load.wait_sent(400)
    pg_down(st)                                  # 2. PostgreSQL
    load.wait_sent(600)
    jobs = jobs_pid(st)
    assert jobs, 'wxkf jobs is not running'
    os.kill(jobs, signal.SIGKILL)                # 3. the archiver, mid-outage
    load.wait_sent(800)
    os.kill(redis_pid(st), signal.SIGKILL)       # 4. Redis, no flush
    load.wait_sent(1000)                         # these go to the journal
    stack_start(st)                    # PostgreSQL, Redis (AOF) and jobs
    # Presence lives in Redis: the agents come back online. A worker may
    # still be in its reconnect backoff (<= 2 s) and answer 503
    # backend_unavailable meanwhile, which is right; ask until one is not.
    for a in agents:
        wait_until(lambda a=a: a.post('/api/v1/me/status',
                                      {'status': 'online'}).status_code
                   == 200, 15, 0.2, 'agent %s online again' % a.account)
    load.join()

    wait_until(lambda: journal_lines(st) == 0, 60, 0.2, 'journal replayed')
    wait_archived(st, 90)
    print('\nfault mix: %d sent, %d acknowledged, %d failed (the killed '
          "worker's requests), %d journaled"
          % (load.sent, len(load.acked), len(load.failed),
             journaled(st) - kept))
    assert load.sent == TOTAL
    assert journaled(st) > kept, 'nothing went through the journal'
    # only requests inside the killed worker can fail (nginx answers 502)
    assert len(load.failed) <= 8, load.failed[:5]
    assert_each_once(st, load.acked)
    assert_load_invariant(st, default_capacity=50)
    assert len(st.worker_pids()) == 3
