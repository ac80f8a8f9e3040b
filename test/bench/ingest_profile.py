#!/usr/bin/python3
"""Where Redis spends a callback: the ingest script (lib/lua/prelude.lua +
lib/lua/ingest.lua), timed segment by segment on a scratch Redis.

A private redis-server (free loopback port, a temporary directory, AOF
everysec like scripts/stack.sh, or none with --no-aof) gets 5 online
agents and 10,000 users with sessions, then N sticky callbacks (the
steady state of `make bench`). Printed:

  - Redis's own time per EVALSHA (INFO commandstats) and the Redis
    commands one callback runs, by command;
  - the same for the prelude alone (defining its functions on every call)
    and for an empty script (the cost of EVALSHA itself);
  - a copy of the script with redis.call('TIME') probes before its main
    steps: median and mean µs per step (each probe adds ~1 µs).

    /usr/bin/python3 test/bench/ingest_profile.py [-n 10000] [--no-aof]

Every wait is bounded; the Redis server is stopped by its pid.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import redis

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..'))
sys.path.insert(0, os.path.join(REPO, 'test', 'pylib'))
import wxkf_ports  # noqa: E402
APP_ID = 'wx5e0c2b7d9a4f1e36'
P = 'wxkf:{%s}:' % APP_ID
GH = 'gh_7c1e9a2b4d6f'
# As lib/route.c builds it from the default configuration.
CFG = 'policy=round_robin;cap=5;idle=1800000;frt=0;queue=600000;tz=0;gp='
USERS = 10000
AGENTS = 5

# Probes go before the first line that starts with each of these (the
# step is named by the text; a missing one is skipped).
STEPS = [
    ('local action, now, o', 'dedupe GET (+ prelude)'),
    ('local wk, wkey', 'parse_cfg'),
    ('local decision, agent', 'window + day counters'),
    ('local fields = {}', 'session + routing (sticky)'),
    ('emit(fields)', 'fields + HGET session id'),
    ('inbox(agent, fields)', 'XADD events'),
    ('local stored =', 'XADD agent inbox'),
    ('return decided(0, stored)', 'SET dedupe key'),
]


class Scratch:
    """A scratch redis-server on a port from test/pylib/wxkf_ports.py."""

    def __init__(self, aof):
        self.dir = tempfile.mkdtemp(prefix='wxkf-ingest-prof-', dir='/tmp')
        self.port, self.r = wxkf_ports.start_on_free_port(
            lambda port: self._start(port, aof))

    def _start(self, port, aof):
        log = self.dir + '/redis.log'
        if os.path.exists(log):
            os.unlink(log)
        cmd = ['redis-server', '--port', str(port), '--bind',
               '127.0.0.1', '--dir', self.dir, '--save', '', '--daemonize',
               'yes', '--pidfile', self.dir + '/redis.pid', '--logfile', log]
        if aof:
            cmd += ['--appendonly', 'yes', '--appendfsync', 'everysec']
        subprocess.run(cmd, check=True, timeout=30, stdin=subprocess.DEVNULL)
        r = redis.Redis(host='127.0.0.1', port=port, socket_timeout=10)
        for _ in range(200):
            try:
                r.ping()
                return port, r
            except redis.ConnectionError:
                if wxkf_ports.bind_refused(log):
                    raise wxkf_ports.PortTaken(port) from None
                time.sleep(0.05)
        raise RuntimeError('scratch redis did not answer')

    def stop(self):
        try:
            with open(self.dir + '/redis.pid') as f:
                pid = int(f.read())
            os.kill(pid, signal.SIGTERM)
            for _ in range(200):
                os.kill(pid, 0)
                time.sleep(0.05)
        except (OSError, ValueError):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def args_for(n, now):
    """KEYS and ARGV of route_ingest for a plaintext text message
    (lib/route.c, lib/lua/README.md): the number of keys, then both."""
    o = 'oBench%022d' % (n % USERS)
    mid = '7999%015d' % n
    payload = json.dumps({'ToUserName': GH, 'FromUserName': o,
                          'CreateTime': str(now // 1000),
                          'MsgType': 'text', 'Content': 'bench message %d' % n,
                          'MsgId': mid}, separators=(',', ':'))
    key = 'msgid:%s:%s' % (o, mid)
    fields = ['type', 'msg_in', 'key', key, 'openid', o,
              'msgtype', 'text', 'event', '', 'msgid', mid, 'create_time',
              str(now // 1000), 'recv_ms', str(now), 'rid', '0' * 32,
              'payload', payload]
    sig = '%040x:%d:%d' % (n, now // 1000, n)     # signature:ts:nonce
    return [3, P, P + 'dedupe:' + key, P + 'sig:' + sig, 'route', '600',
            str(now), o, '', CFG, 'none', '', '', 'msg', '%064x' % n,
            '660'] + fields


def setup(r):
    now = int(time.time() * 1000)
    for i in range(AGENTS):
        a = 'bench%d@shop' % i
        r.sadd(P + 'agents', a)
        r.hset(P + 'agent:' + a, mapping={'status': 'online',
                                          'capacity': 5000, 'weight': 1})
        r.sadd(P + 'online', a)
        r.zadd(P + 'hb', {a: now})
    if 'ret=' in CFG:
        pipe = r.pipeline(transaction=False)
        for u in range(USERS):
            k = P + 'last_agent:oBench%022d' % u
            pipe.hset(k, mapping={'agent': 'bench%d@shop' % (u % AGENTS),
                                  'ms': now})
            pipe.pexpire(k, 86400000)
        pipe.execute()


def commandstats(r):
    return {k[8:]: v['calls'] for k, v in r.info('commandstats').items()}


def redis_cpu(r):
    """CPU seconds (user + system) of the Redis server so far."""
    pid = int(r.info('server')['process_id'])
    with open('/proc/%d/stat' % pid) as f:
        v = f.read().rsplit(')', 1)[1].split()
    return (int(v[11]) + int(v[12])) / os.sysconf('SC_CLK_TCK')


def measure(r, src, n, first):
    """Redis µs per call and commands per call of src over n calls (after
    USERS calls that give every user a session: their µs per call is
    left in last_new_us)."""
    global last_cpu_us, last_new_us
    sha = r.script_load(src)
    now = int(time.time() * 1000)
    r.config_resetstat()
    for i in range(USERS):
        r.evalsha(sha, *args_for(first + i, now))
    last_new_us = r.info('commandstats')['cmdstat_evalsha']['usec_per_call']
    r.config_resetstat()
    out = []
    cpu0 = redis_cpu(r)
    for i in range(n):
        out.append(r.evalsha(sha, *args_for(first + USERS + i, now)))
    last_cpu_us = (redis_cpu(r) - cpu0) * 1e6 / n
    st = r.info('commandstats')
    per = st['cmdstat_evalsha']['usec_per_call']
    cmds = {k: v / n for k, v in commandstats(r).items()
            if k not in ('evalsha', 'info') and not k.startswith('config')}
    return per, cmds, out


def probed(src):
    lines = src.split('\n')
    names, out = [], []
    pending = list(STEPS)
    for ln in lines:
        if pending and ln.startswith(pending[0][0]):
            out.append("__probe()")
            names.append(pending[0][1])
            pending.pop(0)
        out.append(ln)
    text = '\n'.join(out)
    if 'return decided(0, stored)' not in text:
        return None, names
    text = text.replace('return decided(0, stored)',
                        'local __r = decided(0, stored)\n'
                        '__r[#__r + 1] = __t\nreturn __r')
    head = ("local __t = {}\nlocal function __probe() local t = "
            "redis.call('TIME'); __t[#__t + 1] = t[1] * 1000000 + t[2] end\n"
            "__probe()\n")
    return head + text, names


last_cpu_us = 0.0
last_new_us = 0.0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('-n', type=int, default=10000)
    ap.add_argument('--no-aof', action='store_true')
    ap.add_argument('--returning', type=int, default=0, metavar='DAYS',
                    help='[routing] returning; every user gets a last '
                    'agent (online, free), so each new session goes back')
    a = ap.parse_args(argv)
    global CFG
    if a.returning:
        CFG = CFG.replace(';tz=', ';ret=%d;tz=' % (a.returning * 86400000))
    with open(os.path.join(REPO, 'lib', 'lua', 'prelude.lua')) as f:
        prelude = f.read()
    with open(os.path.join(REPO, 'lib', 'lua', 'ingest.lua')) as f:
        ingest = f.read()
    s = Scratch(not a.no_aof)
    try:
        setup(s.r)
        print('scratch Redis %s, AOF %s, %d users, %d agents online, %d '
              'sticky callbacks' % (s.r.info('server')['redis_version'],
                                    'off' if a.no_aof else 'everysec',
                                    USERS, AGENTS, a.n))
        per, cmds, _ = measure(s.r, 'return 1', a.n, 0)
        print('  empty script:        %5.1f µs per EVALSHA (Redis CPU %.0f '
              'µs)' % (per, last_cpu_us))
        per, cmds, _ = measure(s.r, prelude + '\nreturn 1', a.n, 0)
        print('  prelude only:        %5.1f µs per EVALSHA' % per)
        per, cmds, _ = measure(s.r, prelude + ingest, a.n, 10 ** 7)
        print('  prelude + ingest, a new session each: %5.1f µs per '
              'EVALSHA' % last_new_us)
        print('  prelude + ingest:    %5.1f µs per EVALSHA (Redis CPU, '
              'event loop and AOF included: %.0f µs), %.1f Redis commands '
              'per call:' % (per, last_cpu_us, sum(cmds.values())))
        print('      ' + ', '.join('%s %.2g' % kv for kv in
                                   sorted(cmds.items(),
                                          key=lambda kv: -kv[1])))
        src, names = probed(prelude + ingest)
        if not src:
            print('  (ingest.lua has changed: no probes)')
            return 0
        per, _, out = measure(s.r, src, a.n, 2 * 10 ** 7)
        steps = [[] for _ in names]
        for res in out:
            t = res[-1]
            for j in range(min(len(names), len(t) - 1)):
                steps[j].append(t[j + 1] - t[j])
        print('  with %d TIME probes: %5.1f µs per EVALSHA; by step '
              '(µs, median / mean):' % (len(names) + 1, per))
        for name, v in zip(names, steps):
            if v:
                print('      %-28s %5.1f / %5.1f' % (
                    name, statistics.median(v), statistics.mean(v)))
    finally:
        s.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
