"""Multi-host fail-over (scale-out issue): two app hosts behind a front
nginx, Redis with a replica and three Sentinels, PostgreSQL, each on its
own network namespace (topology.py). Simulated WeChat users post through
the front only. Each test runs under load; afterwards every callback that
got a 2xx is in PostgreSQL exactly once and every agent's load equals its
active sessions. The figures are printed (run pytest with -s)."""

import os
import re
import signal
import time

from conftest import (ADDR, APP_HOSTS, InvariantWatch, Load,
                      assert_each_once, assert_load_invariant, journal_lines,
                      journaled, lag, netns, push_log, settle, wait_until)
from wxuser import WxUser
from topology import AES_KEY, APP_ID, APP_PORT, ORIGINAL_ID, TOKEN
from topology import REDIS_PORTS

THREADS = 8


def served(cluster):
    return {h: cluster.access_count(h) for h in APP_HOSTS}


def report(title, **figures):
    print('\n[cluster] %s: %s' % (title, ', '.join(
        '%s=%s' % (k, ('%.2f' % v) if isinstance(v, float) else v)
        for k, v in figures.items())))


def test_both_app_hosts_serve(ctl, agents, users, heartbeats):
    c = ctl.c
    before = served(c)
    watch = InvariantWatch(ctl, 40).start()
    load = Load(ctl, 1500, users, threads=THREADS, label='spread').run()
    samples, _missed = watch.stop()     # load = active sessions throughout
    after = served(c)
    per = {h: after[h] - before[h] for h in APP_HOSTS}
    report('both hosts', callbacks=load.sent, acked=len(load.acked),
           non2xx=len(load.non2xx), seconds=load.seconds(),
           per_s=load.rate_done(), app1=per['app1'], app2=per['app2'],
           answers=load.bodies(), invariant_samples=samples)
    assert load.sent == 1500
    assert not load.non2xx, load.non2xx[:10]
    # the front spreads the callbacks over both hosts
    for h in APP_HOSTS:
        assert per[h] >= 0.25 * load.sent, per
    assert sum(per.values()) >= load.sent, per
    took = settle(ctl)
    assert_each_once(ctl, load.acked)
    loads = assert_load_invariant(ctl, default_capacity=40)
    assert sum(loads.values()) > 0, 'routing assigned nobody: %r' % loads
    report('both hosts settled', archived_after_s=took, agent_loads=loads,
           heartbeats_ok=heartbeats.ok, heartbeats_failed=heartbeats.failed)


def test_the_queue_is_fifo_across_hosts(ctl, agents, heartbeats):
    """Users who arrive on different app hosts wait in one queue, in the
    order they arrived: 12 new users write one after another, alternately
    straight to app1 and app2, while every agent is paused (a paused
    agent takes nobody: users queue); they must stand at the back of the
    queue in exactly that order. Then the agents are online again."""
    c = ctl.c
    r = ctl.master()
    urls = ['http://%s:%d/wechat' % (ADDR[h], APP_PORT) for h in APP_HOSTS]
    for a in agents:
        a.status('paused')
    try:
        queues = sorted(r.smembers(c.prefix + 'queues')) or ['default']
        sent = []
        for i in range(12):
            openid = 'oFIFO%023d' % (time.time_ns() % 10 ** 23)
            u = WxUser(urls[i % 2], TOKEN, APP_ID, AES_KEY,
                       original_id=ORIGINAL_ID, openid=openid)
            with netns(ctl.cl_ns):
                resp = u.send_text('first message %d' % i)
            assert resp.status_code == 200, resp.text
            sent.append(openid)
        queues = sorted(r.smembers(c.prefix + 'queues'))
        tails = {q: r.zrange(c.prefix + 'queue:' + q, -12, -1)
                 for q in queues}
        report('fifo', queues=queues, hosts='app1/app2 alternately',
               users=len(sent))
        assert sent in tails.values(), (sent, tails)
        assert_load_invariant(ctl, default_capacity=40)
    finally:
        for a in agents:
            a.status('online')


def freeze_mid_batch(ctl, pid, timeout=30):
    """SIGSTOPs `wxkf jobs` (pid) at a moment its archiver holds entries it
    has read and not acknowledged; returns its consumer (XINFO CONSUMERS).
    Bounded: SIGCONT and retry every 10 ms until `timeout`."""
    r = ctl.master()

    def frozen():
        os.kill(pid, signal.SIGSTOP)
        for cons in r.xinfo_consumers(ctl.c.stream, 'archiver'):
            if cons['name'].endswith(':%d' % pid) and cons['pending'] > 0:
                return cons
        os.kill(pid, signal.SIGCONT)
        return None
    return wait_until(frozen, timeout, 0.01, 'a batch in flight in %d' % pid)


def front_retries(cluster, since_line):
    """Callbacks the front passed to a second host (several upstream
    addresses in its log line) after line `since_line` of its log."""
    with open(os.path.join(cluster.front_dir(), 'access.log')) as f:
        lines = f.readlines()[since_line:]
    return sum(1 for ln in lines if '/wechat' in ln and
               ' up=' in ln and ', ' in ln.split(' up=')[1])


def front_lines(cluster):
    try:
        with open(os.path.join(cluster.front_dir(), 'access.log')) as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def test_an_app_host_dies_under_load(ctl, agents, users, heartbeats):
    """app1 is lost mid-load: its cable is pulled and every process in it
    SIGKILLed (its `wxkf jobs` frozen first at a moment it holds an
    unacknowledged archiver batch). app2 carries on; its `wxkf jobs`
    claims the dead consumer's entries after claim_idle_ms. Then app1 is
    brought back and takes traffic again."""
    try:
        _app_host_dies(ctl, users, heartbeats)
    finally:
        # app1 comes back (whatever happened above, so that the next test
        # has both hosts): cable in, scripts/stack.sh start.
        ctl.c.link('app1', True)
        t0 = time.monotonic()
        ctl.c.stack('app1', 'start')
        restart_s = time.monotonic() - t0
    # the front uses it again once its fail_timeout is over
    c = ctl.c
    time.sleep(3)
    before = served(c)
    load2 = Load(ctl, 400, users, threads=THREADS, label='hostback').run()
    after = served(c)
    report('app1 back', restart_s=restart_s, callbacks=load2.sent,
           non2xx=len(load2.non2xx),
           app1=after['app1'] - before['app1'],
           app2=after['app2'] - before['app2'])
    assert not load2.non2xx, load2.non2xx[:10]
    assert after['app1'] - before['app1'] >= 0.25 * load2.sent
    settle(ctl)
    assert_each_once(ctl, load2.acked)
    assert_load_invariant(ctl, default_capacity=40)


def _app_host_dies(ctl, users, heartbeats):
    c = ctl.c
    n = 2400
    before = served(c)
    front0 = front_lines(c)
    jobs1 = c.app_pids('app1')['jobs']
    watch = InvariantWatch(ctl, 40).start()
    load = Load(ctl, n, users, threads=THREADS, rate=200,
                label='hostdown').start()
    load.wait_sent(600)
    victim = freeze_mid_batch(ctl, jobs1)
    t_kill = time.time()
    c.link('app1', False)               # the cable out: no RST, no FIN
    killed = c.kill_all('app1')         # and every process SIGKILLed
    at_kill = served(c)
    load.join()
    samples, missed = watch.stop()      # load = active sessions throughout
    print('\n[cluster] app1 killed: invariants held in %d samples during '
          'the load (%d missed)' % (samples, missed))
    after = served(c)
    gap, gap_at = load.longest_gap(after=t_kill - 1)
    late_non2xx = [e for e in load.events if e[0] > t_kill and
                   not (isinstance(e[2], int) and 200 <= e[2] < 300)]
    report('app1 killed', callbacks=load.sent, acked=len(load.acked),
           non2xx=len(load.non2xx), non2xx_after_kill=len(late_non2xx),
           killed_pids=len(killed),
           archiver_batch_in_flight=victim['pending'],
           seconds=load.seconds(), per_s=load.rate_done(),
           app1_before_kill=at_kill['app1'] - before['app1'],
           app2=after['app2'] - before['app2'],
           front_retried_on_app2=front_retries(c, front0),
           longest_2xx_gap_s=gap,
           gap_starts_after_kill_s=(gap_at - t_kill) if gap_at else None,
           latency_p50_p99_max_after_kill=load.latency(after=t_kill))
    assert load.sent == n
    assert jobs1 in killed and len(killed) >= 5, killed
    # every callback was logged by app1 before it died or by app2 (but
    # for those app1 answered and was killed before it wrote the line:
    # at most one per connection in flight)
    assert (at_kill['app1'] - before['app1']) + \
        (after['app2'] - before['app2']) >= n - len(load.non2xx) - THREADS, \
        (before, at_kill, after)
    # WeChat retries a non-2xx; the front's retry should leave (almost)
    # none: only requests that were inside app1 when it died can fail.
    assert len(load.non2xx) <= 2 * THREADS, load.non2xx[:20]
    # app2's `wxkf jobs` claims the dead archiver's pending entries
    took = settle(ctl, hosts=('app2',))
    assert_each_once(ctl, load.acked)
    assert_load_invariant(ctl, default_capacity=40)
    left = [cons['pending'] for cons in ctl.master().xinfo_consumers(
        c.stream, 'archiver') if cons['name'] == victim['name']]
    assert not left or left[0] == 0, left
    claimed = sum(int(x) for ln in c.grep_logs('app2', 'ev=archive ')
                  for x in re.findall(r' claimed=(\d+)', ln))
    dead_left = journal_lines(c, 'app1')
    report('app1 killed settled', archived_after_s=took,
           claimed_by_app2=claimed, app1_journal_lines=dead_left,
           heartbeats_ok=heartbeats.ok, heartbeats_failed=heartbeats.failed)
    assert dead_left == 0, 'app1 died with %d journaled callbacks' % dead_left


def first_entry_after(ctl, port, t_ms, timeout):
    """Polls Redis at `port` until its stream has an entry whose id is at
    or after t_ms (the workers wrote there); returns the entry's ms."""
    r = ctl.redis(port)

    def newest():
        info = r.xinfo_stream(ctl.c.stream)
        ms = int(info['last-generated-id'].split('-')[0])
        return ms if ms >= t_ms else None
    return wait_until(newest, timeout, 0.02, 'a stream entry on :%d' % port)


def test_redis_primary_dies_under_load(ctl, agents, users, heartbeats):
    """The Redis primary is SIGKILLed mid-load: Sentinel promotes the
    replica, the workers and `wxkf jobs` follow; the old primary is
    started again with its old config, Sentinel makes it a replica, WAIT
    succeeds again and the journals drain."""
    c = ctl.c
    old = c.master_port()
    old_name = c.redis_name(old)
    new = [p for p in REDIS_PORTS.values() if p != old][0]
    journaled_before = journaled(c)
    n = 4000
    watch = InvariantWatch(ctl, 40).start()
    load = Load(ctl, n, users, threads=THREADS, rate=150,
                label='redisdown').start()
    load.wait_sent(600)
    pid = c.redis_pid(old_name)
    t_kill = time.time()
    os.kill(pid, signal.SIGKILL)
    # Sentinel: +sdown after 1 s, +odown, election, +switch-master
    wait_until(lambda: c.sentinel_master() == (ADDR['data'], new), 30, 0.05,
               'Sentinel to promote the replica')
    t_promoted = time.time()
    # the workers write to the new master
    t_follow = first_entry_after(ctl, new, int(t_kill * 1000), 30) / 1000.0
    # the old primary comes back with its old config (it thinks it is the
    # master): Sentinel turns it into a replica of the new one
    wait_until(lambda: not os.path.exists('/proc/%d' % pid) or
               open('/proc/%d/stat' % pid).read().split(') ')[1][0] == 'Z',
               10, 0.05, 'the old primary to be gone')
    time.sleep(max(0.0, 2.0 - (time.time() - t_follow)))
    t_restart = time.time()
    c.start_redis(old_name)

    # Until Sentinel has reconfigured it, the old primary is a master with
    # stale data: nobody may write to it (its writes would be thrown away
    # by the resync). Every callback appends to the stream, so its last id
    # must stay from before the kill.
    stale_writes = []

    def rejoined():
        info = c.redis_cli(old, 'info', 'replication')
        if 'role:master' in info:
            last = ctl.redis(old).xinfo_stream(c.stream)['last-generated-id']
            if int(last.split('-')[0]) > t_kill * 1000 + 50:
                stale_writes.append(last)
        return 'role:slave' in info and 'master_port:%d' % new in info and \
            'master_link_status:up' in info
    wait_until(rejoined, 60, 0.1, 'the old primary to replicate the new one')
    t_rejoined = time.time()
    load.join()
    samples, missed = watch.stop()      # throughout, on whichever master
    print('\n[cluster] redis primary killed: invariants held in %d samples '
          'during the load (%d missed: no master reachable)'
          % (samples, missed))
    ok_after_kill = load.ok_events(after=t_kill)
    first_ok = min((e[0] for e in ok_after_kill), default=None)
    gap, gap_at = load.longest_gap(after=t_kill - 1)
    # From the workers' logs (both hosts): `route=journaled` = Redis was
    # unreachable, kept in the journal only; `unreplicated=1` = written
    # on the master but WAIT did not confirm a replica (kept in the
    # journal too); neither = written and confirmed.
    # (Sentinel waits down-after-milliseconds = 1 s before it even starts:
    # nothing logged in the first 0.5 s after the kill can come from the
    # new master; those are requests the old one answered as it died.)
    pushes = sorted(p for h in APP_HOSTS
                    for p in push_log(c, h, t_kill + 0.5))
    written = [t for t, ln in pushes if 'route=journaled' not in ln]
    confirmed = [t for t, ln in pushes if 'journaled=1' not in ln]
    unreplicated = [t for t, ln in pushes if 'unreplicated=1' in ln]
    journal_only = [t for t, ln in pushes if 'route=journaled' in ln]
    per_host = {h: len(c.grep_logs(h, 'journaled=1')) for h in APP_HOSTS}
    journaled_now = journaled(c)

    def since(t):
        return (t - t_kill) if t else None
    report('redis primary killed',
           callbacks=load.sent, acked=len(load.acked),
           non2xx=len(load.non2xx), seconds=load.seconds(),
           per_s=load.rate_done(),
           promoted_after_s=since(t_promoted),
           new_master_stream_entry_after_s=since(t_follow),
           first_callback_served_from_new_master_after_s=since(
               min(written, default=None)),
           first_2xx_after_kill_s=since(first_ok),
           longest_2xx_gap_s=gap,
           old_primary_restarted_after_s=since(t_restart),
           old_primary_replica_after_s=since(t_rejoined),
           first_wait_confirmed_after_s=since(min(confirmed, default=None)),
           journaled=journaled_now - journaled_before,
           journal_only=len(journal_only), unreplicated=len(unreplicated),
           journaled_per_host=per_host,
           answers=load.bodies(),
           latency_before_kill=load.latency(before=t_kill),
           latency_no_replica=load.latency(after=t_promoted,
                                           before=t_rejoined),
           latency_after_rejoin=load.latency(after=t_rejoined + 1))
    assert not stale_writes, 'written to the old primary while it was a ' \
        'stale master: %r' % stale_writes[:3]
    assert load.sent == n
    assert written and min(written) - t_kill < 15, \
        'the workers did not follow the fail-over'
    assert len(load.non2xx) <= 2 * THREADS, load.non2xx[:20]
    # without a replica WAIT cannot confirm: those callbacks went through
    # the journal (and wait_replicas = 1 is in effect)
    assert journaled_now > journaled_before, 'nothing was journaled'
    assert confirmed, 'WAIT never confirmed a callback after the fail-over'
    t0 = time.monotonic()
    took = settle(ctl, timeout=120)
    report('redis primary killed settled', journals_and_archive_s=took,
           journal_lines={h: journal_lines(c, h) for h in APP_HOSTS},
           lag=lag(ctl), heartbeats_ok=heartbeats.ok,
           heartbeats_failed=heartbeats.failed,
           settle_s=time.monotonic() - t0)
    assert_each_once(ctl, load.acked)
    assert_load_invariant(ctl, default_capacity=40)
    # the journal lines that WAIT could not confirm were all replayed
    assert all(journal_lines(c, h) == 0 for h in APP_HOSTS)
