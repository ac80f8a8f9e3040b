"""The stack as an operator sees it: liveness and readiness, the schema
migrated by `wxkf migrate`, and workers supervised by multiwatch (a worker
killed with SIGKILL is replaced and no request fails for it)."""

import os
import signal
import subprocess

import threading
import time

import psycopg2
import redis as redis_lib

from conftest import wait_until, wxkf_bin


def test_healthz_answers_ok(stack):
    r = stack_get(stack, '/healthz')
    assert r.status_code == 200
    assert r.text == 'ok\n'
    assert r.headers.get('X-Request-Id')


def test_readyz_is_ready_with_redis_and_postgres_up(stack):
    r = stack_get(stack, '/readyz')
    assert r.status_code == 200, r.text


def test_migrations_are_applied_once(stack):
    db = psycopg2.connect(host='127.0.0.1', port=stack.pg_port,
                          dbname='wxkf', user='wxkf')
    try:
        with db.cursor() as c:
            c.execute('SELECT version, name FROM wxkf_schema ORDER BY 1')
            rows = c.fetchall()
            c.execute("SELECT to_regclass('public.agents') IS NOT NULL")
            has_agents = c.fetchone()[0]
    finally:
        db.close()
    assert rows and rows[0] == (1, '0001_agents')
    assert has_agents
    # A second run changes nothing and says so.
    out = subprocess.run([wxkf_bin(), 'migrate', '-c', stack.conf],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert 'up to date' in out.stdout


def test_check_reaches_redis_and_postgres(stack):
    out = subprocess.run([wxkf_bin(), 'check', '-c', stack.conf],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert 'redis: ok' in out.stdout and 'postgres: ok' in out.stdout


def test_killed_worker_is_replaced_and_service_continues(stack):
    before = stack.worker_pids()
    assert len(before) == stack.workers
    victim = before[0]
    os.kill(victim, signal.SIGKILL)
    after = wait_until(
        lambda: (lambda p: p if len(p) == stack.workers and victim not in p
                 else None)(stack.worker_pids()),
        timeout=10, what='multiwatch to replace the killed worker')
    assert victim not in after
    # Every callback after the replacement is served.
    wx = stack.user()
    for i in range(20):
        r = wx.send_text('after kill %d' % i)
        assert r.status_code == 200 and r.text == 'success'


def stack_get(stack, path):
    import requests
    return requests.get(stack.base + path, timeout=10)


def _top_level_commands(stack, action, mark, sentinel='wxkf-round-trip-end'):
    """Runs action() while MONITOR watches Redis; returns the commands sent
    by clients (MONITOR marks those a script runs as 'lua') that mention
    `mark` (the test user's OpenID: every command made on behalf of its
    callbacks carries it; `wxkf jobs` sweeping meanwhile does not)."""
    seen, ready = [], threading.Event()

    def watch():
        r = redis_lib.Redis(host='127.0.0.1', port=stack.redis_port,
                            decode_responses=True, socket_timeout=30)
        with r.monitor() as m:
            ready.set()
            for cmd in m.listen():           # bounded by the sentinel
                if sentinel in cmd['command']:
                    return
                if cmd.get('client_type') != 'lua' and \
                        mark in cmd['command']:
                    seen.append(cmd['command'].split(' ', 1)[0].upper())
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    assert ready.wait(10)
    time.sleep(0.2)
    action()
    stack.redis.echo(sentinel)
    t.join(30)
    assert not t.is_alive(), 'MONITOR did not see the sentinel'
    return seen


def test_each_callback_is_one_redis_round_trip(stack):
    """The callback path makes exactly one Redis call per push (the ingest
    script, which also routes), retries included: N pushes -> N EVALSHA
    sent by the workers, nothing else."""
    wx, wx2 = stack.user(), stack.user()
    wx.send_text('warm up')          # both workers may need to connect
    wx2.send_text('warm up')
    n = 40

    def pushes():
        for i in range(n // 2):
            for _ in range(2):       # the second one is a retry
                r = wx.send_text('round trip %d' % i,
                                 msgid=str(880000000 + i))
                assert r.status_code == 200
    cmds = _top_level_commands(stack, pushes, wx.openid)
    assert cmds == ['EVALSHA'] * n, cmds


def run_second_jobs(stack, conf, sig):
    """Starts another `wxkf jobs -c conf`, waits for its start line in
    the log, stops it with sig and waits for it to exit (bounded): its
    exit status, its pid."""
    env = dict(os.environ)
    env.pop('WXKF_BIN', None)
    env.pop('WXKF_CONF', None)
    jobs = subprocess.Popen([wxkf_bin(), 'jobs', '-c', conf],
                            stdin=subprocess.DEVNULL, env=env)
    try:
        mark = 'pid=%d rid=- mod=jobs ev=start' % jobs.pid

        def started():
            with open(stack.log_file, encoding='utf-8',
                      errors='replace') as f:
                return mark in f.read()
        wait_until(started, timeout=30, what='the second jobs to start')
        jobs.send_signal(sig)
        return jobs.wait(30), jobs.pid
    finally:
        if jobs.poll() is None:
            jobs.kill()
            jobs.wait(10)


def test_jobs_takes_sigusr1_as_a_clean_stop_like_a_worker(stack):
    """multiwatch's default stop signal is SIGUSR1; a worker finishes and
    exits on it, and so must `wxkf jobs` (it used to die at once)."""
    rc, pid = run_second_jobs(stack, stack.conf, signal.SIGUSR1)
    assert rc == 0
    with open(stack.log_file, encoding='utf-8', errors='replace') as f:
        assert 'pid=%d rid=- mod=jobs ev=stop' % pid in f.read()


def test_jobs_builds_no_callback_and_keeps_no_journal(stack):
    """Issue 16 item 5: `wxkf jobs` takes no callbacks, so it initialises
    neither the callback (its AES keys) nor the journal a callback goes
    to while Redis is away: on a host whose journal directory does not
    exist it creates none (it used to, and to log a journal error where it
    could not) and still sweeps, then stops cleanly. The workers replay
    what they journaled (test_redis_outage.py)."""
    jdir = os.path.join(stack.dir, 'jobs-journal')
    conf = os.path.join(stack.dir, 'jobs-only.conf')
    with open(stack.conf, encoding='utf-8') as f:
        text = f.read()
    with open(conf, 'w', encoding='utf-8') as f:
        f.write(text.replace('[redis]\n', '[redis]\njournal_dir = %s\n'
                             % jdir, 1))
    rc, pid = run_second_jobs(stack, conf, signal.SIGTERM)
    assert rc == 0
    assert not os.path.exists(jdir), 'wxkf jobs made a journal directory'
    with open(stack.log_file, encoding='utf-8', errors='replace') as f:
        mine = [ln for ln in f if ' pid=%d ' % pid in ln]
    assert any('mod=jobs ev=stop' in ln for ln in mine)
    assert not [ln for ln in mine if 'mod=journal' in ln or
                'lvl=error' in ln], mine
