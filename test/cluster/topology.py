"""A five-host wxkf deployment on one machine, built from iproute2 network
namespaces and veth pairs (run as root).

    wxc<pid>-sw     the switch: a bridge with one port per host
    wxc<pid>-data   10.213.0.10  PostgreSQL :5432, Redis primary :6379,
                                 replica :6380, Sentinels :26379-26381
    wxc<pid>-app1   10.213.0.21  nginx :8080 -> 2 x `wxkf fcgi`, `wxkf jobs`
    wxc<pid>-app2   10.213.0.22  (the same, started by scripts/stack.sh
                                 under `ip netns exec`)
    wxc<pid>-front  10.213.0.30  nginx :80 balancing /wechat and /api/
                                 over both app hosts
    wxc<pid>-cl     10.213.0.40  the clients: simulated WeChat users and
                                 agents (threads of the test process that
                                 entered the namespace with setns(2))

Every name carries the pid of the test process, so two runs never meet;
no interface, address or route is added to the machine's own namespace.
Cluster.teardown() kills every process of every namespace (by the pids
`ip netns pids` lists), deletes the namespaces (which deletes the veths
and the bridge) and removes the run's folder unless asked to keep it.
"""

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..'))
PYLIB = os.path.join(REPO, 'test', 'pylib')
if PYLIB not in sys.path:
    sys.path.insert(0, PYLIB)
from wxkf_checks import wait_until  # noqa: E402,F401 - used and re-exported
from wxkf_checks import sanitizer_reports  # noqa: E402
import wxkf_ports  # noqa: E402
STACK_SH = os.path.join(REPO, 'scripts', 'stack.sh')

SUBNET = '10.213.0'
PREFIX = 24
ADDR = {'data': SUBNET + '.10', 'app1': SUBNET + '.21',
        'app2': SUBNET + '.22', 'front': SUBNET + '.30',
        'cl': SUBNET + '.40'}
APP_HOSTS = ('app1', 'app2')
HOSTS = ('data', 'app1', 'app2', 'front', 'cl')

PG_PORT = 5432
REDIS_PORTS = {'r1': 6379, 'r2': 6380}     # r1 starts as the primary
SENTINEL_PORTS = (26379, 26380, 26381)
MASTER_NAME = 'wxkfmaster'
APP_PORT = 8080
FRONT_PORT = 80
# Fixed: each host is a network namespace of its own where nothing else
# runs; build_network checks they lie below its ephemeral range.
FIXED_PORTS = (PG_PORT, APP_PORT, FRONT_PORT) + \
    tuple(REDIS_PORTS.values()) + SENTINEL_PORTS

# The test identity (the same as test/it).
TOKEN = 'wxkfItToken2024'
APP_ID = 'wx5e0c2b7d9a4f1e36'
ORIGINAL_ID = 'gh_7c1e9a2b4d6f'
AES_KEY = 'Qm9vdHN0cmFwS2V5Rm9yV3hrZkl0U3VpdGVUZXN0czA'

# --- entering a network namespace from Python -----------------------------

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_libc.setns.argtypes = (ctypes.c_int, ctypes.c_int)


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, 'setns: %s' % os.strerror(e))


def _thread_ns_path():
    # the calling thread's own namespace (/proc/self is the main thread's)
    p = '/proc/thread-self/ns/net'
    return p if os.path.exists(p) else '/proc/self/task/%d/ns/net' % \
        threading.get_native_id()


@contextlib.contextmanager
def netns(name):
    """Runs the body with the calling thread in network namespace `name`.
    Sockets keep the namespace they were created in, so a connection
    opened inside may be used after the block (by this or any thread)."""
    orig = os.open(_thread_ns_path(), os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open('/run/netns/' + name, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(orig)
    finally:
        os.close(orig)


def enter_netns(name):
    """Moves the calling thread into `name` for good (a worker thread of a
    load generator: ThreadPoolExecutor(initializer=...))."""
    fd = os.open('/run/netns/' + name, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(fd)
    finally:
        os.close(fd)


# --- small helpers ----------------------------------------------------------

def run(cmd, timeout=60, check=True, env=None, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, env=env, **kw)
    if check and r.returncode != 0:
        raise RuntimeError('%s: rc %d\n%s\n%s' % (' '.join(cmd), r.returncode,
                                                  r.stdout[-3000:],
                                                  r.stderr[-3000:]))
    return r


def alive(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except (OSError, IndexError):
        return False


def tail(path, lines=40):
    try:
        with open(path, 'rb') as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 64 * 1024))
            data = f.read().decode('utf-8', 'replace')
    except OSError as e:
        return '(%s)' % e
    return '\n'.join(data.splitlines()[-lines:])


def pg_bindir():
    for v in sorted(os.listdir('/usr/lib/postgresql'), key=lambda s: -int(
            s) if s.isdigit() else 0):
        d = '/usr/lib/postgresql/%s/bin' % v
        if os.access(os.path.join(d, 'pg_ctl'), os.X_OK):
            return d
    raise RuntimeError('no PostgreSQL server found under /usr/lib/postgresql')


NS_RE = re.compile(r'^wxc(\d+)-(sw|data|app1|app2|front|cl)$')


def sweep_stale():
    """Namespaces of an earlier run of this suite whose test process is
    gone (killed with SIGKILL: no finalizer ran): kills what still runs
    in them and deletes them. Only names this module makes, only when the
    pid in the name is not a live process. Returns the names removed."""
    gone = []
    try:
        names = os.listdir('/run/netns')
    except OSError:
        return gone
    for name in sorted(names):
        m = NS_RE.match(name)
        if not m or alive(int(m.group(1))):
            continue
        r = run(['ip', 'netns', 'pids', name], timeout=20, check=False)
        for p in r.stdout.split():
            if p.isdigit() and int(p) != os.getpid():
                try:
                    os.kill(int(p), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        run(['ip', 'netns', 'del', name], timeout=20, check=False)
        gone.append(name)
    if gone:
        sys.stderr.write('test/cluster: removed namespaces left by a killed '
                         'run: %s\n' % ' '.join(gone))
    return gone


class Cluster:
    """The topology, its processes and its teardown. `wxkf_bin`: the
    binary the app hosts run; `conf_extra`: {section: {key: value}} on
    top of the defaults of app_conf()."""

    def __init__(self, wxkf_bin, conf_extra=None, sentinels=True,
                 workers=2):
        if os.geteuid() != 0:
            raise RuntimeError('test/cluster needs root (network namespaces)')
        self.bin = wxkf_bin
        self.tag = 'wxc%d' % os.getpid()
        self.ns = {h: '%s-%s' % (self.tag, h) for h in HOSTS}
        self.ns['sw'] = '%s-sw' % self.tag
        self.dir = tempfile.mkdtemp(prefix='wxkf-cluster-%s-' % self.tag,
                                    dir='/tmp')
        os.chmod(self.dir, 0o755)          # postgres and nobody traverse it
        self.workers = workers
        self.sentinels = sentinels
        self.conf_extra = conf_extra or {}
        self.front_url = 'http://%s:%d' % (ADDR['front'], FRONT_PORT)
        self.callback_url = self.front_url + '/wechat'
        self.stream = 'wxkf:{%s}:events' % APP_ID
        self.prefix = 'wxkf:{%s}:' % APP_ID
        self.made_ns = []
        self.keep = bool(os.environ.get('WXKF_KEEP_CLUSTER'))
        self.failed = False
        self.pg_bin = pg_bindir()

    # --- paths ---------------------------------------------------------------

    def path(self, *p):
        return os.path.join(self.dir, *p)

    def app_dir(self, host):
        return self.path(host)

    def conf_path(self, host):
        return self.path(host + '.conf')

    # --- the network ---------------------------------------------------------

    def ip(self, *args, ns=None, check=True):
        cmd = ['ip'] + (['-n', ns] if ns else []) + list(args)
        return run(cmd, timeout=20, check=check)

    def exec_argv(self, host, argv):
        return ['ip', 'netns', 'exec', self.ns[host]] + list(argv)

    def nsrun(self, host, argv, timeout=60, check=True, env=None):
        return run(self.exec_argv(host, argv), timeout=timeout, check=check,
                   env=env)

    def build_network(self):
        sweep_stale()
        for name in [self.ns['sw']] + [self.ns[h] for h in HOSTS]:
            if os.path.exists('/run/netns/' + name):
                raise RuntimeError('network namespace %s exists already '
                                   '(a previous run with the same pid?)'
                                   % name)
        for name in [self.ns['sw']] + [self.ns[h] for h in HOSTS]:
            run(['ip', 'netns', 'add', name], timeout=20)
            self.made_ns.append(name)
            self.ip('link', 'set', 'lo', 'up', ns=name)
            with netns(name):   # /proc/sys/net is the namespace's own
                _lo, hi = wxkf_ports.port_range()
            if max(FIXED_PORTS) > hi:
                raise RuntimeError('%s: the fixed ports %s reach into the '
                                   'ephemeral range (above %d)'
                                   % (name, FIXED_PORTS, hi))
        sw = self.ns['sw']
        self.ip('link', 'add', 'br0', 'type', 'bridge', ns=sw)
        self.ip('link', 'set', 'br0', 'up', ns=sw)
        for h in HOSTS:
            # eth0 inside the host, p-<host> on the switch: created in
            # place, so nothing ever appears in the machine's namespace.
            run(['ip', 'link', 'add', 'eth0', 'netns', self.ns[h], 'type',
                 'veth', 'peer', 'name', 'p-' + h, 'netns', sw], timeout=20)
            self.ip('link', 'set', 'p-' + h, 'master', 'br0', ns=sw)
            self.ip('link', 'set', 'p-' + h, 'up', ns=sw)
            self.ip('addr', 'add', '%s/%d' % (ADDR[h], PREFIX), 'dev', 'eth0',
                    ns=self.ns[h])
            self.ip('link', 'set', 'eth0', 'up', ns=self.ns[h])
        # every host reaches the others (bounded: the bridge ports may
        # take a moment to forward)
        for h in HOSTS:
            if h != 'cl':
                wait_until(lambda h=h: self.reachable('cl', ADDR[h]), 20, 0.2,
                           '%s reachable from cl' % h)

    def reachable(self, host, addr, port=9):
        """A TCP connect from `host` to addr:port is answered (accepted or
        refused) within a second."""
        with netns(self.ns[host]):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(1)
        try:
            s.connect((addr, port))
            return True
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
        finally:
            s.close()

    def link(self, host, up):
        """The host's network cable (its eth0) in or out."""
        self.ip('link', 'set', 'eth0', 'up' if up else 'down',
                ns=self.ns[host])

    def ns_pids(self, host_or_ns):
        name = self.ns.get(host_or_ns, host_or_ns)
        r = run(['ip', 'netns', 'pids', name], timeout=20, check=False)
        me = os.getpid()
        return sorted(int(p) for p in r.stdout.split()
                      if p.isdigit() and int(p) != me)

    def kill_all(self, host_or_ns, sig=signal.SIGKILL, wait=10):
        """Sends sig to every process in the namespace (repeatedly, for
        children forked meanwhile) until none is left or `wait` is over.
        Returns the pids signalled."""
        hit = set()
        deadline = time.monotonic() + wait
        for _ in range(int(wait / 0.05) + 2):
            pids = [p for p in self.ns_pids(host_or_ns) if alive(p)]
            if not pids:
                return sorted(hit)
            for p in pids:
                try:
                    os.kill(p, sig)
                    hit.add(p)
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        left = [p for p in self.ns_pids(host_or_ns) if alive(p)]
        if left:
            raise RuntimeError('processes left in %s: %s' % (host_or_ns, left))
        return sorted(hit)

    # --- the data host -------------------------------------------------------

    def start_data(self):
        self.start_pg()
        for name in REDIS_PORTS:
            self.write_redis_conf(name)
            self.start_redis(name)
        self.wait_replica_synced()
        for i in range(len(SENTINEL_PORTS)):
            self.write_sentinel_conf(i)
            self.start_sentinel(i)
        self.wait_sentinels_agree()

    def as_pg(self, argv, timeout=60, check=True):
        return self.nsrun('data', ['runuser', '-u', 'postgres', '--'] + argv,
                          timeout=timeout, check=check)

    def start_pg(self):
        pg = self.path('pg')
        os.makedirs(os.path.join(pg, 'sock'))
        shutil.chown(pg, 'postgres')
        shutil.chown(os.path.join(pg, 'sock'), 'postgres')
        os.chmod(pg, 0o700)
        data = os.path.join(pg, 'data')
        r = self.as_pg([os.path.join(self.pg_bin, 'initdb'), '-D', data, '-A',
                        'trust', '-U', 'wxkf', '-E', 'UTF8',
                        '--locale=C.UTF-8'], timeout=120, check=False)
        if r.returncode != 0:
            shutil.rmtree(data, ignore_errors=True)
            self.as_pg([os.path.join(self.pg_bin, 'initdb'), '-D', data, '-A',
                        'trust', '-U', 'wxkf', '-E', 'UTF8', '--locale=C'],
                       timeout=120)
        with open(os.path.join(data, 'pg_hba.conf'), 'a') as f:
            f.write('\n# test/cluster: the hosts of the private subnet\n'
                    'host all all %s.0/%d trust\n' % (SUBNET, PREFIX))
        opts = ('-p %d -k %s -c listen_addresses=%s -c fsync=off '
                '-c synchronous_commit=off -c full_page_writes=off '
                '-c max_connections=100'
                % (PG_PORT, os.path.join(pg, 'sock'), ADDR['data']))
        self.as_pg([os.path.join(self.pg_bin, 'pg_ctl'), '-D', data, '-l',
                    os.path.join(pg, 'postgres.log'), '-o', opts, '-w', '-t',
                    '60', 'start'], timeout=90)
        self.nsrun('data', ['psql', '-X', '-q', '-h', ADDR['data'], '-p',
                            str(PG_PORT), '-U', 'wxkf', '-d', 'postgres',
                            '-c', 'CREATE DATABASE wxkf'], timeout=30)

    def redis_dir(self, name):
        return self.path('redis', name)

    def redis_pidfile(self, name):
        return os.path.join(self.redis_dir(name), 'redis.pid')

    def write_redis_conf(self, name):
        d = self.redis_dir(name)
        os.makedirs(d, exist_ok=True)
        lines = [
            '# test/cluster: Redis %s (the primary at first: r1)' % name,
            'bind %s' % ADDR['data'],
            'port %d' % REDIS_PORTS[name],
            'protected-mode no',
            'daemonize yes',
            'pidfile %s' % self.redis_pidfile(name),
            'logfile %s' % os.path.join(d, 'redis.log'),
            'dir %s' % d,
            'appendonly yes',
            'appendfsync always',
            'save ""',
            # what the others (Sentinel, replicas) are told to reach us at
            'replica-announce-ip %s' % ADDR['data'],
            'replica-announce-port %d' % REDIS_PORTS[name],
        ]
        if name != 'r1':
            lines.append('replicaof %s %d' % (ADDR['data'], REDIS_PORTS['r1']))
        with open(os.path.join(d, 'redis.conf'), 'w') as f:
            f.write('\n'.join(lines) + '\n')

    def start_redis(self, name):
        conf = os.path.join(self.redis_dir(name), 'redis.conf')
        self.nsrun('data', ['redis-server', conf], timeout=20)
        wait_until(lambda: self.redis_cli(REDIS_PORTS[name], 'ping') ==
                   'PONG', 20, 0.1, 'redis %s to answer' % name)

    def redis_pid(self, name):
        with open(self.redis_pidfile(name)) as f:
            return int(f.read().strip())

    def redis_cli(self, port, *args, timeout=5):
        r = self.nsrun('data', ['redis-cli', '-h', ADDR['data'], '-p',
                                str(port)] + list(args), timeout=timeout,
                       check=False)
        return r.stdout.strip()

    def wait_replica_synced(self):
        def synced():
            info = self.redis_cli(REDIS_PORTS['r2'], 'info', 'replication')
            return 'master_link_status:up' in info
        wait_until(synced, 30, 0.2, 'the replica to sync')

    def sentinel_dir(self, i):
        return self.path('sentinel%d' % i)

    def write_sentinel_conf(self, i):
        d = self.sentinel_dir(i)
        os.makedirs(d, exist_ok=True)
        lines = [
            '# test/cluster: Sentinel %d (it rewrites this file)' % i,
            'bind %s' % ADDR['data'],
            'port %d' % SENTINEL_PORTS[i],
            'protected-mode no',
            'daemonize yes',
            'pidfile %s' % os.path.join(d, 'sentinel.pid'),
            'logfile %s' % os.path.join(d, 'sentinel.log'),
            'dir %s' % d,
            'sentinel announce-ip %s' % ADDR['data'],
            'sentinel announce-port %d' % SENTINEL_PORTS[i],
            'sentinel monitor %s %s %d 2' % (MASTER_NAME, ADDR['data'],
                                             REDIS_PORTS['r1']),
            'sentinel down-after-milliseconds %s 1000' % MASTER_NAME,
            'sentinel failover-timeout %s 5000' % MASTER_NAME,
            'sentinel parallel-syncs %s 1' % MASTER_NAME,
        ]
        path = os.path.join(d, 'sentinel.conf')
        with open(path, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        os.chmod(path, 0o644)

    def start_sentinel(self, i):
        conf = os.path.join(self.sentinel_dir(i), 'sentinel.conf')
        self.nsrun('data', ['redis-server', conf, '--sentinel'], timeout=20)
        wait_until(lambda: self.redis_cli(SENTINEL_PORTS[i], 'ping') ==
                   'PONG', 20, 0.1, 'sentinel %d to answer' % i)

    def sentinel_master(self, i=0):
        out = self.redis_cli(SENTINEL_PORTS[i], 'sentinel',
                             'get-master-addr-by-name', MASTER_NAME)
        parts = out.split()
        return (parts[0], int(parts[1])) if len(parts) == 2 else None

    def wait_sentinels_agree(self, timeout=30):
        """Every Sentinel knows the others and the replica."""
        def agree():
            for i, port in enumerate(SENTINEL_PORTS):
                out = self.redis_cli(port, 'sentinel', 'master', MASTER_NAME)
                f = out.split('\n')
                kv = dict(zip(f[0::2], f[1::2]))
                if kv.get('num-other-sentinels') != \
                        str(len(SENTINEL_PORTS) - 1) or \
                        kv.get('num-slaves') != '1':
                    return False
            return True
        wait_until(agree, timeout, 0.2, 'the Sentinels to find each other')

    def master_port(self):
        m = self.sentinel_master()
        assert m and m[0] == ADDR['data'], m
        return m[1]

    def redis_name(self, port):
        return [n for n, p in REDIS_PORTS.items() if p == port][0]

    # --- the app hosts -------------------------------------------------------

    def app_conf(self, host):
        """The wxkf config of an app host (the same for both but the log)."""
        conf = {
            'wechat': {
                'app_id': APP_ID, 'app_secret': '', 'token': TOKEN,
                'encoding_aes_key': AES_KEY, 'encoding_aes_key_prev': '',
                'original_id': ORIGINAL_ID, 'mode': 'workspace',
                # the load sends plaintext pushes; a key alone means safe
                'encoding': 'compatible',
                # nothing listens there: no traffic leaves the host
                'api_base': 'http://127.0.0.1:9', 'timestamp_window': '300',
                'dedupe_ttl': '600'},
            'redis': {
                'url': 'redis://%s:%d/0' % (ADDR['data'], REDIS_PORTS['r1']),
                'connect_timeout_ms': '500', 'io_timeout_ms': '1000'},
            'postgres': {
                'dsn': 'host=%s port=%d dbname=wxkf user=wxkf '
                       'connect_timeout=5' % (ADDR['data'], PG_PORT)},
            'log': {'level': 'info',
                    'file': os.path.join(self.app_dir(host), 'logs',
                                         'wxkf.log')},
            'texts': {'no_agent': '', 'queued': ''},
            'archiver': {'claim_idle_ms': '2000', 'keep_ms': '0'},
            'media': {'fetch': '0'},
        }
        if self.sentinels:
            conf['redis'].update({
                'sentinels': ','.join('%s:%d' % (ADDR['data'], p)
                                      for p in SENTINEL_PORTS),
                'master_name': MASTER_NAME})
        for sec, kv in self.conf_extra.items():
            conf.setdefault(sec, {}).update(kv)
        return conf

    def write_app_conf(self, host):
        lines = ['# written by test/cluster/topology.py for %s' % host]
        for sec, kv in self.app_conf(host).items():
            lines.append('[%s]' % sec)
            lines += ['%s = %s' % (k, v) for k, v in kv.items()]
            lines.append('')
        with open(self.conf_path(host), 'w', encoding='utf-8') as f:
            f.write('\n'.join(lines))
        os.chmod(self.conf_path(host), 0o644)

    def stack_env(self, host):
        e = dict(os.environ)
        for k in ('SKIP_PG', 'REDIS_PORT', 'PG_PORT'):
            e.pop(k, None)
        e.update({
            'STACK_DIR': self.app_dir(host),
            'WXKF_BIN': self.bin,
            'WXKF_CONF': self.conf_path(host),
            'PORT': str(APP_PORT),
            'LISTEN_ADDR': ADDR[host],
            'WORKERS': str(self.workers),
            'SKIP_PG': '1',
            'SKIP_REDIS': '1',
            'WXKF_PUSH_URL': '',
            'WXKF_PUSH_SOCKET': '',
        })
        return e

    def stack(self, host, action, timeout=120, check=True):
        """scripts/stack.sh ACTION on an app host: in its network namespace
        and, so that its processes carry the host's name (the archiver's
        consumer is <hostname>:<pid>), in a UTS namespace of its own."""
        argv = ['unshare', '--uts', '--', 'sh', '-c',
                'hostname "$0" && exec "$@"', self.ns[host], 'bash', STACK_SH,
                action]
        return self.nsrun(host, argv, timeout=timeout, check=check,
                          env=self.stack_env(host))

    def migrate(self):
        self.nsrun('app1', [self.bin, 'migrate', '-c', self.conf_path('app1')],
                   timeout=300)

    def start_apps(self):
        for h in APP_HOSTS:
            os.makedirs(self.app_dir(h), exist_ok=True)
            self.write_app_conf(h)
        self.migrate()
        for h in APP_HOSTS:
            self.stack(h, 'start')

    def app_pids(self, host):
        """{'multiwatch': pid, 'jobs': pid, 'nginx': pid} (pid files)."""
        out = {}
        for k, f in (('multiwatch', 'multiwatch.pid'), ('jobs', 'jobs.pid'),
                     ('nginx', 'nginx.pid')):
            try:
                with open(os.path.join(self.app_dir(host), 'run', f)) as fh:
                    out[k] = int(fh.read().strip())
            except (OSError, ValueError):
                pass
        return out

    def wxkf(self, host, command, args=(), timeout=60):
        """`wxkf COMMAND... -c <host's conf> ARGS...` on that host (command:
        a list such as ['agent', 'add']); the CompletedProcess."""
        argv = [self.bin] + list(command) + ['-c', self.conf_path(host)] + \
            list(args)
        return self.nsrun(host, argv, timeout=timeout, check=False)

    # --- the front -----------------------------------------------------------

    FRONT_CONF = r"""# test/cluster: the front nginx (a load balancer host)
user nobody nogroup;
worker_processes 1;
pid @DIR@/nginx.pid;
error_log @DIR@/error.log warn;
events { worker_connections 1024; }
http {
    client_body_temp_path @DIR@/tmp/client_body;
    proxy_temp_path       @DIR@/tmp/proxy;
    fastcgi_temp_path     @DIR@/tmp/fastcgi;
    uwsgi_temp_path       @DIR@/tmp/uwsgi;
    scgi_temp_path        @DIR@/tmp/scgi;
    log_format front '$remote_addr [$time_local] "$request_method $uri" '
                     '$status up=$upstream_addr ups=$upstream_status '
                     'rt=$request_time urt=$upstream_response_time';
    access_log @DIR@/access.log front;
    client_max_body_size    64k;
    client_body_buffer_size 64k;
    keepalive_timeout 30s;

    upstream wxkf_app {
        # A host that fails once is left alone for 3 s, then tried again.
        server @APP1@:@APP_PORT@ max_fails=1 fail_timeout=3s;
        server @APP2@:@APP_PORT@ max_fails=1 fail_timeout=3s;
        keepalive 32;
        # below the app hosts' keepalive_timeout (30 s): we close first
        keepalive_timeout 20s;
    }

    server {
        listen @ADDR@:@PORT@;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        # A dead host is given up quickly: a refused or unanswered connect
        # costs at most 1 s before the other host is tried.
        proxy_connect_timeout 1s;
        proxy_send_timeout 5s;
        proxy_next_upstream_tries 2;
        proxy_next_upstream_timeout 4s;

        # WeChat callbacks: retrying one on the other host is always safe,
        # even after it reached a worker (a host dying mid-request, a 502
        # from its nginx when a worker died, a 503 when its Redis and its
        # journal both failed): the callback path deduplicates by MsgId
        # (events: FromUserName + CreateTime + Event) in Redis, so the
        # retry is recorded at most once and gets the same answer. Hence
        # non_idempotent (nginx never retries a POST otherwise). The read
        # timeout stays under WeChat's 5 s so the retry still counts.
        location = /wechat {
            proxy_pass http://wxkf_app;
            proxy_read_timeout 2500ms;
            proxy_next_upstream error timeout http_502 http_503 http_504
                                non_idempotent;
        }

        # Agent/admin API: a POST (a reply to a user, a transfer, a new
        # agent) is NOT idempotent, so it is only retried when nginx knows
        # it never reached a host: without non_idempotent, nginx passes a
        # POST to the next server only if it could not be sent (connect
        # refused/timed out), never after it was sent. GETs are retried
        # on error and timeout. 502/503 answers are passed to the client.
        location /api/ {
            proxy_pass http://wxkf_app;
            proxy_read_timeout 10s;
            proxy_next_upstream error timeout;
        }

        location = /healthz {
            proxy_pass http://wxkf_app;
            proxy_next_upstream error timeout;
        }

        location / {
            return 404;
        }
    }
}
"""

    def front_dir(self):
        return self.path('front')

    def start_front(self):
        d = self.front_dir()
        os.makedirs(os.path.join(d, 'tmp'), exist_ok=True)
        text = self.FRONT_CONF
        for k, v in (('@DIR@', d), ('@APP1@', ADDR['app1']),
                     ('@APP2@', ADDR['app2']), ('@APP_PORT@', str(APP_PORT)),
                     ('@ADDR@', ADDR['front']), ('@PORT@', str(FRONT_PORT))):
            text = text.replace(k, v)
        conf = os.path.join(d, 'nginx.conf')
        with open(conf, 'w') as f:
            f.write(text)
        self.nsrun('front', ['nginx', '-t', '-q', '-p', d + '/', '-c', conf,
                             '-e', os.path.join(d, 'error.log')], timeout=30)
        self.nsrun('front', ['nginx', '-p', d + '/', '-c', conf, '-e',
                             os.path.join(d, 'error.log')], timeout=30)

        def up():
            r = self.nsrun('cl', ['curl', '-s', '--noproxy', '*', '-o',
                                  '/dev/null', '-w',
                                  '%{http_code}', '--max-time', '3',
                                  self.front_url + '/healthz'], check=False)
            return r.stdout.strip() == '200'
        wait_until(up, 30, 0.2, 'the front to answer /healthz')

    # --- the whole thing -----------------------------------------------------

    def start(self):
        t0 = time.monotonic()
        self.build_network()
        self.start_data()
        self.start_apps()
        self.start_front()
        return time.monotonic() - t0

    def stop_gracefully(self):
        """The app stacks and the stores, politely (flushes logs; leak
        reports of the sanitizer build are written at exit)."""
        for h in APP_HOSTS:
            try:
                if os.path.isdir(self.app_dir(h)):
                    self.stack(h, 'stop', timeout=90, check=False)
            except Exception as e:      # noqa: BLE001 - teardown goes on
                sys.stderr.write('stack.sh stop %s: %s\n' % (h, e))
        try:
            data = self.path('pg', 'data')
            if os.path.exists(os.path.join(data, 'postmaster.pid')):
                self.as_pg([os.path.join(self.pg_bin, 'pg_ctl'), '-D', data,
                            '-m', 'fast', '-w', '-t', '30', 'stop'],
                           timeout=60, check=False)
        except Exception as e:          # noqa: BLE001
            sys.stderr.write('pg_ctl stop: %s\n' % e)

    def teardown(self, graceful=True):
        """Kills every process of every namespace, deletes the namespaces
        (and with them the veths and the bridge), removes the folder unless
        something failed or WXKF_KEEP_CLUSTER is set. Never raises."""
        errors = []
        if graceful:
            try:
                self.stop_gracefully()
            except Exception as e:      # noqa: BLE001
                errors.append('graceful stop: %s' % e)
        for name in reversed(self.made_ns):
            try:
                self.kill_all(name, signal.SIGKILL, wait=15)
            except Exception as e:      # noqa: BLE001
                errors.append('kill %s: %s' % (name, e))
        for name in reversed(self.made_ns):
            r = run(['ip', 'netns', 'del', name], timeout=20, check=False)
            if r.returncode != 0 and os.path.exists('/run/netns/' + name):
                errors.append('ip netns del %s: %s' % (name, r.stderr))
        self.made_ns = []
        if errors:
            sys.stderr.write('cluster teardown: %s\n' % '; '.join(errors))
        if self.failed or self.keep:
            sys.stderr.write('\nwxkf cluster kept in %s\n' % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        return errors

    # --- logs ----------------------------------------------------------------

    def log_files(self):
        out = []
        for root, _dirs, files in os.walk(self.dir):
            if os.sep + 'pg' + os.sep + 'data' in root + os.sep:
                continue
            for f in files:
                if f.endswith('.log'):
                    out.append(os.path.join(root, f))
        return sorted(out)

    def log_tails(self, lines=25):
        parts = []
        for p in self.log_files():
            base = os.path.basename(p)
            if base in ('wxkf.log', 'jobs.log', 'nginx-error.log',
                        'error.log', 'redis.log', 'sentinel.log',
                        'postgres.log'):
                parts.append('--- tail of %s ---\n%s' % (p, tail(p, lines)))
        return '\n'.join(parts)

    def sanitizer_reports(self):
        return sanitizer_reports(self.log_files())

    def grep_logs(self, host, needle):
        """Lines of the host's wxkf.log (workers and jobs) holding needle."""
        out = []
        for name in ('wxkf.log', 'jobs.log'):
            p = os.path.join(self.app_dir(host), 'logs', name)
            try:
                with open(p, encoding='utf-8', errors='replace') as f:
                    out += [ln.rstrip('\n') for ln in f if needle in ln]
            except OSError:
                pass
        return out

    def access_count(self, host, needle='"POST /wechat'):
        p = os.path.join(self.app_dir(host), 'logs', 'nginx-access.log')
        try:
            with open(p, encoding='utf-8', errors='replace') as f:
                return sum(1 for ln in f if needle in ln)
        except OSError:
            return 0


__all__ = ['Cluster', 'netns', 'enter_netns', 'wait_until', 'ADDR',
           'APP_HOSTS', 'REDIS_PORTS', 'SENTINEL_PORTS', 'MASTER_NAME',
           'TOKEN', 'APP_ID', 'ORIGINAL_ID', 'AES_KEY']
