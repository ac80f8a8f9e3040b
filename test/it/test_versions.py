"""The oldest Redis and PostgreSQL wxkf works with (docs/operations.md,
"Versions"): `wxkf check` names a server that is too old, by name and
version, and exits 1; `wxkf migrate`, the workers and `wxkf jobs` refuse to
start against one with the same sentence, instead of failing later on the
first XAUTOCLAIM or partitioned insert. Against the real stack, check
prints the versions and passes.

The old servers are fakes written here, on loopback ports: a Redis that
speaks enough RESP to answer PING and INFO, and a PostgreSQL that speaks
enough of the v3 protocol to let libpq log in and read server_version.
"""

import os
import re
import socket
import struct
import subprocess
import threading

import pytest

from conftest import STACK_SH, Stack, wxkf_bin

RUN_TIMEOUT = 30            # one wxkf run against the fakes
CONN_TIMEOUT = 10           # one client connection on a fake
REDIS_WHY = '(XAUTOCLAIM, GETDEL, XTRIM MINID)'


class FakeServer:
    """A loopback TCP server: each connection is served by handle(conn)
    in a thread of its own; stop() closes everything and joins."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.threads = []
        self.accepted = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.settimeout(CONN_TIMEOUT)
            t = threading.Thread(target=self._serve, args=(conn,),
                                 daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, conn):
        try:
            self.handle(conn)
        except (OSError, ValueError):
            pass
        finally:
            conn.close()

    def stop(self):
        self.stopping.set()
        self.sock.close()
        self.thread.join(5)
        for t in self.threads:
            t.join(CONN_TIMEOUT + 1)


def recv_exact(conn, n):
    data = b''
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ValueError('closed')
        data += chunk
    return data


class FakeRedis(FakeServer):
    """PING, INFO (redis_version), anything else an error; RESP arrays of
    bulk strings, as hiredis sends them."""

    def __init__(self, version):
        self.version = version
        self.commands = []
        super().__init__()

    def handle(self, conn):
        f = conn.makefile('rb')
        for _ in range(100):            # bounded: a client sends a few
            line = f.readline(100)
            if not line:
                return
            if not line.startswith(b'*'):
                raise ValueError('not RESP')
            argv = []
            for _ in range(min(int(line[1:]), 16)):
                n = int(f.readline(100)[1:])
                argv.append(f.read(n + 2)[:n].decode())
            cmd = argv[0].upper() if argv else ''
            self.commands.append(cmd)
            if cmd == 'AUTH':
                conn.sendall(b'+OK\r\n')
            elif cmd == 'PING':
                conn.sendall(b'+PONG\r\n')
            elif cmd == 'INFO':
                body = ('# Server\r\nredis_version:%s\r\n'
                        'redis_mode:standalone\r\n' % self.version).encode()
                conn.sendall(b'$%d\r\n%s\r\n' % (len(body), body))
            else:
                conn.sendall(b'-ERR unknown command in this fake\r\n')


class FakePostgres(FakeServer):
    """Refuses SSL and GSS encryption, lets anyone in without a password,
    reports server_version, then waits for the client to go."""

    SSL, GSS = 80877103, 80877104

    def __init__(self, version):
        self.version = version
        self.sent = []                  # message types after log-in
        super().__init__()

    @staticmethod
    def msg(kind, payload):
        return kind + struct.pack('!I', len(payload) + 4) + payload

    def handle(self, conn):
        for _ in range(3):              # SSLRequest / GSSENCRequest first
            n = struct.unpack('!I', recv_exact(conn, 4))[0]
            if not 8 <= n <= 10000:
                raise ValueError('bad startup length')
            body = recv_exact(conn, n - 4)
            code = struct.unpack('!I', body[:4])[0]
            if code in (self.SSL, self.GSS):
                conn.sendall(b'N')
                continue
            break
        else:
            raise ValueError('no startup message')
        out = self.msg(b'R', struct.pack('!I', 0))          # AuthenticationOk
        for k, v in (('server_version', self.version),
                     ('server_encoding', 'UTF8'),
                     ('client_encoding', 'UTF8'),
                     ('standard_conforming_strings', 'on'),
                     ('integer_datetimes', 'on')):
            out += self.msg(b'S', k.encode() + b'\0' + v.encode() + b'\0')
        out += self.msg(b'K', struct.pack('!II', 4242, 4242))
        out += self.msg(b'Z', b'I')
        conn.sendall(out)
        for _ in range(100):            # what the client sends, up to 'X'
            kind = recv_exact(conn, 1)
            n = struct.unpack('!I', recv_exact(conn, 4))[0]
            recv_exact(conn, n - 4)
            self.sent.append(kind.decode())
            if kind == b'X':            # Terminate
                return


@pytest.fixture
def fakes():
    """Starts fakes on demand: fakes('redis', '6.0.16'); all stopped at the
    end."""
    made = []

    def start(kind, version):
        s = (FakeRedis if kind == 'redis' else FakePostgres)(version)
        made.append(s)
        return s
    yield start
    for s in made:
        s.stop()


@pytest.fixture
def conf_for(fakes):
    """A config (in a Stack's folder, never started) whose Redis and
    PostgreSQL are the fakes of the given versions."""
    stacks = []

    def make(redis_version, pg_version):
        r = fakes('redis', redis_version)
        p = fakes('postgres', pg_version)
        st = Stack('versions', extra={
            'redis': {'url': 'redis://127.0.0.1:%d/0' % r.port},
            'postgres': {'dsn': 'host=127.0.0.1 port=%d dbname=wxkf '
                                'user=wxkf sslmode=prefer' % p.port}})
        st.fake_pg = p
        stacks.append(st)
        return st
    yield make
    for st in stacks:
        st.cleanup()


def run(*args, stdin=subprocess.DEVNULL):
    return subprocess.run([wxkf_bin()] + list(args), stdin=stdin,
                          capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)


def log_text(st):
    try:
        with open(st.log_file, encoding='utf-8', errors='replace') as f:
            return f.read()
    except FileNotFoundError:
        return ''


def test_check_names_a_redis_that_is_too_old(conf_for):
    st = conf_for('6.0.16', '15.18')
    out = run('check', '-c', st.conf)
    assert out.returncode == 1, out.stdout + out.stderr
    assert re.search(r'^redis: TOO OLD \(redis://127\.0\.0\.1:\d+/0\): '
                     r'redis 6\.0\.16 is too old: wxkf needs >= 6\.2\.0 '
                     + re.escape(REDIS_WHY) + '$', out.stdout, re.M), \
        out.stdout
    assert 'postgres: ok (postgres 15.18.0)' in out.stdout


def test_check_names_a_postgres_that_is_too_old(conf_for):
    st = conf_for('7.0.15', '10.23')
    out = run('check', '-c', st.conf)
    assert out.returncode == 1, out.stdout + out.stderr
    assert re.search(r'^redis: ok \(redis://127\.0\.0\.1:\d+/0, '
                     r'redis 7\.0\.15\)$', out.stdout, re.M), out.stdout
    assert re.search(r'^postgres: TOO OLD: postgres 10\.23\.0 is too old: '
                     r'wxkf needs >= 11\.0\.0 \(DEFAULT partitions',
                     out.stdout, re.M), out.stdout


def test_check_passes_at_exactly_the_minimum(conf_for):
    st = conf_for('6.2.0', '11.0')
    out = run('check', '-c', st.conf)
    assert out.returncode == 0, out.stdout + out.stderr
    assert 'redis 6.2.0)' in out.stdout and 'postgres 11.0.0)' in out.stdout


def test_check_never_prints_the_redis_password(conf_for):
    st = conf_for('6.0.16', '15.18')
    port = re.search(r':(\d+)/0$', st.extra['redis']['url']).group(1)
    secret = 'pw-' + 'q7Zr9x'
    st.extra['redis']['url'] = 'redis://:%s@127.0.0.1:%s/0' % (secret, port)
    st._write_conf()
    out = run('check', '-c', st.conf)
    assert out.returncode == 1, out.stdout + out.stderr
    assert ('redis: TOO OLD (redis://(password)@127.0.0.1:%s/0): redis '
            '6.0.16 is too old' % port) in out.stdout, out.stdout
    assert secret not in out.stdout + out.stderr


def test_migrate_refuses_a_postgres_that_is_too_old(conf_for):
    st = conf_for('7.0.15', '9.6.24')
    out = run('migrate', '-c', st.conf)
    assert out.returncode == 1, out.stdout + out.stderr
    assert 'postgres 9.6.24 is too old: wxkf needs >= 11.0.0' in out.stderr
    # not one statement reached it (not even a ROLLBACK): it logged out
    st.fake_pg.stop()
    assert st.fake_pg.sent == ['X']


def test_worker_refuses_to_start_against_a_redis_that_is_too_old(conf_for):
    st = conf_for('6.0.16', '15.18')
    os.makedirs(os.path.dirname(st.log_file), exist_ok=True)
    path = os.path.join(st.dir, 'fcgi.sock')
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        listener.listen(4)
        out = run('fcgi', '-c', st.conf, stdin=listener.fileno())
    finally:
        listener.close()
    assert out.returncode == 1, out.stdout + out.stderr
    line = ('redis 6.0.16 is too old: wxkf needs >= 6.2.0 %s' % REDIS_WHY)
    assert 'wxkf fcgi: ' + line in out.stderr
    assert ('mod=version ev=server_too_old msg="%s"' % line) in log_text(st)
    assert 'worker_start' not in log_text(st)


def test_jobs_refuse_to_start_against_a_postgres_that_is_too_old(conf_for):
    st = conf_for('7.0.15', '10.23')
    os.makedirs(os.path.dirname(st.log_file), exist_ok=True)
    out = run('jobs', '-c', st.conf)
    assert out.returncode == 1, out.stdout + out.stderr
    assert 'wxkf jobs: postgres 10.23.0 is too old' in out.stderr
    log = log_text(st)
    assert 'ev=server_too_old msg="postgres 10.23.0 is too old' in log
    assert 'ev=start' not in log


def test_check_reports_the_real_servers_versions(stack):
    out = run('check', '-c', stack.conf)
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r'^redis: ok \(redis://127\.0\.0\.1:%d/0, redis '
                     r'\d+\.\d+\.\d+\)$' % stack.redis_port, out.stdout,
                     re.M), out.stdout
    assert re.search(r'^postgres: ok \(postgres \d+\.\d+\.\d+\)$',
                     out.stdout, re.M), out.stdout


def start_with_fake_tools(nginx_version, nchan_version):
    """scripts/stack.sh start with `nginx -v` and dpkg's word on Nchan
    faked (first on PATH); returns (the stack, the finished run)."""
    st = Stack('versions-nginx')
    fake = os.path.join(st.dir, 'fakebin')
    os.makedirs(fake)
    for name, text in (
            ('nginx', 'echo "nginx version: nginx/%s" >&2\n' % nginx_version),
            ('dpkg-query', 'printf %%s "1:%s+dfsg-2"\n' % nchan_version)):
        path = os.path.join(fake, name)
        with open(path, 'w') as f:
            f.write('#!/bin/sh\n' + text)
        os.chmod(path, 0o755)
    env = st.env()
    env['PATH'] = fake + os.pathsep + env['PATH']
    out = subprocess.run(['bash', STACK_SH, 'start'], env=env,
                         stdin=subprocess.DEVNULL, capture_output=True,
                         text=True, timeout=RUN_TIMEOUT)
    return st, out


@pytest.mark.parametrize('nginx_version, nchan_version, said', [
    ('1.10.3', '1.3.6', 'nginx 1.10.3 is too old: wxkf needs >= 1.13.0 '
     '(TLSv1.3 in ssl_protocols, $request_id, dynamic modules)'),
    ('1.22.1', '1.2.7', 'nchan 1.2.7 is too old: wxkf needs >= 1.3.6'),
])
def test_stack_refuses_an_nginx_or_nchan_too_old(nginx_version,
                                                 nchan_version, said):
    st, out = start_with_fake_tools(nginx_version, nchan_version)
    try:
        assert out.returncode == 1, out.stdout + out.stderr
        assert 'stack: ERROR: ' + said in out.stderr
        # refused before anything was started
        assert not os.path.exists(os.path.join(st.dir, 'run', 'redis.pid'))
    finally:
        st.script('stop', 60)
        st.cleanup()
