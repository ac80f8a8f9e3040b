#!/usr/bin/python3
"""The callback benchmark behind `make bench` (docs/performance.md).

One private stack (scripts/stack.sh through test/it/conftest.py's Stack,
free loopback ports, PostgreSQL with fsync off as in the tests), 5 agents
online, 10,000 users. For each worker count (2, 4, 8) and each number of
connections (16, 64), wrk and test/bench/callback.lua drive:

  wxkf plain  the real workers, validly signed plaintext callbacks;
  wxkf safe   the same in safe mode (AES; bodies pre-encrypted into a pool);
  bare        test/bench/fcgi_bare (a libfcgi responder that does nothing)
              on the same socket under the same nginx, spawn-fcgi and
              multiwatch: the ceiling of nginx + FastCGI on this machine.

`wxkf jobs` is stopped during the load; after each worker count it is
started and timed until the archiver has drained the stream (drain rate,
and PostgreSQL rows, bytes and WAL per archived entry).

Then, at the largest worker count and connections:

  cost        a short run with AOF rewrites held off: per callback, Redis
              commands (INFO commandstats), Redis CPU (INFO cpu), AOF bytes,
              Redis memory, the events stream entry (docs/scaling.md);
  wait        a Redis replica (its own redis-server on a free loopback port,
              --replicaof the stack's Redis, the same persistence settings)
              and the workers restarted with WXKF_REDIS_WAIT_REPLICAS=1, in
              the order plain, wait, wait, plain: what [redis]
              wait_replicas = 1 costs (informational), and that WAIT really
              confirmed (WAIT per callback, /metrics'
              wxkf_redis_wait_short_total, the replica's offset).

At the end every callback is checked in PostgreSQL: each acknowledged MsgId
archived exactly once, nothing lost, nothing doubled. Also measured: worker
RSS, CPU per component (workers, nginx, Redis, the replica, wrk, the rest
of the machine) and Redis's time per call of the ingest script.

Output: a table on stdout; build/bench/results.{json,md}, the raw wrk
output of every run, throughput.{dat,gp} and the plot (default
docs/perf/throughput.png, drawn with gnuplot).

Exit status: 1 when a correctness check failed (errors, lost or doubled
messages, a worker restarted, a run that did not end cleanly), 2 on a
setup failure; missed performance targets are reported, and fail only
with --strict.

    /usr/bin/python3 test/bench/bench.py [--bin build/rel/wxkf] [--quick]
        [--nice -10] [--wait-quiet S]          a machine shared with others
        [--worker-env VAR=VALUE] [--log-level warn] [--redis-config K=V]
                                               variants (plot in build/bench)
        [--no-wait] [--no-cost] [--cost-duration S]
        [--profile]            perf, callgrind and strace instead (build/bench)

Every wait is bounded; all traffic goes to 127.0.0.1.
"""

import argparse
import base64
import datetime
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..'))
sys.path.insert(0, os.path.join(REPO, 'test', 'it'))

import conftest  # noqa: E402  (Stack, the test identity, wechat_crypto)
from conftest import Stack, child_pids, wait_until, wc  # noqa: E402
import wxkf_ports  # noqa: E402  (on conftest's sys.path)

from cryptography.hazmat.primitives.ciphers import (  # noqa: E402
    Cipher, algorithms, modes)

LUA = os.path.join(HERE, 'callback.lua')
BARE_SRC = os.path.join(HERE, 'fcgi_bare.c')

AGENTS = 5
AGENT_CAPACITY = 5000
USERS = 10000
WRK_THREADS = 2
START_DELAY_MS = 500        # common start of wrk's threads (callback.lua)
SAFE_START_DELAY_MS = 1500  # ... when they first load a pool of requests
TAIL_MS = 500               # idle tail after the timed part of a run
WRK_TIMEOUT_S = 5
HZ = os.sysconf('SC_CLK_TCK')
# The stack's processes whose CPU time is accounted per run ('replica': the
# Redis replica of the wait_replicas runs, 0 elsewhere).
COMPONENTS = ('workers', 'nginx', 'redis', 'postgres', 'replica')

# Targets (docs/performance.md), for 64 connections.
T_CEILING = 0.50            # wxkf >= 50% of the bare ceiling
T_P99_MS = 20.0
T_RSS_MIB = 16.0
T_SAFE = 0.15               # safe within 15% of plaintext
# Commands not counted as a callback's (INFO, the replica's REPLCONF ACKs,
# ...), and the ones a worker sends itself (the rest run inside scripts).
NOT_CALLBACK = {'info', 'config', 'ping', 'client', 'hello', 'command',
                'select', 'replconf', 'psync', 'sync', 'memory', 'auth',
                'slowlog', 'latency', 'xinfo', 'xlen', 'xrevrange', 'script',
                'scan'}
TOP_LEVEL = {'evalsha', 'eval', 'evalsha_ro', 'eval_ro', 'fcall', 'wait'}
# Other work on the machine (CPU not used by this stack or wrk) above this
# many cores during a run marks its figures as unreliable.
NOISY_CORES = 0.25


def log(msg):
    sys.stdout.write(msg + '\n')
    sys.stdout.flush()


class SetupError(RuntimeError):
    pass


# --- /proc ------------------------------------------------------------------

def proc_cpu(pid):
    """utime + stime of pid in seconds (0 if it is gone)."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            rest = f.read().rsplit(')', 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / HZ
    except (OSError, IndexError, ValueError):
        return 0.0


def proc_status(pid, key):
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith(key + ':'):
                    return int(line.split()[1])      # kB
    except OSError:
        pass
    return None


def machine_busy():
    """(busy, total) CPU seconds of the whole machine, from /proc/stat."""
    with open('/proc/stat') as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    total = sum(v[:8])          # guest time is already in user
    return (total - idle) / HZ, total / HZ


def loadavg():
    with open('/proc/loadavg') as f:
        return float(f.read().split()[0])


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def stop_pid(pid, what, sig=signal.SIGTERM, timeout=15):
    """Signals one pid we started and waits (bounded) until it is gone."""
    if not pid or not alive(pid):
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    try:
        wait_until(lambda: not alive(pid), timeout, 0.05, '%s to stop' % what)
    except AssertionError:
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not alive(pid), 5, 0.05, '%s to die' % what)


# --- the bench --------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.a = args
        self.out = os.path.abspath(args.out)
        os.makedirs(self.out, exist_ok=True)
        for f in os.listdir(self.out):     # outputs of an earlier run
            if f.endswith(('.json', '.txt', '.md', '.dat', '.gp')) or \
                    f.startswith(('pool-', 'perf.data', 'callgrind.out.')):
                os.unlink(os.path.join(self.out, f))
        self.bin = os.path.abspath(args.bin)
        self.bare_bin = os.path.join(self.out, 'fcgi_bare')
        self.st = None
        self.bare_pid = None
        self.jobs = None
        self.run_no = 0
        self.runs = []
        self.rss = {}
        self.drains = []
        self.checks = []
        self.failures = []
        self.next_drain_from = 0     # entries-added at the end of the last drain
        self.replica = None          # the Redis replica (Popen), wait runs
        self.replica_redis = None
        self.wait = None             # the wait_replicas comparison
        self.cost = None             # the per-callback cost run

    # --- setup ---------------------------------------------------------------

    def preflight(self):
        for tool in ('wrk', 'spawn-fcgi', 'nginx', 'redis-server', 'cc',
                     'pkg-config'):
            if not shutil.which(tool):
                raise SetupError('%s is not installed (make deps)' % tool)
        if not os.access(self.bin, os.X_OK):
            raise SetupError('%s is not an executable (make)' % self.bin)
        if not shutil.which('gnuplot') and not self.a.no_plot:
            self.install_gnuplot()

    def install_gnuplot(self):
        """The plot needs gnuplot (Debian: gnuplot-nox); installed here if
        missing, the way scripts/deps.sh installs the rest."""
        log('bench: gnuplot missing: apt-get install gnuplot-nox')
        env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
        sudo = [] if os.getuid() == 0 else ['sudo']
        for cmd in (['apt-get', 'update'],
                    ['apt-get', 'install', '-y', '--no-install-recommends',
                     'gnuplot-nox']):
            r = subprocess.run(sudo + cmd, env=env, capture_output=True,
                               text=True, timeout=300,
                               stdin=subprocess.DEVNULL)
            if r.returncode != 0:
                log('bench: %s failed (no plot): %s' % (' '.join(cmd),
                                                        r.stderr[-500:]))
                self.a.no_plot = True
                return

    def build_bare(self):
        if os.path.exists(self.bare_bin) and \
                os.path.getmtime(self.bare_bin) >= os.path.getmtime(BARE_SRC):
            return
        flags = subprocess.run(['pkg-config', '--cflags', '--libs', 'fcgi'],
                               capture_output=True, text=True, timeout=30)
        libs = flags.stdout.split() if flags.returncode == 0 else ['-lfcgi']
        r = subprocess.run(['cc', '-O2', '-Wall', '-Wextra', '-o',
                            self.bare_bin, BARE_SRC] + libs,
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise SetupError('building fcgi_bare failed:\n' + r.stderr)

    def start_stack(self):
        os.environ['WXKF_BIN'] = self.bin
        os.environ['NO_JOBS'] = '1'        # the archiver runs between loads
        for kv in self.a.worker_env:       # e.g. LIBFCGI_OS_CLOSE_POLL_TIMEOUT=0
            k, _, v = kv.partition('=')
            os.environ[k] = v              # workers and bare responders alike
        self.st = Stack('bench', workers=self.a.workers[0], extra={
            'log': {'level': self.a.log_level},
            'presence': {'heartbeat_ttl': '3600'},
            'archiver': {'keep_ms': '0'},
            'media': {'fetch': '0'},
        })
        log('bench: starting the stack in %s' % self.st.dir)
        t0 = time.monotonic()
        self.st.start()
        log('bench: stack up in %.1f s (nginx 127.0.0.1:%d)'
            % (time.monotonic() - t0, self.st.port))
        self.rdir = os.path.join(self.st.dir, 'run')
        self.sock = os.path.join(self.rdir, 'wxkf.sock')
        for kv in self.a.redis_config:     # e.g. appendonly=no
            k, _, v = kv.partition('=')
            self.st.redis.config_set(k, v)

    def add_agents(self):
        import requests
        for i in range(AGENTS):
            cmd = [self.bin, 'agent', 'add', '-c', self.st.conf, '--account',
                   'bench%d@shop' % i, '--nick', 'Bench %d' % i,
                   '--capacity', str(AGENT_CAPACITY)]
            env = dict(os.environ)
            env.pop('WXKF_BIN', None)
            r = subprocess.run(cmd, capture_output=True, text=True,
                               timeout=60, env=env, stdin=subprocess.DEVNULL)
            if r.returncode != 0:
                raise SetupError('wxkf agent add: ' + r.stderr)
            token = json.loads(r.stdout)['token']
            resp = requests.post(self.st.base + '/api/v1/me/status',
                                 json={'status': 'online'}, timeout=10,
                                 headers={'Authorization': 'Bearer ' + token})
            if resp.status_code != 200:
                raise SetupError('agent online: %d %s' % (resp.status_code,
                                                          resp.text[:300]))
        online = self.st.redis.scard('wxkf:{%s}:online' % self.st.app_id)
        if online != AGENTS:
            raise SetupError('%d agents online, expected %d' % (online,
                                                                AGENTS))
        log('bench: %d agents online (capacity %d each)' % (AGENTS,
                                                           AGENT_CAPACITY))

    # --- the worker pool behind the socket -------------------------------------

    def mw_pid(self):
        pid = read_pid(os.path.join(self.rdir, 'multiwatch.pid'))
        return pid if pid and alive(pid) else None

    def workers(self):
        if self.bare_pid:
            return child_pids(self.bare_pid)
        pid = self.mw_pid()
        return child_pids(pid) if pid else []

    def stop_pool(self):
        if self.bare_pid:
            stop_pid(self.bare_pid, 'bare multiwatch')
            self.bare_pid = None
        pid = self.mw_pid()
        if pid:
            stop_pid(pid, 'multiwatch')
        try:
            os.unlink(self.sock)
        except FileNotFoundError:
            pass

    def use_wxkf(self, n, force=False):
        """n `wxkf fcgi` workers, restarted by scripts/stack.sh start (which
        leaves the running Redis, PostgreSQL and nginx alone). The workers
        get the environment of stack.sh, i.e. ours (force: restart them even
        if n are running, e.g. after a WXKF_* variable changed)."""
        if not force and not self.bare_pid and self.mw_pid() and \
                len(self.workers()) == n:
            return
        self.stop_pool()
        self.st.workers = n
        r = self.st.script('start', 120)
        if r.returncode != 0:
            raise SetupError('stack.sh start (workers=%d): %s %s'
                             % (n, r.stdout[-1500:], r.stderr[-1500:]))
        wait_until(lambda: len(self.workers()) == n, 10, 0.05,
                   '%d workers' % n)

    def use_bare(self, n):
        """n fcgi_bare responders on the same socket, started the way
        scripts/stack.sh starts the real ones (spawn-fcgi + multiwatch)."""
        self.stop_pool()
        pidf = os.path.join(self.rdir, 'bare.pid')
        if os.getuid() == 0:   # nginx's workers run as nobody
            group = subprocess.run(['id', '-gn', 'nobody'], text=True,
                                   capture_output=True).stdout.strip()
            sockopts = ['-M', '0660', '-G', group or 'nogroup']
        else:
            sockopts = ['-M', '0600']
        r = subprocess.run(['spawn-fcgi', '-s', self.sock] + sockopts +
                           ['-P', pidf, '--', '/usr/bin/multiwatch', '-f',
                            str(n), '-s', 'TERM', '--', self.bare_bin],
                           capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise SetupError('spawn-fcgi (bare): %s %s' % (r.stdout,
                                                            r.stderr))
        self.bare_pid = read_pid(pidf)
        wait_until(lambda: len(child_pids(self.bare_pid)) == n, 10, 0.05,
                   '%d bare responders' % n)

    # --- one wrk run -----------------------------------------------------------

    def cpu_sample(self):
        pids = {'workers': self.workers()}
        ngx = read_pid(os.path.join(self.rdir, 'nginx.pid'))
        pids['nginx'] = ([ngx] + child_pids(ngx)) if ngx else []
        rds = read_pid(os.path.join(self.rdir, 'redis.pid'))
        pids['redis'] = [rds] if rds else []
        pg = read_pid(os.path.join(self.st.dir, 'pg', 'data',
                                   'postmaster.pid'))
        pids['postgres'] = ([pg] + child_pids(pg)) if pg else []
        pids['replica'] = [self.replica.pid] if self.replica else []
        cpu = {k: sum(proc_cpu(p) for p in v) for k, v in pids.items()}
        cpu['busy'], cpu['total'] = machine_busy()
        cpu['t'] = time.monotonic()
        return cpu, pids

    def redis_ingest_stats(self):
        try:
            st = self.st.redis.info('commandstats')
        except Exception:      # noqa: BLE001
            return None
        out = {}
        for k in ('cmdstat_evalsha', 'cmdstat_eval'):
            if k in st:
                out[k[8:]] = {'calls': st[k]['calls'],
                              'usec': st[k]['usec']}
        return out

    def redis_forks(self):
        try:
            return int(self.st.redis.info('stats').get('total_forks', 0))
        except Exception:      # noqa: BLE001
            return 0

    def redis_info(self):
        """INFO's default sections (cpu, persistence, memory,
        replication...) of the stack's Redis, {} if it does not answer."""
        try:
            return self.st.redis.info()
        except Exception:      # noqa: BLE001
            return {}

    def redis_cmdstats(self):
        """{command: calls} since the last CONFIG RESETSTAT. Commands a
        script runs are counted under their own names too."""
        try:
            st = self.st.redis.info('commandstats')
        except Exception:      # noqa: BLE001
            return {}
        return {k[8:]: v['calls'] for k, v in st.items()
                if k.startswith('cmdstat_')}

    @staticmethod
    def redis_costs(i0, i1, cmds, n):
        """Per answered callback: Redis commands (top level and inside the
        scripts), Redis CPU (INFO cpu: the whole process), AOF bytes (only
        when no AOF rewrite started or ran: a rewrite resets
        aof_current_size), replication stream bytes (master_repl_offset,
        when a replication backlog exists) and memory (used_memory)."""
        if not n or not i0 or not i1:
            return None
        out = {'callbacks': n, 'cmds': cmds}

        def d(k):
            return float(i1.get(k, 0)) - float(i0.get(k, 0))
        cpu = d('used_cpu_sys') + d('used_cpu_user')
        out['cpu_us'] = round(cpu * 1e6 / n, 1)
        out['cpu_main_us'] = round((d('used_cpu_sys_main_thread') +
                                    d('used_cpu_user_main_thread')) * 1e6 / n,
                                   1)
        def admin_cmd(k):       # Redis 7 names subcommands "config|resetstat"
            return k.split('|', 1)[0] in NOT_CALLBACK
        top = sum(v for k, v in cmds.items() if k in TOP_LEVEL)
        admin = sum(v for k, v in cmds.items() if admin_cmd(k))
        out['top_level_per_cb'] = round(top / n, 3)
        out['in_scripts_per_cb'] = round((sum(cmds.values()) - top - admin)
                                         / n, 2)
        out['per_cb'] = {k: round(v / n, 3) for k, v in sorted(
            cmds.items(), key=lambda kv: -kv[1]) if not admin_cmd(k)}
        rewrites = d('aof_rewrites')
        out['aof_rewrites'] = int(rewrites)
        if int(i1.get('aof_enabled', 0)) and not rewrites and \
                not int(i0.get('aof_rewrite_in_progress', 0)) and \
                not int(i1.get('aof_rewrite_in_progress', 0)):
            out['aof_bytes'] = round(d('aof_current_size') / n, 1)
        else:
            out['aof_bytes'] = None
        if int(i1.get('repl_backlog_active', 0)):
            out['repl_bytes'] = round(d('master_repl_offset') / n, 1)
        out['mem_bytes'] = round(d('used_memory') / n, 1)
        return out

    def make_pool(self, prefix, n, run, threads=WRK_THREADS):
        """n safe-mode requests for run `run`, split over the wrk threads
        (line i goes to thread i % threads with counter i // threads + 1,
        the MsgIds callback.lua's plaintext mode would use).

        Fast enough for ~100,000 lines in a few seconds: one timestamp
        for all and a nonce per line (a signed query serves one message
        only: docs/callback.md), and one AES-CBC stream
        for all messages: each message's first block is XORed with the
        previous ciphertext block and the IV, which gives exactly the
        ciphertext of encrypting it alone with the IV (key[:16])."""
        st = self.st
        ts = str(int(time.time()))
        nonce0 = random.randint(10 ** 8, 10 ** 9)
        key = wc.aes_key(st.aes_key)
        iv = int.from_bytes(key[:16], 'big')
        enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
        last = iv            # the stream's previous ciphertext block
        rnd = random.Random(run)
        app_id = st.app_id.encode()
        b64, sha1 = base64.b64encode, hashlib.sha1
        tok = st.token.encode()
        files = [open('%s.%d' % (prefix, t), 'w') for t in range(threads)]
        try:
            for i in range(n):
                t, k = i % threads, i // threads + 1
                msgid = '7%03d%02d%013d' % (run % 1000, t, k)
                xml = ('<xml><ToUserName><![CDATA[%s]]></ToUserName>'
                       '<FromUserName><![CDATA[oBench%022d]]></FromUserName>'
                       '<CreateTime>%s</CreateTime>'
                       '<MsgType><![CDATA[text]]></MsgType>'
                       '<Content><![CDATA[bench message %d]]></Content>'
                       '<MsgId>%s</MsgId></xml>'
                       % (st.original_id, k % USERS, ts, k, msgid)).encode()
                plain = wc.pkcs7_pad(rnd.randbytes(16) +
                                     struct.pack('>I', len(xml)) + xml +
                                     app_id)
                first = int.from_bytes(plain[:16], 'big') ^ iv ^ last
                ct = enc.update(first.to_bytes(16, 'big') + plain[16:])
                last = int.from_bytes(ct[-16:], 'big')
                e64 = b64(ct)
                nonce = str(nonce0 + i)
                tsn = [tok, ts.encode(), nonce.encode()]
                sig = sha1(b''.join(sorted(tsn))).hexdigest()
                msig = sha1(b''.join(sorted(tsn + [e64]))).hexdigest()
                files[t].write(
                    'signature=%s&timestamp=%s&nonce=%s&openid=oBench%022d'
                    '&encrypt_type=aes&msg_signature=%s\t<xml><ToUserName>'
                    '<![CDATA[%s]]></ToUserName><Encrypt><![CDATA[%s]]>'
                    '</Encrypt></xml>\n'
                    % (sig, ts, nonce, k % USERS, msig, st.original_id,
                       e64.decode('ascii')))
        finally:
            for f in files:
                f.close()

    def wait_quiet(self):
        """--wait-quiet N: before a run, wait (at most N s) until the rest
        of the machine has used less than NOISY_CORES for a second."""
        if not self.a.wait_quiet:
            return 0.0
        t0 = time.monotonic()
        while time.monotonic() - t0 < self.a.wait_quiet:
            c0, _ = self.cpu_sample()
            time.sleep(1)
            c1, _ = self.cpu_sample()
            ours = sum(c1[k] - c0[k] for k in COMPONENTS)
            if (c1['busy'] - c0['busy'] - ours) / (c1['t'] - c0['t']) < \
                    NOISY_CORES:
                break
        return time.monotonic() - t0

    def wrk(self, kind, n_workers, conns, duration, mode='plain',
            record=True, pool_size=0, variant=None):
        """One timed wrk run. variant: None for the runs of the main table;
        'replica' / 'wait' (wait_replicas) or 'cost' (per-callback costs):
        extra runs, kept apart from the main table and the plot."""
        waited = self.wait_quiet() if record else 0.0
        self.run_no += 1
        run = self.run_no
        name = '%02d-%s-%s-w%d-c%d%s%s' % (run, kind, mode, n_workers, conns,
                                         '-' + variant if variant else '',
                                         '' if record else '-warmup')
        summary_path = os.path.join(self.out, name + '.json')
        # Safe mode: one more second for loading the pool, same timed part.
        start_delay = SAFE_START_DELAY_MS if mode == 'safe' else \
            START_DELAY_MS
        wrk_s = duration + (1 if mode == 'safe' else 0)
        run_ms = wrk_s * 1000 - start_delay - TAIL_MS
        env = dict(os.environ)
        env.update({'GH': self.st.original_id, 'WXKF_RUN': str(run),
                    'WXKF_RUN_MS': str(run_ms), 'WXKF_OUT': summary_path,
                    'WXKF_USERS': str(USERS),
                    'WXKF_START_DELAY_MS': str(start_delay)})
        env.pop('WXKF_POOL', None)
        threads = min(WRK_THREADS, conns)
        pool_prefix = None
        if mode == 'safe':
            pool_prefix = os.path.join(self.out, 'pool-%02d' % run)
            t0 = time.monotonic()
            self.make_pool(pool_prefix, pool_size, run, threads)
            env['WXKF_POOL'] = pool_prefix
            gen_s = time.monotonic() - t0
        env['WXKF_TOKEN'] = self.st.token
        cmd = ['wrk', '-t%d' % threads, '-c%d' % conns,
               '-d%ds' % wrk_s, '--timeout', '%ds' % WRK_TIMEOUT_S,
               '-s', LUA, self.st.base]
        pids_before = self.workers()
        self.st.redis.config_resetstat()     # also zeroes total_forks
        info0 = self.redis_info()
        la0 = loadavg()
        cpu0, _ = self.cpu_sample()
        raw = open(os.path.join(self.out, name + '.txt'), 'w')
        p = subprocess.Popen(cmd, stdout=raw, stderr=subprocess.STDOUT,
                             env=env, stdin=subprocess.DEVNULL, cwd=HERE)
        ru = None
        deadline = time.monotonic() + wrk_s + 30
        while time.monotonic() < deadline:
            wpid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if wpid:
                p.returncode = os.waitstatus_to_exitcode(status)
                break
            time.sleep(0.05)
        else:
            p.kill()
            _, status, ru = os.wait4(p.pid, 0)
            p.returncode = -9
        cpu1, _ = self.cpu_sample()
        la1 = loadavg()
        raw.close()
        rstats = self.redis_ingest_stats()
        forks = self.redis_forks()
        info1 = self.redis_info()
        cmdstats = self.redis_cmdstats()
        if pool_prefix:
            for t in range(threads):
                try:
                    os.unlink('%s.%d' % (pool_prefix, t))
                except FileNotFoundError:
                    pass
        if p.returncode != 0 or not os.path.exists(summary_path):
            raise SetupError('wrk failed (rc %s), see %s.txt'
                             % (p.returncode, name))
        with open(summary_path) as f:
            s = json.load(f)
        secs = run_ms / 1000.0
        wall = cpu1['t'] - cpu0['t']
        res = {
            'run': run, 'name': name, 'kind': kind, 'mode': mode,
            'workers': n_workers, 'conns': conns, 'record': record,
            'variant': variant,
            'run_s': secs, 'requests': s['requests'], 'sent': s['sent'],
            'rps': s['requests'] / secs,
            'p50_ms': s['latency_us']['50'] / 1000.0,
            'p90_ms': s['latency_us']['90'] / 1000.0,
            'p99_ms': s['latency_us']['99'] / 1000.0,
            'max_ms': s['latency_us']['max'] / 1000.0,
            'errors': s['errors'], 'late_ms': s['late_ms'],
            'exhausted': s['exhausted'], 'loadavg': [la0, la1],
            'restarted': sorted(set(pids_before) - set(self.workers())),
        }
        if mode == 'safe':
            res['pool'] = pool_size
            res['pool_gen_s'] = round(gen_s, 2)
        # CPU: cores used during the wrk process's life, per component.
        cpu = {k: (cpu1[k] - cpu0[k]) / wall for k in COMPONENTS}
        cpu['wrk'] = (ru.ru_utime + ru.ru_stime) / wall if ru else 0.0
        busy = (cpu1['busy'] - cpu0['busy']) / wall
        cpu['other'] = max(0.0, busy - sum(cpu.values()))
        cpu['machine'] = busy
        res['cpu_cores'] = {k: round(v, 3) for k, v in cpu.items()}
        res['redis_forks'] = forks      # AOF rewrites started in the run
        if s['requests']:
            res['us_per_req'] = {
                k: round(v * wall * 1e6 / s['requests'], 1)
                for k, v in cpu.items() if k not in ('other', 'machine')}
            res['worker_us_per_req'] = res['us_per_req']['workers']
        if rstats and kind == 'wxkf':
            calls = sum(v['calls'] for v in rstats.values())
            usec = sum(v['usec'] for v in rstats.values())
            res['redis_script_calls'] = calls
            res['redis_us_per_call'] = round(usec / calls, 1) if calls \
                else None
        if kind == 'wxkf':
            res['redis'] = self.redis_costs(info0, info1, cmdstats,
                                            s['requests'])
        problems = []
        e = s['errors']
        if any(e.values()):
            problems.append('wrk errors %r' % (e,))
        if sum(s['sent']) != s['requests']:
            problems.append('%d callbacks sent, %d answered'
                            % (sum(s['sent']), s['requests']))
        if s['exhausted']:
            problems.append('the safe-mode pool (%d) ran out' % pool_size)
        if s['late_ms'] > 100:
            problems.append('a wrk thread started %.0f ms late'
                            % s['late_ms'])
        if res['restarted']:
            problems.append('workers restarted: %r' % res['restarted'])
        res['noisy'] = cpu['other'] > NOISY_CORES
        res['waited_s'] = round(waited, 1)
        res['problems'] = problems
        for pr in problems:
            self.failures.append('%s: %s' % (name, pr))
        if record:
            self.runs.append(res)
        else:
            self.warmups = getattr(self, 'warmups', []) + [res]
        u = res.get('us_per_req', {})
        log('  %-32s %6.0f req/s  p50 %6.2f  p99 %6.2f ms  µs/req: worker '
            '%5.1f nginx %5.1f redis %5.1f wrk %4.1f; rest %.2f cores%s'
            % (name, res['rps'], res['p50_ms'], res['p99_ms'],
               u.get('workers', 0), u.get('nginx', 0), u.get('redis', 0),
               u.get('wrk', 0), cpu['other'],
               ('  ! ' + '; '.join(problems)) if problems else '') +
            ('  (machine busy)' if res['noisy'] else ''))
        return res

    # --- the archiver --------------------------------------------------------

    def stream_added(self):
        try:
            return int(self.st.redis.xinfo_stream(self.st.stream)
                       ['entries-added'])
        except Exception:      # noqa: BLE001 - no stream yet
            return 0

    def archiver_done(self):
        r = self.st.redis
        try:
            groups = r.xinfo_groups(self.st.stream)
        except Exception:      # noqa: BLE001
            return False
        for g in groups:
            if g['name'] == 'archiver':
                if g['pending']:
                    return False
                return not r.xrange(self.st.stream,
                                    '(' + g['last-delivered-id'], '+',
                                    count=1)
        return False

    def drain(self, label):
        """Starts `wxkf jobs` on the backlog the loads left and times it
        until the archiver has nothing pending or undelivered."""
        added = self.stream_added()
        n = added - self.next_drain_from
        env = dict(os.environ)
        env.pop('WXKF_BIN', None)
        env.pop('WXKF_CONF', None)
        env['WXKF_PUSH_URL'] = ''     # the archiver alone (no Nchan push)
        logf = open(os.path.join(self.st.dir, 'logs', 'jobs.log'), 'ab')
        pg0 = self.pg_sizes()
        t0 = time.monotonic()
        self.jobs = subprocess.Popen([self.bin, 'jobs', '-c', self.st.conf],
                                     stdin=subprocess.DEVNULL, stdout=logf,
                                     stderr=logf, env=env)
        try:
            wait_until(self.archiver_done, self.a.drain_timeout, 0.02,
                       'the archiver to drain %d entries' % n)
            took = time.monotonic() - t0
        finally:
            self.jobs.send_signal(signal.SIGTERM)
            try:
                self.jobs.wait(15)
            except subprocess.TimeoutExpired:
                self.jobs.kill()
                self.jobs.wait(5)
            self.jobs = None
            logf.close()
        self.next_drain_from = added
        # The archiver's PostgreSQL backend reports its rows when it ends,
        # which is shortly after `wxkf jobs` (bounded).
        pg1 = None
        for _ in range(20):
            pg1 = self.pg_sizes()
            if not pg0 or not pg1 or pg1['rows'] - pg0['rows'] >= n:
                break
            time.sleep(0.25)
        d = {'label': label, 'entries': n, 'seconds': round(took, 2),
             'per_s': round(n / took) if took else None,
             'loadavg': loadavg(), 'pg': self.pg_delta(pg0, pg1, n)}
        self.drains.append(d)
        pg = d['pg'] or {}
        log('  drain %-24s %8d entries in %6.2f s: %7.0f entries/s; per '
            'entry: %s rows, %s B database (messages %s B), %s B WAL'
            % (label, n, took, d['per_s'] or 0, pg.get('rows_per_entry'),
               pg.get('db_bytes_per_entry'),
               pg.get('tables', {}).get('messages', {}).get(
                   'bytes_per_entry'), pg.get('wal_bytes_per_entry')))
        return d

    # --- PostgreSQL: what archiving costs -------------------------------------

    def pg_connect(self):
        import psycopg2
        conn = psycopg2.connect(host='127.0.0.1', port=self.st.pg_port,
                                dbname='wxkf', user='wxkf', connect_timeout=5)
        conn.autocommit = True
        return conn

    def pg_sizes(self):
        """Sizes (tables with their indexes and TOAST; the partitions of
        `messages` summed), rows inserted (pg_stat_user_tables), the database
        and the WAL position. None if PostgreSQL does not answer."""
        try:
            conn = self.pg_connect()
        except Exception as e:     # noqa: BLE001
            log('bench: PostgreSQL sizes: %s' % e)
            return None
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT CASE WHEN t.relid IS NULL THEN s.relname"
                    " ELSE 'messages' END,"
                    " sum(pg_total_relation_size(s.relid)), sum(s.n_tup_ins)"
                    " FROM pg_stat_user_tables s LEFT JOIN"
                    " pg_partition_tree('messages') t ON t.relid = s.relid"
                    " WHERE s.schemaname = 'public' GROUP BY 1")
                tables = {r[0]: {'bytes': int(r[1]), 'rows': int(r[2])}
                          for r in cur.fetchall()}
                cur.execute("SELECT pg_database_size(current_database()),"
                            " pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')")
                db, wal = cur.fetchone()
        finally:
            conn.close()
        return {'tables': tables, 'db_bytes': int(db), 'wal': int(wal),
                'rows': sum(t['rows'] for t in tables.values())}

    @staticmethod
    def pg_delta(p0, p1, n):
        if not p0 or not p1 or not n:
            return None
        tables = {}
        for k, v in p1['tables'].items():
            o = p0['tables'].get(k, {'bytes': 0, 'rows': 0})
            if v['bytes'] != o['bytes'] or v['rows'] != o['rows']:
                tables[k] = {'bytes_per_entry': round((v['bytes'] - o['bytes'])
                                                      / n, 1),
                             'rows_per_entry': round((v['rows'] - o['rows'])
                                                     / n, 3)}
        return {'entries': n,
                'db_bytes_per_entry': round((p1['db_bytes'] - p0['db_bytes'])
                                            / n, 1),
                'wal_bytes_per_entry': round((p1['wal'] - p0['wal']) / n, 1),
                'rows_per_entry': round((p1['rows'] - p0['rows']) / n, 3),
                'tables': tables}

    # --- a Redis replica: the cost of [redis] wait_replicas -------------------

    def start_replica(self):
        """A replica of the stack's Redis on a free loopback port, its data
        under the stack directory, with the master's persistence settings
        (CONFIG GET); returns once it is in sync (bounded)."""
        import redis as redis_lib
        m = self.st.redis
        same = {}
        for k in ('appendonly', 'appendfsync', 'save',
                  'auto-aof-rewrite-percentage', 'auto-aof-rewrite-min-size'):
            same[k] = m.config_get(k).get(k, '')
        d = os.path.join(self.st.dir, 'redis-replica')
        os.makedirs(d, exist_ok=True)
        log_path = os.path.join(d, 'redis.log')

        def spawn(port):
            """The replica on port, once it answers (bounded)."""
            if os.path.exists(log_path):
                os.unlink(log_path)
            cmd = ['redis-server', '--port', str(port), '--bind',
                   '127.0.0.1', '--protected-mode', 'yes', '--dir', d,
                   '--daemonize', 'no', '--logfile', log_path,
                   '--replicaof', '127.0.0.1', str(self.st.redis_port)]
            for k, v in same.items():
                cmd += ['--' + k, v]
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            r = redis_lib.Redis(host='127.0.0.1', port=port,
                                decode_responses=True, socket_timeout=5,
                                socket_connect_timeout=2)

            def answers_or_exited():
                if proc.poll() is not None:
                    return True
                try:
                    return r.ping()
                except redis_lib.RedisError:
                    return False
            try:
                wait_until(answers_or_exited, 10, 0.05, 'the replica')
            except AssertionError as e:
                r.close()
                proc.kill()
                proc.wait(5)
                raise SetupError(str(e)) from None
            if proc.poll() is not None:
                r.close()
                if wxkf_ports.bind_refused(log_path):
                    raise wxkf_ports.PortTaken(port)
                raise SetupError('the replica exited (rc %s), see %s'
                                 % (proc.returncode, log_path))
            return proc, port, r

        # A full sync would otherwise wait 5 s for more replicas (Redis 7's
        # repl-diskless-sync-delay); restored once the replica is in sync.
        delay = m.config_get('repl-diskless-sync-delay').get(
            'repl-diskless-sync-delay', '5')
        m.config_set('repl-diskless-sync-delay', '0')
        t0 = time.monotonic()
        try:
            self.replica, port, self.replica_redis = \
                wxkf_ports.start_on_free_port(spawn)
        except BaseException:
            m.config_set('repl-diskless-sync-delay', delay)
            raise
        self.replica_port = port

        aof = same['appendonly'] == 'yes'

        def in_sync():
            if self.replica.poll() is not None:
                raise SetupError('the replica exited (rc %s), see %s/redis.log'
                                 % (self.replica.returncode, d))
            if self.replica_redis.info('replication').get(
                    'master_link_status') != 'up':
                return False
            s0 = m.info('replication').get('slave0') or {}
            if s0.get('state') != 'online':
                return False
            # After a full sync a replica with the AOF on rewrites it
            # (a fork and a full write): not inside a measured run.
            if int(m.info('persistence').get('aof_rewrite_in_progress', 0)):
                return False
            p = self.replica_redis.info('persistence')
            return not aof or (int(p.get('aof_rewrites', 0)) >= 1 and
                               not int(p.get('aof_rewrite_in_progress', 0))
                               and not int(p.get('aof_rewrite_scheduled', 0)))
        try:
            wait_until(in_sync, 60, 0.1, 'the replica to sync')
        except AssertionError as e:
            raise SetupError(str(e)) from None
        finally:
            m.config_set('repl-diskless-sync-delay', delay)
        log('bench: Redis replica on 127.0.0.1:%d in sync in %.1f s (%s)'
            % (port, time.monotonic() - t0, ', '.join(
                '%s %s' % (k, v or '""') for k, v in same.items())))
        return same

    def stop_replica(self):
        if not self.replica:
            return
        if self.replica_redis:
            try:
                self.replica_redis.close()
            except Exception:      # noqa: BLE001
                pass
            self.replica_redis = None
        stop_pid(self.replica.pid, 'the Redis replica')
        try:
            self.replica.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.replica = None

    def replication(self):
        """The master's INFO replication: replicas, offsets, lag."""
        i = self.st.redis.info('replication')
        s0 = i.get('slave0') or {}
        return {'connected_slaves': int(i.get('connected_slaves', 0)),
                'master_repl_offset': int(i.get('master_repl_offset', 0)),
                'replica_offset': int(s0.get('offset', -1)),
                'replica_state': s0.get('state'),
                'replica_lag_s': s0.get('lag')}

    def metrics(self):
        """From the stack's nginx /metrics (loopback): the callbacks the
        workers answered (wxkf_http_requests_total, route /wechat) and
        wxkf_redis_wait_short_total, summed over every series."""
        import requests
        r = requests.get(self.st.base + '/metrics', timeout=10)
        r.raise_for_status()
        out = {'callbacks': 0, 'wait_short': 0, 'redis_errors': 0}
        for line in r.text.splitlines():
            if line.startswith('#') or ' ' not in line:
                continue
            name, val = line.rsplit(' ', 1)
            base = name.split('{', 1)[0]
            if base == 'wxkf_http_requests_total' and \
                    'route="/wechat"' in name:
                out['callbacks'] += int(float(val))
            elif base == 'wxkf_redis_wait_short_total':
                out['wait_short'] += int(float(val))
            elif base == 'wxkf_redis_errors_total':
                out['redis_errors'] += int(float(val))
        return out

    def metrics_after(self, m0, answered):
        """/metrics once every worker has flushed the run (each flushes
        within about a second, between requests or when idle): bounded."""
        last = None

        def flushed():
            nonlocal last
            last = self.metrics()
            return last['callbacks'] - m0['callbacks'] >= answered
        try:
            wait_until(flushed, 10, 0.25, 'the workers\' metrics')
        except AssertionError:
            log('bench: /metrics shows %s callbacks of %d after 10 s'
                % (last and last['callbacks'] - m0['callbacks'], answered))
        return last

    def wait_runs(self, n, c):
        """[redis] wait_replicas = 1 against plain, with a replica attached,
        all at n workers and c connections, in the order plain, wait, wait,
        plain, plain, wait, wait, plain (the workers restarted with
        WXKF_REDIS_WAIT_REPLICAS=1 set, then unset, and a short warm-up run
        after each restart): the means of the wait and of the plain runs
        cancel a load that drifts linearly, and the runs are short and
        interleaved because other work on a shared machine comes in bursts.
        Checks that WAIT really confirmed: WAIT called once per callback,
        wxkf_redis_wait_short_total unchanged, the replica at the master's
        offset after each run."""
        a = self.a
        log('bench: [redis] wait_replicas = 1, %d workers, %d conns' % (n, c))
        same = self.start_replica()
        w = {'workers': n, 'conns': c, 'replica_config': same, 'runs': []}
        self.wait = w
        env_key = 'WXKF_REDIS_WAIT_REPLICAS'
        try:
            prev = None
            for variant in ('replica', 'wait', 'wait', 'replica') * 2:
                if variant == 'wait':
                    os.environ[env_key] = '1'
                else:
                    os.environ.pop(env_key, None)
                if variant != prev:
                    self.use_wxkf(n, force=True)
                    self.wrk('wxkf', n, c, 2, record=False, variant=variant)
                prev = variant
                m0 = self.metrics()
                r = self.wrk('wxkf', n, c, a.wait_duration, variant=variant)
                m1 = self.metrics_after(m0, r['requests'])

                def caught_up():
                    x = self.replication()
                    return x if x['replica_offset'] == \
                        x['master_repl_offset'] else None
                try:
                    rep = wait_until(caught_up, 10, 0.05,
                                     'the replica to catch up')
                except AssertionError:
                    rep = self.replication()
                calls = (r.get('redis') or {}).get('cmds', {})
                r['wait_check'] = {
                    'wait_calls': calls.get('wait', 0),
                    'wait_short': m1['wait_short'] - m0['wait_short'],
                    'metrics_callbacks': m1['callbacks'] - m0['callbacks'],
                    'redis_errors': m1['redis_errors'] - m0['redis_errors'],
                    'replication': rep}
                log('    WAIT calls %d for %d callbacks, wait_short +%d, '
                    'redis errors +%d; replicas %d, offset %d/%d (lag %s s)'
                    % (calls.get('wait', 0), r['requests'],
                       r['wait_check']['wait_short'],
                       r['wait_check']['redis_errors'],
                       rep['connected_slaves'], rep['replica_offset'],
                       rep['master_repl_offset'], rep['replica_lag_s']))
                w['runs'].append(r['run'])
        finally:
            os.environ.pop(env_key, None)
            self.use_wxkf(n, force=True)
            self.stop_replica()

    def wait_summary(self):
        """(plain runs, wait run, ratios) of the wait_replicas comparison."""
        if not self.wait:
            return None
        runs = [r for r in self.runs if r['run'] in self.wait['runs']]
        plain = [r for r in runs if r['variant'] == 'replica']
        wait = [r for r in runs if r['variant'] == 'wait']
        if not plain or not wait:
            return None

        def mean(rs, k):
            return sum(r[k] for r in rs) / len(rs)
        cks = [r.get('wait_check', {}) for r in wait]
        calls = sum(ck.get('wait_calls', 0) for ck in cks)
        short = sum(ck.get('wait_short', 0) for ck in cks)
        answered = sum(r['requests'] for r in wait)
        confirmed = (calls >= answered > 0 and short <= 0.001 * answered and
                     all(ck.get('replication', {}).get('connected_slaves') ==
                         1 and ck.get('wait_short', -1) >= 0 for ck in cks))
        out = {'runs': runs, 'plain': plain, 'waits': wait,
               'wait_calls': calls, 'wait_short': short,
               'answered': answered, 'confirmed': confirmed}
        for r in runs:      # CPU of everything on the path, wrk included
            r['path_us'] = round(sum(r.get('us_per_req', {}).get(k, 0) for k
                                     in COMPONENTS + ('wrk',)), 1)
        for k, key in (('rps', 'rps'), ('p50', 'p50_ms'), ('p99', 'p99_ms'),
                       ('cpu', 'path_us')):
            out['plain_' + k] = mean(plain, key)
            out['wait_' + k] = mean(wait, key)
            out[k] = out['wait_' + k] / out['plain_' + k]
        # Each wait run against the plain run next to it (P W | W P | ...).
        pairs = []
        for i in range(0, len(runs) - 1, 2):
            x, y = runs[i], runs[i + 1]
            if {x['variant'], y['variant']} == {'replica', 'wait'}:
                p_, w_ = (x, y) if x['variant'] == 'replica' else (y, x)
                pairs.append(w_['rps'] / p_['rps'])
        out['pair_rps'] = sorted(pairs)
        for k in ('workers', 'nginx', 'redis', 'replica'):
            for name, rs in (('plain', plain), ('wait', wait)):
                out['%s_us_%s' % (name, k)] = round(sum(
                    r.get('us_per_req', {}).get(k, 0) for r in rs) / len(rs),
                    1)
        return out

    # --- what one callback costs ----------------------------------------------

    def sample_key(self, pattern):
        """One key matching pattern (SCAN, bounded), or None."""
        cur = 0
        for _ in range(50):
            cur, keys = self.st.redis.scan(cur, match=pattern, count=1000)
            if keys:
                return keys[0]
            if not cur:
                break
        return None

    def cost_run(self, n, c):
        """A short run for the capacity model (docs/scaling.md): per
        callback, Redis commands (INFO commandstats), Redis CPU (INFO cpu),
        AOF bytes (AOF rewrites held off during the run, so that
        aof_current_size only grows), Redis memory, and the stream entry."""
        r = self.st.redis
        log('bench: cost per callback, %d workers, %d conns' % (n, c))
        self.use_wxkf(n)
        pct = r.config_get('auto-aof-rewrite-percentage').get(
            'auto-aof-rewrite-percentage', '100')
        r.config_set('auto-aof-rewrite-percentage', '0')
        try:
            wait_until(lambda: not int(r.info('persistence').get(
                'aof_rewrite_in_progress', 0)), 60, 0.1,
                'an AOF rewrite to end')
            stream = self.st.stream
            x0 = r.xlen(stream)
            mem0 = r.memory_usage(stream, samples=0) or 0
            res = self.wrk('wxkf', n, c, self.a.cost_duration,
                           variant='cost')
            x1 = r.xlen(stream)
            mem1 = r.memory_usage(stream, samples=0) or 0
            ents = r.xrevrange(stream, '+', '-', count=1000)
            dedupe = self.sample_key(self.st.dedupe_prefix + '*')
            dedupe_mem = r.memory_usage(dedupe) if dedupe else None
        finally:
            r.config_set('auto-aof-rewrite-percentage', pct)
        fields = [sum(len(k.encode()) + len(v.encode())
                      for k, v in f.items()) for _, f in ents]
        cost = dict(res.get('redis') or {})
        cost.update({
            'run': res['run'], 'rps': res['rps'], 'workers': n, 'conns': c,
            'us_per_req': res.get('us_per_req'),
            'stream_entries': x1 - x0,
            'stream_mem_per_entry': round((mem1 - mem0) / (x1 - x0), 1)
            if x1 > x0 else None,
            'stream_field_bytes': round(sum(fields) / len(fields), 1)
            if fields else None,
            'stream_fields': len(ents[0][1]) if ents else None,
            'dedupe_key_mem': dedupe_mem})
        self.cost = cost
        log('    per callback: %s top-level + %s in scripts Redis commands, '
            'Redis CPU %s µs (INFO cpu), AOF %s B, memory %s B; stream entry '
            '%s B of fields, %s B in memory'
            % (cost.get('top_level_per_cb'), cost.get('in_scripts_per_cb'),
               cost.get('cpu_us'), cost.get('aof_bytes'),
               cost.get('mem_bytes'), cost['stream_field_bytes'],
               cost['stream_mem_per_entry']))
        return cost

    # --- the checks ------------------------------------------------------------

    def rss_sample(self, label):
        out = []
        for pid in self.workers():
            rss, hwm = proc_status(pid, 'VmRSS'), proc_status(pid, 'VmHWM')
            if rss is not None:
                out.append({'pid': pid, 'rss_kib': rss, 'hwm_kib': hwm})
        self.rss[label] = out
        if out:
            log('  worker RSS %-14s %s MiB (peak %s)' % (
                label, ' '.join('%.1f' % (w['rss_kib'] / 1024) for w in out),
                max(w['hwm_kib'] for w in out) / 1024))
        return out

    def check_archive(self):
        """Every callback sent by a wxkf run was answered 2xx (wrk: no
        errors, requests == sent) and is archived exactly once: per run and
        wrk thread, the MsgIds "7 RRR TT counter" with counter 1 .. sent
        are all there, each once, and nothing else is."""
        import psycopg2
        conn = psycopg2.connect(host='127.0.0.1', port=self.st.pg_port,
                                dbname='wxkf', user='wxkf', connect_timeout=5)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT substr(msgid, 2, 5), count(*),"
                    " count(DISTINCT msgid),"
                    " min(substr(msgid, 7)::bigint),"
                    " max(substr(msgid, 7)::bigint)"
                    " FROM messages WHERE direction = 'i'"
                    " AND msgid LIKE '7%%' AND length(msgid) = 19"
                    " GROUP BY 1")
                got = {r[0]: r[1:] for r in cur.fetchall()}
                cur.execute("SELECT count(*) FROM archive_rejects")
                rejects = cur.fetchone()[0]
                cur.execute("SELECT msgid, count(*) FROM messages WHERE"
                            " direction = 'i' GROUP BY msgid"
                            " HAVING count(*) > 1 LIMIT 5")
                dups = cur.fetchall()
        finally:
            conn.close()
        expected = {}
        acked = 0
        for r in self.runs + getattr(self, 'warmups', []):
            if r['kind'] != 'wxkf':
                continue
            for t, sent in enumerate(r['sent']):
                if sent:
                    expected['%03d%02d' % (r['run'] % 1000, t)] = (sent, r)
            if not r['errors']['status'] and \
                    r['requests'] == sum(r['sent']):
                acked += r['requests']
        lost = doubled = archived = 0
        bad = []
        for k, (sent, r) in expected.items():
            n, distinct, lo, hi = got.pop(k, (0, 0, None, None))
            archived += n
            doubled += n - distinct
            if distinct != sent or lo != 1 or hi != sent:
                lost += max(0, sent - distinct)
                bad.append('%s thread %s: sent 1..%d, archived %d '
                           '(%d distinct, %s..%s)' % (r['name'], k[3:], sent,
                                                      n, distinct, lo, hi))
        stray = sum(v[0] for v in got.values())
        c = {'acked': acked, 'archived': archived, 'lost': lost,
             'doubled': doubled, 'stray': stray, 'rejects': rejects,
             'duplicate_msgids': len(dups), 'details': bad[:10]}
        self.checks.append(c)
        ok = not (lost or doubled or stray or rejects or dups or bad)
        log('bench: archive check: %d callbacks acknowledged (2xx), %d '
            'archived: %d lost, %d doubled, %d unexpected, %d rejects -> %s'
            % (acked, archived, lost, doubled, stray, rejects,
               'OK' if ok else 'FAILED'))
        for b in bad[:10]:
            log('  ' + b)
        if not ok:
            self.failures.append('archive check: %r' % (c,))
        return c

    def check_sessions(self):
        """5 agents with room for everyone: every user who wrote has a
        session with an agent, so the agents' loads add up to the users
        (user = counter % 10,000, the same in every run and thread)."""
        r = self.st.redis
        p = 'wxkf:{%s}:' % self.st.app_id
        most = max([s for x in self.runs + getattr(self, 'warmups', [])
                    if x['kind'] == 'wxkf' for s in x['sent']] or [0])
        users = min(USERS, most)
        loads = {a: r.scard(p + 'load:' + a)
                 for a in sorted(r.smembers(p + 'online'))}
        total = sum(loads.values())
        log('bench: agents\' loads %s = %d (users who wrote: %d)'
            % (' '.join('%s=%d' % kv for kv in loads.items()), total, users))
        if total != users:
            self.failures.append('agents\' loads sum to %d, not %d'
                                 % (total, users))
        return loads

    # --- the whole thing -----------------------------------------------------

    def run(self):
        a = self.a
        t_start = time.monotonic()
        if a.nice:
            # Inherited by everything started from here on: the stack
            # (Redis, PostgreSQL, nginx, the workers), wrk and `wxkf jobs`.
            os.setpriority(os.PRIO_PROCESS, 0, a.nice)
            log('bench: running at nice %d' % os.getpriority(
                os.PRIO_PROCESS, 0))
        self.preflight()
        self.build_bare()
        self.start_stack()
        self.add_agents()
        self.started_at = datetime.datetime.now(datetime.timezone.utc)
        if a.profile:
            self.profile()
            self.elapsed = time.monotonic() - t_start
            self.missed = []
            return
        hi = max(a.conns)
        for n in a.workers:
            # wxkf and the ceiling alternate so that each comparison is made
            # between neighbouring runs: wxkf (lo), bare (lo, hi), wxkf (hi)
            # -- the machine may be shared, and its load drifts.
            log('bench: %d workers' % n)
            self.use_wxkf(n)
            self.wrk('wxkf', n, hi, a.warmup, record=False)
            for c in [x for x in a.conns if x != hi]:
                self.wxkf_runs(n, c)
            self.use_bare(n)
            self.wrk('bare', n, hi, 2, record=False)
            for c in a.conns:
                self.wrk('bare', n, c, a.duration)
            self.use_wxkf(n)
            self.wrk('wxkf', n, hi, 2, record=False)
            self.wxkf_runs(n, hi)
            self.rss_sample('%d workers' % n)
            self.drain('after %d workers' % n)
        # Extras at the largest worker count and connections: the cost of one
        # callback (for docs/scaling.md), then [redis] wait_replicas = 1.
        n = max(a.workers)
        if not a.no_cost:
            self.cost_run(n, hi)
        if not a.no_wait:
            self.wait_runs(n, hi)
        if not (a.no_cost and a.no_wait):
            self.drain('after the cost and wait runs')
        self.check_archive()
        self.check_sessions()
        self.elapsed = time.monotonic() - t_start
        self.report()

    def profile(self):
        """--profile: where a callback's time goes. A system-wide perf
        profile (cpu-clock samples; the VM has no hardware counters) of
        wxkf at 2 workers and 64 connections, then callgrind on one worker
        under a light load (instructions by function, inclusive)."""
        a = self.a
        n, c = a.workers[0], max(a.conns)
        self.use_wxkf(n)
        self.wrk('wxkf', n, c, a.warmup, record=False)
        perf = shutil.which('perf')
        if perf:
            data = os.path.join(self.out, 'perf.data')
            env = dict(os.environ, GH=self.st.original_id, WXKF_RUN='990',
                       WXKF_TOKEN=self.st.token)
            env.pop('WXKF_RUN_MS', None)
            env.pop('WXKF_POOL', None)
            w = subprocess.Popen(['wrk', '-t%d' % WRK_THREADS, '-c%d' % c,
                                  '-d%ds' % (a.profile_s + 6), '-s', LUA,
                                  self.st.base], env=env,
                                 stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL,
                                 stdin=subprocess.DEVNULL)
            try:
                time.sleep(2)
                # Only this stack's processes (other work on the machine
                # may run programs of the same names).
                _, pids = self.cpu_sample()
                ours = pids['workers'] + pids['nginx'] + pids['redis']
                r = subprocess.run([perf, 'record', '-q', '-e', 'cpu-clock',
                                    '-F', '1999', '-o', data, '-p',
                                    ','.join(map(str, ours)), '--', 'sleep',
                                    str(a.profile_s)],
                                   capture_output=True, text=True,
                                   timeout=a.profile_s + 60)
                if r.returncode != 0:
                    log('bench: perf record failed: ' + r.stderr[-500:])
                st = shutil.which('strace')
                if st and pids['workers']:
                    # Syscalls of one worker per request.
                    so = os.path.join(self.out, 'strace-worker.txt')
                    subprocess.run(['timeout', '-s', 'INT', '2', st, '-c',
                                    '-o', so, '-p', str(pids['workers'][0])],
                                   capture_output=True, timeout=30)
            finally:
                w.wait(a.profile_s + 30)
            for name, sort in (('perf-comm.txt', 'comm'),
                               ('perf-dso.txt', 'comm,dso'),
                               ('perf-symbols.txt', 'comm,dso,symbol')):
                with open(os.path.join(self.out, name), 'w') as f:
                    subprocess.run([perf, 'report', '-i', data, '--stdio',
                                    '--no-children', '--sort', sort,
                                    '--percent-limit', '0.2'], stdout=f,
                                   stderr=subprocess.DEVNULL, timeout=300)
            log('bench: perf reports in %s/perf-*.txt' % self.out)
        vg = shutil.which('valgrind')
        if vg:
            self.stop_pool()
            out = os.path.join(self.out, 'callgrind.out.%p')
            for f in os.listdir(self.out):
                if f.startswith('callgrind.out.'):
                    os.unlink(os.path.join(self.out, f))
            sockopts = ['-M', '0660', '-G', 'nogroup'] if os.getuid() == 0 \
                else ['-M', '0600']
            pidf = os.path.join(self.rdir, 'bare.pid')
            env = dict(os.environ)
            env.pop('WXKF_BIN', None)
            env.pop('WXKF_CONF', None)
            r = subprocess.run(['spawn-fcgi', '-s', self.sock] + sockopts +
                               ['-P', pidf, '--', '/usr/bin/multiwatch',
                                '-f', '1', '-s', 'TERM', '--', vg,
                                '--tool=callgrind', '--callgrind-out-file='
                                + out, self.bin, 'fcgi', '-c', self.st.conf],
                               capture_output=True, text=True, timeout=30,
                               env=env, stdin=subprocess.DEVNULL)
            if r.returncode != 0:
                raise SetupError('spawn-fcgi (callgrind): ' + r.stderr)
            self.bare_pid = read_pid(pidf)
            time.sleep(3)           # valgrind starts slowly
            self.wrk('callgrind', 1, 2, a.profile_s, record=False)
            stop_pid(self.bare_pid, 'callgrind worker', timeout=60)
            self.bare_pid = None
            files = [f for f in os.listdir(self.out)
                     if f.startswith('callgrind.out.')]
            for f in files:
                path = os.path.join(self.out, f)
                for name, inc in (('callgrind-inclusive.txt', 'yes'),
                                  ('callgrind-self.txt', 'no')):
                    with open(os.path.join(self.out, name), 'w') as o:
                        subprocess.run(['callgrind_annotate',
                                        '--inclusive=' + inc,
                                        '--threshold=99', path], stdout=o,
                                       stderr=subprocess.DEVNULL, timeout=120)
            log('bench: callgrind reports in %s/callgrind-*.txt' % self.out)
            self.use_wxkf(n)

    def wxkf_runs(self, n, c):
        """Plaintext, then safe mode with a pool sized from it."""
        plain = self.wrk('wxkf', n, c, self.a.duration)
        if not self.a.no_safe:
            size = int(plain['rps'] * self.a.duration * 1.4) + 5000
            self.wrk('wxkf', n, c, self.a.duration, mode='safe',
                     pool_size=size)

    def stop(self):
        if self.jobs and self.jobs.poll() is None:
            self.jobs.kill()
            self.jobs.wait(5)
        self.stop_replica()
        if self.bare_pid:
            stop_pid(self.bare_pid, 'bare multiwatch')
            self.bare_pid = None
        if self.st and self.st.started:
            r = self.st.stop()
            if r is not None and r.returncode != 0:
                log('bench: stack.sh stop rc %d: %s' % (r.returncode,
                                                        r.stderr[-500:]))
            if self.failures or self.a.keep:
                self.st.failed = True     # keep the directory
            self.st.cleanup()

    # --- results ---------------------------------------------------------------

    def find(self, kind, mode, n, c, variant=None):
        for r in self.runs:
            if (r['kind'], r['mode'], r['workers'], r['conns'],
                    r.get('variant')) == (kind, mode, n, c, variant):
                return r
        return None

    def targets(self):
        a, out = self.a, []
        c = max(a.conns)
        for n in a.workers:
            w, b = self.find('wxkf', 'plain', n, c), self.find('bare', 'plain',
                                                                n, c)
            if w and b:
                out.append(('%d workers, %d conns: wxkf / bare >= %.0f%%'
                            % (n, c, T_CEILING * 100),
                            '%.0f%%' % (100 * w['rps'] / b['rps']),
                            w['rps'] >= T_CEILING * b['rps']))
            if w:
                out.append(('%d workers, %d conns: p99 <= %.0f ms'
                            % (n, c, T_P99_MS), '%.2f ms' % w['p99_ms'],
                            w['p99_ms'] <= T_P99_MS))
            s = self.find('wxkf', 'safe', n, c)
            if w and s:
                out.append(('%d workers, %d conns: safe >= %.0f%% of plain'
                            % (n, c, 100 - T_SAFE * 100),
                            '%.0f%%' % (100 * s['rps'] / w['rps']),
                            s['rps'] >= (1 - T_SAFE) * w['rps']))
        rss = [w['rss_kib'] for v in self.rss.values() for w in v]
        if rss:
            out.append(('worker RSS <= %.0f MiB' % T_RSS_MIB,
                        '%.1f MiB' % (max(rss) / 1024),
                        max(rss) <= T_RSS_MIB * 1024))
        errs = sum(sum(r['errors'].values()) for r in self.runs
                   if r['kind'] == 'wxkf')
        out.append(('zero errors (wxkf runs)', str(errs), errs == 0))
        ck = self.checks[-1] if self.checks else None
        if ck:
            out.append(('zero lost', str(ck['lost']), ck['lost'] == 0 and
                        not ck['details']))
            out.append(('zero duplicated', str(ck['doubled']),
                        ck['doubled'] == 0 and not ck['duplicate_msgids']))
        ws = self.wait_summary()
        if ws:
            # Informational (None): recorded, never a miss.
            out.append(('wait_replicas=1 cost (%d w, %d c; wait / plain)'
                        % (self.wait['workers'], self.wait['conns']),
                        'req/s %.0f%%, p50 x%.2f, p99 x%.2f, CPU/cb x%.2f'
                        % (100 * ws['rps'], ws['p50'], ws['p99'], ws['cpu']),
                        None))
            out.append(('wait_replicas=1: WAIT confirmed (wait_short ~0)',
                        'WAIT %d/%d, short +%d' % (
                            ws['wait_calls'], ws['answered'],
                            ws['wait_short']), ws['confirmed']))
        out.append(('make bench under 10 min (this script)',
                    '%.0f s' % self.elapsed, self.elapsed < 600))
        return out

    def wait_md(self):
        ws = self.wait_summary()
        if not ws:
            return ''
        rows = ['| run | req/s | p50 | p99 | workers µs/req | Redis µs/req | '
                'replica µs/req | Redis µs/req (INFO cpu) | WAIT calls | '
                'wait_short | replica offset / master | AOF rewrites |',
                '|---|---|---|---|---|---|---|---|---|---|---|---|']
        for r in ws['runs']:
            u, ck = r.get('us_per_req', {}), r.get('wait_check', {})
            rp = ck.get('replication', {})
            rows.append('| %s | %.0f%s | %.2f ms | %.2f ms | %s | %s | %s '
                        '| %s | %d | %d | %s / %s | %d |' % (
                            r['name'], r['rps'], '*' if r['noisy'] else '',
                            r['p50_ms'], r['p99_ms'], u.get('workers', '–'),
                            u.get('redis', '–'), u.get('replica', '–'),
                            (r.get('redis') or {}).get('cpu_us', '–'),
                            ck.get('wait_calls', 0), ck.get('wait_short', -1),
                            rp.get('replica_offset'),
                            rp.get('master_repl_offset'), r['redis_forks']))
        rows += ['', 'wait / plain (means of the wait runs and of the plain '
                 'runs around them, the same replica attached to both): '
                 'req/s %.0f%% (%.0f against %.0f; each wait run against its '
                 'plain neighbour: %s), p50 x%.2f (%.2f against %.2f ms), p99 '
                 'x%.2f (%.2f against %.2f ms); CPU per callback of the whole '
                 'path (workers, nginx, Redis, replica, PostgreSQL, wrk) '
                 'x%.2f (%.0f against %.0f µs): workers %.0f against %.0f, nginx %.0f '
                 'against %.0f, Redis %.0f against %.0f, replica %.0f against '
                 '%.0f µs. WAIT confirmed every callback: %s (%d WAIT for %d '
                 'callbacks, wxkf_redis_wait_short_total +%d).' % (
                     100 * ws['rps'], ws['wait_rps'], ws['plain_rps'],
                     ', '.join('%.0f%%' % (100 * x) for x in ws['pair_rps']),
                     ws['p50'], ws['wait_p50'], ws['plain_p50'],
                     ws['p99'], ws['wait_p99'], ws['plain_p99'],
                     ws['cpu'], ws['wait_cpu'], ws['plain_cpu'],
                     ws['wait_us_workers'], ws['plain_us_workers'],
                     ws['wait_us_nginx'], ws['plain_us_nginx'],
                     ws['wait_us_redis'], ws['plain_us_redis'],
                     ws['wait_us_replica'], ws['plain_us_replica'],
                     'yes' if ws['confirmed'] else '**no**', ws['wait_calls'],
                     ws['answered'], ws['wait_short'])]
        return '\n'.join(rows)

    def cost_md(self):
        c = self.cost
        if not c:
            return ''
        u = c.get('us_per_req') or {}
        out = ['Run %d: %d workers, %d conns, %.0f req/s, AOF rewrites held '
               'off (auto-aof-rewrite-percentage 0 during the run).' % (
                   c['run'], c['workers'], c['conns'], c['rps']), '',
               '| per callback | |', '|---|---|',
               '| Redis commands, top level (EVALSHA; + metrics flushes) | '
               '%s |' % c.get('top_level_per_cb'),
               '| Redis commands inside the scripts | %s |'
               % c.get('in_scripts_per_cb'),
               '| Redis CPU, INFO cpu (sys+user, whole process) | %s µs |'
               % c.get('cpu_us'),
               '| Redis CPU, main thread | %s µs |' % c.get('cpu_main_us'),
               '| Redis CPU, /proc | %s µs |' % u.get('redis', '–'),
               '| workers / nginx CPU, /proc | %s / %s µs |'
               % (u.get('workers', '–'), u.get('nginx', '–')),
               '| AOF bytes (aof_current_size) | %s B |' % c.get('aof_bytes'),
               '| Redis memory (used_memory) | %s B |' % c.get('mem_bytes'),
               '| events stream entry: fields | %s B (%s fields) |'
               % (c.get('stream_field_bytes'), c.get('stream_fields')),
               '| events stream entry: Redis memory | %s B |'
               % c.get('stream_mem_per_entry'),
               '| a dedupe key (MEMORY USAGE; kept [wechat] dedupe_ttl) | '
               '%s B |' % c.get('dedupe_key_mem'), '',
               'Commands per callback (INFO commandstats; a script\'s '
               'commands count under their own names): ' + ', '.join(
                   '%s %s' % (k.upper(), v) for k, v in
                   (c.get('per_cb') or {}).items() if v >= 0.001) + '.']
        return '\n'.join(out)

    def redis_md(self):
        rows = ['| run | req/s | commands in scripts / cb | Redis CPU µs/cb '
                '(INFO cpu) | AOF B/cb | replication B/cb | memory B/cb | '
                'AOF rewrites |', '|---|---|---|---|---|---|---|---|']
        for r in self.runs:
            c = r.get('redis')
            if not c:
                continue
            rows.append('| %s | %.0f | %s | %s | %s | %s | %s | %d |' % (
                r['name'], r['rps'], c['in_scripts_per_cb'], c['cpu_us'],
                c['aof_bytes'] if c['aof_bytes'] is not None else '–',
                c.get('repl_bytes', '–'), c['mem_bytes'], c['aof_rewrites']))
        return '\n'.join(rows)

    def table_md(self):
        rows = ['| workers | conns | bare req/s | bare p50 | bare p99 | '
                'wxkf req/s | p50 | p99 | ratio | safe req/s | safe p50 | '
                'safe p99 | safe/plain |',
                '|---|---|---|---|---|---|---|---|---|---|---|---|---|']
        for n in self.a.workers:
            for c in self.a.conns:
                b = self.find('bare', 'plain', n, c)
                w = self.find('wxkf', 'plain', n, c)
                s = self.find('wxkf', 'safe', n, c)

                def f(r, k, fmt):
                    if not r:
                        return '–'
                    return fmt % r[k] + ('*' if k == 'rps' and r['noisy']
                                         else '')
                rows.append('| %d | %d | %s | %s | %s | %s | %s | %s | %s | '
                            '%s | %s | %s | %s |' % (
                                n, c, f(b, 'rps', '%.0f'),
                                f(b, 'p50_ms', '%.2f ms'),
                                f(b, 'p99_ms', '%.2f ms'),
                                f(w, 'rps', '%.0f'),
                                f(w, 'p50_ms', '%.2f ms'),
                                f(w, 'p99_ms', '%.2f ms'),
                                '%.0f%%' % (100 * w['rps'] / b['rps'])
                                if w and b else '–',
                                f(s, 'rps', '%.0f'),
                                f(s, 'p50_ms', '%.2f ms'),
                                f(s, 'p99_ms', '%.2f ms'),
                                '%.0f%%' % (100 * s['rps'] / w['rps'])
                                if s and w else '–'))
        if any(r['noisy'] for r in self.runs):
            rows.append('')
            rows.append('\\* other work on the machine used more than %.2f '
                        'cores during this run: its figures are not reliable'
                        % NOISY_CORES)
        return '\n'.join(rows)

    def cpu_md(self):
        rows = ['| run | req/s | workers µs/req | nginx µs/req | Redis µs/req '
                '| wrk µs/req | Redis script µs/call | machine busy (cores) | '
                'rest of machine (cores) | AOF rewrites | load avg |',
                '|---|---|---|---|---|---|---|---|---|---|---|']
        for r in self.runs:
            c, u = r['cpu_cores'], r.get('us_per_req', {})
            rows.append('| %s %s, %d w, %d c%s | %.0f | %s | %s | %s | %s '
                        '| %s | %.2f | %.2f | %d | %.1f–%.1f |' % (
                            r['kind'], r['mode'], r['workers'], r['conns'],
                            ' (%s)' % r['variant'] if r.get('variant')
                            else '',
                            r['rps'], u.get('workers', '–'),
                            u.get('nginx', '–'),
                            u.get('redis', '–') if r['kind'] == 'wxkf'
                            else '–', u.get('wrk', '–'),
                            r.get('redis_us_per_call') or '–',
                            c['machine'], c['other'], r['redis_forks'],
                            r['loadavg'][0], r['loadavg'][1]))
        return '\n'.join(rows)

    def plot(self):
        dat = os.path.join(self.out, 'throughput.dat')
        cols = [('bare', 'plain'), ('wxkf', 'plain'), ('wxkf', 'safe')]
        with open(dat, 'w') as f:
            f.write('# workers ' + ' '.join('%s_%s_c%d' % (k, m, c)
                                            for k, m in cols
                                            for c in self.a.conns) + '\n')
            for n in self.a.workers:
                vals = []
                for k, m in cols:
                    for c in self.a.conns:
                        r = self.find(k, m, n, c)
                        vals.append('%.0f' % r['rps'] if r else 'NaN')
                f.write('%d %s\n' % (n, ' '.join(vals)))
        png = os.path.abspath(self.a.png)
        os.makedirs(os.path.dirname(png), exist_ok=True)
        styles = {('bare', 'plain'): ('bare libfcgi responder (ceiling)', 1),
                  ('wxkf', 'plain'): ('wxkf, plaintext', 2),
                  ('wxkf', 'safe'): ('wxkf, safe mode (AES)', 3)}
        plots, i = [], 2
        for k, m in cols:
            for c in self.a.conns:
                title, color = styles[(k, m)]
                dash = 1 if c == max(self.a.conns) else 2
                plots.append("'%s' using 1:%d with linespoints lc %d dt %d "
                             "pt %d lw 2 title '%s, %d conns'"
                             % (dat, i, color, dash, 6 + color, title, c))
                i += 1
        when = self.started_at.strftime('%Y-%m-%d')
        noisy = sum(1 for r in self.runs if r['noisy'])
        gp = '\n'.join([
            "set terminal pngcairo size 900,600 font 'sans,10'",
            "set output '%s'" % png,
            "set title \"wxkf callbacks against the bare FastCGI ceiling, "
            "same nginx, same run\\n%s, %d cores, wrk %d threads on the "
            "same machine, loopback%s\"" % (
                when, os.cpu_count(), WRK_THREADS,
                ' (%d of %d runs on a busy machine)' % (noisy, len(self.runs))
                if noisy else ''),
            "set xlabel 'FastCGI workers (wxkf fcgi, or bare responders)'",
            "set ylabel 'requests/s'",
            "set xtics (%s)" % ', '.join(str(n) for n in self.a.workers),
            "set logscale x 2",
            "set xrange [%g:%g]" % (min(self.a.workers) / 1.3,
                                    max(self.a.workers) * 1.3),
            "set yrange [0:*]",
            "set grid",
            "set key outside below center horizontal maxrows 2 width 2",
            "plot " + ', \\\n     '.join(plots),
        ]) + '\n'
        gpf = os.path.join(self.out, 'throughput.gp')
        with open(gpf, 'w') as f:
            f.write(gp)
        if self.a.no_plot:
            return None
        r = subprocess.run(['gnuplot', gpf], capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            log('bench: gnuplot failed: ' + r.stderr[-500:])
            return None
        return png

    def report(self):
        tg = self.targets()
        png = self.plot()
        env = {
            'date': self.started_at.isoformat(timespec='seconds'),
            'host': platform.node(), 'cpus': os.cpu_count(),
            'kernel': platform.release(),
            'wrk': '-t%d -c{%s} -d%ds' % (WRK_THREADS, ','.join(
                map(str, self.a.conns)), self.a.duration),
            'timed_s': (self.a.duration * 1000 - START_DELAY_MS - TAIL_MS)
            / 1000.0, 'log_level': self.a.log_level,
            'wxkf_bin': self.bin, 'agents': AGENTS, 'users': USERS,
            'version': wxkf_version(self.bin), 'nice': self.a.nice,
            'worker_env': self.a.worker_env,
            'redis_config': self.a.redis_config,
        }
        res = {'env': env, 'runs': self.runs, 'wait': self.wait,
               'cost': self.cost,
               'warmups': getattr(self, 'warmups', []),
               'rss': self.rss, 'drains': self.drains,
               'checks': self.checks,
               'targets': [{'target': t, 'value': v, 'met': ok}
                           for t, v, ok in tg],
               'failures': self.failures, 'elapsed_s': round(self.elapsed),
               'plot': png}
        with open(os.path.join(self.out, 'results.json'), 'w') as f:
            json.dump(res, f, indent=1)
        md = ['# wxkf callback benchmark, %s' % env['date'], '',
              'wxkf %s (`wxkf --version`); %s, %d cores, kernel %s; wrk %s (%.1f s timed per '
              'run), log level %s, %d agents, %d users%s.' % (
                  env['version'], env['host'], env['cpus'], env['kernel'],
                  env['wrk'], env['timed_s'], env['log_level'], AGENTS,
                  USERS, ', stack and wrk at nice %d' % self.a.nice
                  if self.a.nice else ''), '',
              ('Variant: workers\' environment %s, Redis %s.' % (
                  ' '.join(self.a.worker_env) or '-',
                  ' '.join(self.a.redis_config) or '-'))
              if self.a.worker_env or self.a.redis_config else '', '',
              self.table_md(), '',
              '## CPU (cores busy during the run; 2 = the whole machine)', '',
              self.cpu_md(), '']
        if self.wait:
            md += ['## [redis] wait_replicas = 1 (a replica on loopback)', '',
                   self.wait_md(), '']
        if self.cost:
            md += ['## Cost per callback', '', self.cost_md(), '']
        md += ['## Redis per callback, every wxkf run', '', self.redis_md(),
               '', 'AOF B/cb is blank when an AOF rewrite started or ran '
               'during the run (it resets aof_current_size).', '',
               '## Archiver drain', '',
               '| after | entries | seconds | entries/s | PG rows/entry | '
               'database B/entry | messages B/entry | WAL B/entry |',
               '|---|---|---|---|---|---|---|---|']
        for d in self.drains:
            pg = d.get('pg') or {}
            md.append('| %s | %d | %.2f | %s | %s | %s | %s | %s |' % (
                d['label'], d['entries'], d['seconds'], d['per_s'],
                pg.get('rows_per_entry', '–'),
                pg.get('db_bytes_per_entry', '–'),
                pg.get('tables', {}).get('messages', {}).get(
                    'bytes_per_entry', '–'),
                pg.get('wal_bytes_per_entry', '–')))
        md += ['', '## Worker RSS', '']
        md += ['- %s: %s MiB (peak %.1f)' % (
            k, ', '.join('%.1f' % (w['rss_kib'] / 1024) for w in v),
            max(w['hwm_kib'] for w in v) / 1024) for k, v in self.rss.items()
            if v]
        md += ['', '## Targets', '', '| target | measured | met |',
               '|---|---|---|']
        md += ['| %s | %s | %s |' % (t, v, 'info' if ok is None else
                                      'yes' if ok else '**no**')
               for t, v, ok in tg]
        if self.checks:
            c = self.checks[-1]
            md += ['', 'Archive: %d callbacks acknowledged (2xx), %d '
                   'archived; %d lost, %d doubled, %d unexpected, %d '
                   'rejects.' % (c['acked'], c['archived'], c['lost'],
                                 c['doubled'], c['stray'], c['rejects'])]
        if self.failures:
            md += ['', '## Failures', ''] + ['- ' + f for f in self.failures]
        with open(os.path.join(self.out, 'results.md'), 'w') as f:
            f.write('\n'.join(md) + '\n')
        log('')
        log(self.table_md())
        log('')
        log(self.cpu_md())
        log('')
        if self.wait:
            log(self.wait_md())
            log('')
        if self.cost:
            log(self.cost_md())
            log('')
        for t, v, ok in tg:
            log('  %-50s %-10s %s' % (t, v, 'info' if ok is None else
                                      'met' if ok else 'MISSED'))
        log('')
        log('bench: results in %s/results.{md,json}%s; %.0f s'
            % (self.out, ', plot ' + png if png else '', self.elapsed))
        self.missed = [t for t, v, ok in tg if ok is False]


def wxkf_version(path):
    try:
        out = subprocess.run([path, '--version'], capture_output=True,
                             text=True, timeout=10,
                             stdin=subprocess.DEVNULL).stdout.split()
        return out[-1] if out else None
    except (OSError, subprocess.SubprocessError):
        return None


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--bin', default=os.environ.get('WXKF_BIN') or
                   os.path.join(REPO, 'build', 'rel', 'wxkf'),
                   help='the wxkf binary (release build)')
    p.add_argument('--workers', default='2,4,8')
    p.add_argument('--conns', default='16,64')
    p.add_argument('--duration', type=int, default=10,
                   help='seconds per wrk run (%d ms of it timed less)'
                   % (START_DELAY_MS + TAIL_MS))
    p.add_argument('--warmup', type=int, default=4,
                   help='seconds of the untimed first run per worker count')
    p.add_argument('--log-level', default='info',
                   help='[log] level of the workers (info = the default)')
    p.add_argument('--worker-env', action='append', default=[],
                   metavar='VAR=VALUE', help='environment of the workers and '
                   'of the bare responders (repeatable)')
    p.add_argument('--redis-config', action='append', default=[],
                   metavar='KEY=VALUE', help='CONFIG SET on the stack\'s Redis '
                   'after it started (repeatable)')
    p.add_argument('--no-safe', action='store_true')
    p.add_argument('--no-wait', action='store_true',
                   help='skip the [redis] wait_replicas = 1 runs (replica)')
    p.add_argument('--no-cost', action='store_true',
                   help='skip the per-callback cost run')
    p.add_argument('--wait-duration', type=int, default=6,
                   help='seconds of each of the 8 wait_replicas runs (%d ms '
                   'of it timed less)' % (START_DELAY_MS + TAIL_MS))
    p.add_argument('--cost-duration', type=int, default=5,
                   help='seconds of the cost run (%d ms of it timed less)'
                   % (START_DELAY_MS + TAIL_MS))
    p.add_argument('--no-plot', action='store_true')
    p.add_argument('--quick', action='store_true',
                   help='2 and 4 workers, 4 s runs (a smoke test)')
    p.add_argument('--out', default=os.path.join(REPO, 'build', 'bench'))
    p.add_argument('--png', default=None,
                   help='the plot (default: docs/perf/throughput.png for the '
                   'standard run, else OUT/throughput.png)')
    p.add_argument('--drain-timeout', type=int, default=180)
    p.add_argument('--wait-quiet', type=int, default=0, metavar='S',
                   help='before each run wait up to S s for the rest of the '
                   'machine to be idle (a shared machine)')
    p.add_argument('--keep', action='store_true',
                   help='keep the stack directory under /tmp')
    p.add_argument('--profile', action='store_true',
                   help='instead of the benchmark: perf and callgrind '
                   'profiles of the callback path (build/bench/)')
    p.add_argument('--profile-s', type=int, default=6,
                   help='seconds of perf recording / callgrind load')
    p.add_argument('--nice', type=int, default=0,
                   help='run the stack and wrk at this nice value (e.g. -10 '
                   'as root on a machine shared with other work)')
    p.add_argument('--strict', action='store_true',
                   help='exit 1 when a performance target is missed too')
    a = p.parse_args(argv)
    standard = all(getattr(a, k) == p.get_default(k) for k in (
        'workers', 'conns', 'duration', 'warmup', 'log_level', 'worker_env',
        'redis_config', 'no_safe', 'quick'))
    if a.quick:
        a.workers, a.duration, a.warmup = '2,4', 4, 2
    if a.png is None:
        a.png = os.path.join(REPO, 'docs', 'perf', 'throughput.png') \
            if standard else os.path.join(a.out, 'throughput.png')
    a.workers = [int(x) for x in str(a.workers).split(',')]
    a.conns = [int(x) for x in str(a.conns).split(',')]
    if a.quick:
        a.wait_duration = min(a.wait_duration, 4)
    if min(a.duration, a.wait_duration, a.cost_duration) < 3:
        p.error('--duration, --wait-duration and --cost-duration must be at '
                'least 3 s')
    return a


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    b = Bench(args)
    prev = signal.signal(signal.SIGTERM, conftest._sigterm_to_interrupt)
    try:
        b.run()
    except KeyboardInterrupt:
        log('bench: interrupted')
        return 130
    except (SetupError, AssertionError, RuntimeError) as e:
        log('bench: FAILED: %s' % e)
        if b.st:
            log(b.st.log_tails(20))
        b.failures.append(str(e))
        return 2
    finally:
        b.stop()
        signal.signal(signal.SIGTERM, prev)
    if b.failures:
        log('bench: %d correctness failure(s):' % len(b.failures))
        for f in b.failures:
            log('  ' + f)
        return 1
    if args.strict and b.missed:
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
