"""Black-box suite: a private nginx + wxkf workers + Redis + PostgreSQL stack
on loopback, driven over HTTP by the WeChat simulator in test/sim.

Run by `make it`:
    WXKF_BIN=<abs path of build/san/wxkf> /usr/bin/python3 -m pytest -q test/it

The stack is started by scripts/stack.sh in a fresh directory under /tmp with
free ports (test/pylib/wxkf_ports.py: below the kernel's ephemeral range,
checked by binding; a port found taken at start is replaced once), and always
stopped again. WXKF_KEEP_STACK=1 keeps the directory
(logs, data) after the run; it is kept anyway when something failed.
"""

import hashlib
import json
import os
import random
import shutil
import signal
import string
import subprocess
import sys
import tempfile

import pytest
import redis as redis_lib
import requests

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..'))
SIM = os.path.join(REPO, 'test', 'sim')
PYLIB = os.path.join(REPO, 'test', 'pylib')
VECTORS = os.path.join(REPO, 'test', 'vectors')
for _p in (SIM, PYLIB):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import wechat_crypto as wc  # noqa: E402
from wxuser import WxUser  # noqa: E402
from wxkf_checks import wait_until  # noqa: E402,F401 - the tests' import
import wxkf_checks  # noqa: E402
from wxkf_ports import free_port, free_ports  # noqa: E402,F401 - also bench's

STACK_SH = os.path.join(REPO, 'scripts', 'stack.sh')
BIND_FAILED_RC = 3          # stack.sh start: a server's port was taken
PORT_ATTRS = {'PORT': 'port', 'REDIS_PORT': 'redis_port',
              'PG_PORT': 'pg_port'}

# Fixed test identity (the config the worker gets).
TOKEN = 'wxkfItToken2024'
APP_ID = 'wx5e0c2b7d9a4f1e36'
ORIGINAL_ID = 'gh_7c1e9a2b4d6f'
# 43 chars, non-canonical last character (like most real keys).
AES_KEY = 'Qm9vdHN0cmFwS2V5Rm9yV3hrZkl0U3VpdGVUZXN0czA'
WELCOME = '欢迎关注 <b>&]]>'
MAX_BODY = 32768            # worker limit in the test config
NGINX_MAX_BODY = '64k'      # nginx limit (stack.sh MAX_BODY)

START_TIMEOUT = 180         # initdb + pg start + redis + nginx + workers
STOP_TIMEOUT = 60
READY_TIMEOUT = 30

ACTIVE_STACKS = []          # for failure reports


def wxkf_bin():
    path = os.environ.get('WXKF_BIN') or os.path.join(REPO, 'build', 'san',
                                                      'wxkf')
    return os.path.abspath(path)


def tail(path, lines=40):
    try:
        with open(path, 'rb') as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 64 * 1024))
            data = f.read().decode('utf-8', 'replace')
    except OSError as e:
        return '(%s)' % e
    return '\n'.join(data.splitlines()[-lines:])


def child_pids(ppid):
    """Pids whose parent is ppid (from /proc)."""
    out = []
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % name) as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ... ; comm may contain spaces/parens
        rest = stat[stat.rfind(')') + 2:].split()
        if len(rest) > 1 and int(rest[1]) == ppid and rest[0] != 'Z':
            out.append(int(name))
    return sorted(out)


def log_files(stack_dir):
    """The logs of a stack directory (stack.sh's layout), not PostgreSQL's
    own files."""
    out = []
    pg = os.path.join(stack_dir, 'pg')
    for root, _dirs, files in os.walk(stack_dir):
        if root == pg or root.startswith(pg + os.sep):
            continue
        for f in files:
            if f.endswith('.log'):
                out.append(os.path.join(root, f))
    return sorted(out)


def sanitizer_reports(stack_dir):
    """Sanitizer report lines in a stack directory's logs."""
    return wxkf_checks.sanitizer_reports(log_files(stack_dir))


def random_openid(prefix='oIT'):
    alphabet = string.ascii_letters + string.digits
    return prefix + ''.join(random.choice(alphabet) for _ in range(28 - len(
        prefix)))


class Stack:
    """One private stack, driven through scripts/stack.sh."""

    def __init__(self, name, workers=2, skip_pg=False, welcome=WELCOME,
                 extra=None, encoding='compatible'):
        self.dir = tempfile.mkdtemp(prefix='wxkf-it-%s-' % name, dir='/tmp')
        os.chmod(self.dir, 0o755)   # postgres must traverse it
        self.port, self.redis_port, self.pg_port = free_ports(3)
        self.workers = workers
        self.skip_pg = skip_pg
        self.token = TOKEN
        self.app_id = APP_ID
        self.original_id = ORIGINAL_ID
        self.aes_key = AES_KEY
        self.encoding = encoding    # '' = the default (safe: a key is set)
        self.welcome = welcome
        # Extra config, {section: {key: value}}, overriding the defaults
        # below. The default stack answers "success" whatever routing
        # decides (empty no_agent/queued texts), so the callback tests see
        # the protocol, not the routing.
        # An admin token for the REST API (only its SHA-256 is configured).
        self.admin_token = 'adm_' + ''.join(
            random.choice(string.ascii_letters + string.digits)
            for _ in range(40))
        self.extra = {'texts': {'no_agent': '', 'queued': ''},
                      'api': {'admin_token_sha256': hashlib.sha256(
                          self.admin_token.encode()).hexdigest(),
                              'cookie_secure': '0'}}
        for sec, kv in (extra or {}).items():
            self.extra.setdefault(sec, {}).update(kv)
        self.max_body = MAX_BODY
        self.conf = os.path.join(self.dir, 'wxkf.conf')
        self.log_file = os.path.join(self.dir, 'logs', 'wxkf.log')
        self.stream = 'wxkf:{%s}:events' % self.app_id
        self.dedupe_prefix = 'wxkf:{%s}:dedupe:' % self.app_id
        self.redis = None
        self.failed = False
        self.started = False
        self.moved = {}     # NAME: (taken port, new port), from start()
        self._use_ports()

    def _use_ports(self):
        """The URLs, the Redis client and the config for the ports now in
        self.port / redis_port / pg_port."""
        self.base = 'http://127.0.0.1:%d' % self.port
        self.url = self.base + '/wechat'
        if self.redis is not None:
            self.redis.close()
        self.redis = redis_lib.Redis(host='127.0.0.1', port=self.redis_port,
                                     decode_responses=True,
                                     socket_timeout=5,
                                     socket_connect_timeout=2)
        self._write_conf()

    def _move_taken_port(self):
        """After stack.sh start said a server's port was taken: a newly
        chosen one for it, the config rewritten. False if it named none or
        one already replaced."""
        try:
            with open(os.path.join(self.dir, 'run', 'bind-failed')) as f:
                name, _, old = f.read().strip().partition('=')
        except OSError:
            return False
        if name not in PORT_ATTRS or name in self.moved:
            return False
        new = free_port(avoid=(self.port, self.redis_port, self.pg_port))
        setattr(self, PORT_ATTRS[name], new)
        self.moved[name] = (int(old), new)
        sys.stderr.write('stack %s: %s %s was taken at start; using %d\n'
                         % (self.dir, name, old, new))
        self._use_ports()
        return True

    # --- lifecycle ---------------------------------------------------------

    def _write_conf(self):
        api_port = free_ports(1)[0]   # nothing listens: no traffic leaves
        text = '\n'.join([
            '# generated by test/it/conftest.py',
            '[wechat]',
            'app_id = %s' % self.app_id,
            'app_secret =',
            'token = %s' % self.token,
            'encoding_aes_key = %s' % self.aes_key,
            'encoding_aes_key_prev =',
            # The suite drives plaintext and encrypted pushes through one
            # stack. With a key the default is safe (encrypted only): the
            # tests of the encoding itself give `encoding` of their own.
            'encoding = %s' % self.encoding,
            'original_id = %s' % self.original_id,
            'mode = workspace',
            'api_base = http://127.0.0.1:%d' % api_port,
            'timestamp_window = 300',
            'dedupe_ttl = 600',
            '',
            '[redis]',
            'url = redis://127.0.0.1:%d/0' % self.redis_port,
            'connect_timeout_ms = 500',
            'io_timeout_ms = 1000',
            '',
            '[postgres]',
            'dsn = host=127.0.0.1 port=%d dbname=wxkf user=wxkf'
            % self.pg_port,
            '',
            '[http]',
            'max_body = %d' % self.max_body,
            '',
            '[log]',
            'level = info',
            'file = %s' % self.log_file,
            '',
            '[texts]',
            'welcome = %s' % self.welcome,
            '',
        ])
        lines = text.split('\n')
        for sec, kv in self.extra.items():
            start = lines.index('[%s]' % sec) if '[%s]' % sec in lines \
                else None
            if start is None:
                lines += ['[%s]' % sec]
                start = len(lines) - 1
            for k, v in kv.items():
                lines = [ln for i, ln in enumerate(lines)
                         if not (i > start and ln.startswith(k + ' ='))]
                lines.insert(start + 1, '%s = %s' % (k, v))
        text = '\n'.join(lines) + '\n'
        with open(self.conf, 'w', encoding='utf-8') as f:
            f.write(text)
        os.chmod(self.conf, 0o644)

    def env(self):
        e = dict(os.environ)
        e.update({
            'STACK_DIR': self.dir,
            'WXKF_BIN': wxkf_bin(),
            'WXKF_CONF': self.conf,
            'PORT': str(self.port),
            'REDIS_PORT': str(self.redis_port),
            'PG_PORT': str(self.pg_port),
            'WORKERS': str(self.workers),
            'PG_FSYNC': 'off',
            'MAX_BODY': NGINX_MAX_BODY,
        })
        if self.skip_pg:
            e['SKIP_PG'] = '1'
        else:
            e.pop('SKIP_PG', None)
        return e

    def script(self, action, timeout):
        try:
            return subprocess.run(['bash', STACK_SH, action], env=self.env(),
                                  cwd=REPO, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired as e:
            return subprocess.CompletedProcess(
                e.cmd, 124, e.stdout or '', (e.stderr or '') +
                '\n(timed out after %ss)' % timeout)

    def start(self):
        if not os.path.isfile(STACK_SH):
            raise RuntimeError('%s does not exist' % STACK_SH)
        if not os.access(wxkf_bin(), os.X_OK):
            raise RuntimeError('WXKF_BIN %s is not an executable (make san)'
                               % wxkf_bin())
        self.started = True
        r = self.script('start', START_TIMEOUT)
        for _ in PORT_ATTRS:        # each port replaced once at the most
            if r.returncode != BIND_FAILED_RC or not self._move_taken_port():
                break
            r = self.script('start', START_TIMEOUT)
        if r.returncode != 0:
            self.failed = True
            raise RuntimeError('stack.sh start failed (rc %d)\n%s\n%s\n%s'
                               % (r.returncode, r.stdout[-4000:],
                                  r.stderr[-4000:], self.log_tails()))
        self.wait_ready()

    def wait_ready(self, timeout=READY_TIMEOUT):
        u = self.user()

        def ready():
            try:
                r = u.verify('ready')
            except requests.RequestException:
                return False
            return r.status_code not in (502, 503, 504)
        try:
            wait_until(ready, timeout, 0.2, 'the stack to answer')
            wait_until(lambda: self.redis.ping(), timeout, 0.2, 'redis')
        except AssertionError as e:
            self.failed = True
            raise RuntimeError('%s\n%s' % (e, self.log_tails())) from None

    def stop(self):
        if not self.started:
            return None
        r = self.script('stop', STOP_TIMEOUT)
        try:
            self.redis.close()
        except Exception:       # noqa: BLE001
            pass
        return r

    def cleanup(self):
        if self.failed or os.environ.get('WXKF_KEEP_STACK'):
            sys.stderr.write('\nwxkf stack kept in %s\n' % self.dir)
            return
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- inspection ----------------------------------------------------------

    def log_files(self):
        return log_files(self.dir)

    def log_tails(self, lines=40):
        parts = []
        names = [self.log_file, os.path.join(self.dir, 'logs',
                                             'nginx-error.log')]
        names += [p for p in self.log_files() if p not in names and
                  'error' in os.path.basename(p)]
        for p in names:
            if os.path.exists(p):
                parts.append('--- tail of %s ---\n%s' % (p, tail(p, lines)))
        return '\n'.join(parts) or '(no logs under %s)' % self.dir

    def sanitizer_reports(self):
        return sanitizer_reports(self.dir)

    def multiwatch_pid(self):
        with open(os.path.join(self.dir, 'run', 'multiwatch.pid')) as f:
            return int(f.read().strip())

    def worker_pids(self):
        return child_pids(self.multiwatch_pid())

    def user(self, openid=None, mode='plain', **kw):
        return WxUser(self.url, self.token, self.app_id, self.aes_key,
                      original_id=self.original_id,
                      openid=openid or random_openid(), mode=mode, **kw)

    def xlen(self):
        return self.redis.xlen(self.stream)

    def msg_count(self):
        """Messages recorded (msg_in entries; routing adds other events)."""
        return sum(1 for _id, f in self.entries() if f.get('type') == 'msg_in')

    def entries(self):
        """All stream entries as (id, fields dict)."""
        return self.redis.xrange(self.stream, '-', '+')

    def entries_for(self, key):
        return [f for _id, f in self.entries() if f.get('key') == key]

    def dedupe_keys(self):
        return sorted(self.redis.scan_iter(match=self.dedupe_prefix + '*',
                                           count=1000))

    def snapshot(self):
        return {'xlen': self.xlen(), 'dedupe': len(self.dedupe_keys()),
                'workers': self.worker_pids()}


def _sigterm_to_interrupt(signum, frame):
    raise KeyboardInterrupt('SIGTERM')


def pytest_collection_modifyitems(config, items):
    """Benchmarks (marked `bench`) run under `make bench` (WXKF_BENCH=1),
    not in `make test`: they measure, they do not check behaviour."""
    if os.environ.get('WXKF_BENCH'):
        return
    keep = [i for i in items if 'bench' not in i.keywords]
    if len(keep) != len(items):
        config.hook.pytest_deselected(
            items=[i for i in items if 'bench' in i.keywords])
        items[:] = keep


def pytest_configure(config):
    config.addinivalue_line('markers', 'bench: a benchmark (make bench)')
    # Let finalizers (stack stop) run when the suite is terminated.
    try:
        signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    except ValueError:
        pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for st in list(ACTIVE_STACKS):
            st.failed = True
            rep.sections.append(('wxkf stack logs (%s)' % st.dir,
                                 st.log_tails(30)))


def run_stack(name, before_start=None, **kw):
    """Generator body shared by the stack fixtures: start, yield, always
    stop, then fail if a sanitizer reported anything. before_start(st), if
    given, runs between choosing the ports and starting."""
    st = Stack(name, **kw)
    ACTIVE_STACKS.append(st)
    try:
        if before_start:
            before_start(st)
        st.start()
        yield st
    finally:
        ACTIVE_STACKS.remove(st)
        r = st.stop()
        if r is not None and r.returncode != 0:
            sys.stderr.write('stack.sh stop rc %d: %s %s\n'
                             % (r.returncode, r.stdout[-2000:],
                                r.stderr[-2000:]))
        hits = st.sanitizer_reports() if st.started else []
        if hits:
            st.failed = True
        st.cleanup()
    assert not hits, 'sanitizer reports in the worker log:\n' + \
        '\n'.join(hits[:20])


SIM_SECRET = 'simSecret0123456789abcdef'


def sim_server(secret=SIM_SECRET):
    """Generator body for a simulator fixture: the WeChat API simulator
    (test/sim/wechat_api_sim.py) on a free loopback port, always stopped."""
    from wechat_api_sim import SimServer
    s = SimServer(appid=APP_ID, secret=secret).start()
    try:
        yield s
    finally:
        s.stop()


def run_sim_stack(name, sim, secret=SIM_SECRET, workers=2, extra=None):
    """run_stack wired to the simulator both ways: the workers call it as
    WeChat's API (api_base, app_secret), and its simulated users post
    their callbacks to the stack."""
    extra = dict(extra or {})
    extra['wechat'] = dict(extra.get('wechat', {}), api_base=sim.base_url,
                           app_secret=secret)
    gen = run_stack(name, workers=workers, extra=extra)
    st = next(gen)
    sim.config(callback=st.url, token=TOKEN, aes_key=AES_KEY,
               original_id=ORIGINAL_ID)
    yield st
    yield from gen


@pytest.fixture(scope='session')
def stack():
    yield from run_stack('main')


@pytest.fixture
def wx(stack):
    """A fresh simulated user (unique openid) in plain mode."""
    return stack.user()


@pytest.fixture
def nothing_stored(stack):
    """For bad-input tests: asserts afterwards that the stream and the
    dedupe keys are unchanged and the workers are the same processes."""
    before = stack.snapshot()
    yield before
    after = stack.snapshot()
    assert after['xlen'] == before['xlen'], 'a stream entry was added'
    assert after['dedupe'] == before['dedupe'], 'a dedupe key was added'
    assert after['workers'] == before['workers'], \
        'worker processes changed (crash?): %s -> %s' % (before['workers'],
                                                         after['workers'])


def assert_error(resp, status, code=None, codes=None):
    """A JSON error response {"error":{"code","message"}}."""
    assert resp.status_code == status, (resp.status_code, resp.text[:500])
    ctype = resp.headers.get('Content-Type', '')
    assert ctype.startswith('application/json'), ctype
    assert resp.headers.get('X-Request-Id'), 'no X-Request-Id'
    body = resp.json()
    err = body.get('error')
    assert isinstance(err, dict), body
    assert isinstance(err.get('message'), str) and err['message'], body
    if code is not None:
        assert err.get('code') == code, body
    if codes is not None:
        assert err.get('code') in codes, body
    return err


def load_index():
    with open(os.path.join(VECTORS, 'inbound', 'index.json'),
              encoding='utf-8') as f:
        return json.load(f)


__all__ = ['wc', 'WxUser', 'Stack', 'assert_error', 'wait_until',
           'load_index', 'VECTORS', 'run_stack']
