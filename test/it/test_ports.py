"""Ports of private services (issue 22): chosen below the kernel's ephemeral
range and checked by binding (test/pylib/wxkf_ports.py, scripts/ports.sh),
and a port that an outgoing connection holds at start is replaced once, by
the test stacks (conftest.Stack over scripts/stack.sh) and by `make run`
(scripts/run.sh: var/ports.env and var/wxkf.conf rewritten)."""

import contextlib
import os
import re
import shutil
import subprocess
import tempfile

import pytest
import requests

from conftest import REPO, run_stack, sanitizer_reports, wxkf_bin
import wxkf_ports as wp

PORTS_SH = os.path.join(REPO, 'scripts', 'ports.sh')


def sh(script, *args):
    """script run by sh after sourcing scripts/ports.sh; its stdout."""
    r = subprocess.run(['sh', '-c', '. "$0"; ' + script, PORTS_SH] +
                       list(args), capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@contextlib.contextmanager
def connections_on(*ports):
    """Each port the local end of an established loopback connection."""
    socks = []
    try:
        for p in ports:
            socks += wp.occupy_with_connection(p)
        yield
    finally:
        for s in socks:
            s.close()


# --- the choice ---------------------------------------------------------------

@pytest.mark.parametrize('text,want', [
    ('32768\t60999\n', (10000, 32767)),
    ('49152 65535', (10000, 49151)),
    ('11000 60999', (10000, 10999)),
    ('10999 60999', (1024, 10998)),
    ('2024 65535', (1024, 2023)),
    ('2023 65535', wp.FALLBACK),
    ('', wp.FALLBACK),
    ('garbled', wp.FALLBACK),
    (None, wp.FALLBACK),            # unreadable
])
def test_range_is_below_the_ephemeral_range_in_both_helpers(tmp_path, text,
                                                             want):
    path = str(tmp_path / 'ip_local_port_range')
    if text is not None:
        with open(path, 'w') as f:
            f.write(text)
    assert wp.port_range(path) == want
    assert sh('ports_range "$1"', path) == '%d %d' % want


def test_chosen_ports_are_below_the_kernels_ephemeral_range():
    with open(wp.RANGE_FILE) as f:
        low = int(f.read().split()[0])
    lo, hi = wp.port_range()
    if low >= 2024:             # else the fixed fallback: nothing is below
        assert hi < low
    ports = wp.free_ports(5)
    assert len(set(ports)) == 5
    shell = [int(sh('free_port')) for _ in range(3)]
    for p in ports + shell:
        assert lo <= p <= hi, (p, lo, hi, low)
        assert wp.bindable(p)


def test_a_port_held_by_a_connection_is_never_chosen():
    lo, hi = wp.port_range()
    pair = None
    for p in wp.free_ports(20):
        if p + 1 <= hi and wp.bindable(p + 1):
            pair = p
            break
    assert pair, 'no two adjacent free ports'
    with connections_on(pair):
        assert not wp.bindable(pair)
        assert subprocess.run(['sh', '-c', '. "$0"; port_bindable "$1"',
                               PORTS_SH, str(pair)], timeout=30).returncode \
            == 1
        # a random start: both orders are tried, the held port never wins
        got = {wp.free_port(span=(pair, pair + 1)) for _ in range(20)}
        assert got == {pair + 1}
        with pytest.raises(RuntimeError):
            wp.free_ports(2, span=(pair, pair + 1))


def test_a_server_whose_bind_is_refused_is_started_once_more_elsewhere():
    """start_on_free_port (make bench's Redis replica, scratch servers)."""
    calls = []

    def refused_first(port):
        calls.append(port)
        if len(calls) == 1:
            raise wp.PortTaken(port)
        return port

    assert wp.start_on_free_port(refused_first, avoid=(1,)) == calls[1]
    assert len(calls) == 2 and calls[0] != calls[1] and 1 not in calls

    def always_refused(port):
        calls.append(port)
        raise wp.PortTaken(port)

    del calls[:]
    with pytest.raises(wp.PortTaken):
        wp.start_on_free_port(always_refused)
    assert len(calls) == 2          # once retried, not more


# --- the test stacks ----------------------------------------------------------

def test_stack_starts_when_its_ports_are_held_by_connections():
    """The bug: a port chosen as free is the local end of some client
    connection when the server binds it. Every port of the stack is."""
    with contextlib.ExitStack() as holds:
        taken = []

        def occupy(st):
            taken.extend((st.port, st.redis_port, st.pg_port))
            holds.enter_context(connections_on(*taken))

        gen = run_stack('ports', before_start=occupy)
        st = next(gen)
        try:
            check_moved_stack(st, taken)
        except BaseException:
            st.failed = True        # keep its directory
            raise
        finally:
            next(gen, None)         # stop; fails on sanitizer reports


def check_moved_stack(st, taken):
    """Each held port was replaced, the config follows, the stack
    serves."""
    assert st.moved == {'PORT': (taken[0], st.port),
                        'REDIS_PORT': (taken[1], st.redis_port),
                        'PG_PORT': (taken[2], st.pg_port)}
    assert not set(taken) & {st.port, st.redis_port, st.pg_port}
    with open(st.conf) as f:
        conf = f.read()
    assert 'redis://127.0.0.1:%d/0' % st.redis_port in conf
    assert 'port=%d ' % st.pg_port in conf
    assert requests.get(st.base + '/healthz', timeout=10).status_code \
        == 200
    assert st.redis.ping()
    r = requests.get(st.base + '/readyz', timeout=10)
    assert r.status_code == 200, r.text


# --- make run -------------------------------------------------------------------

def run_sh(root, action, env):
    return subprocess.run(['sh', os.path.join(root, 'scripts', 'run.sh'),
                           action], env=env, capture_output=True, text=True,
                          timeout=240, stdin=subprocess.DEVNULL)


def ports_env(root):
    with open(os.path.join(root, 'var', 'ports.env')) as f:
        return dict(re.findall(r'^([A-Z_]+)=(\d+)$', f.read(), re.M))


def test_make_run_moves_a_remembered_port_held_by_a_connection():
    """scripts/run.sh in a copy of the repo (its var/ is the copy's):
    var/ports.env remembers a Redis port that a connection holds and a
    PostgreSQL port inside the ephemeral range (an older run.sh chose up
    to 39999). The first start also finds nginx's port held (the user's
    PORT: not moved), so it fails and must leave nothing running; the
    second, told another PORT as that message asks (the connection's
    TIME_WAIT holds the old one for a minute), starts with the ports
    moved."""
    root = tempfile.mkdtemp(prefix='wxkf-it-run-', dir='/tmp')
    os.chmod(root, 0o755)
    for d in ('scripts', 'nginx', 'sql'):
        shutil.copytree(os.path.join(REPO, d), os.path.join(root, d))
    os.makedirs(os.path.join(root, 'docs'))
    shutil.copy(os.path.join(REPO, 'docs', 'wxkf.conf.sample'),
                os.path.join(root, 'docs'))
    var = os.path.join(root, 'var')
    os.makedirs(var)
    lo, hi = wp.port_range()
    port, sim_port, redis_port = wp.free_ports(3)
    pg_port = wp.free_port(span=(hi + 1, min(hi + 5000, 65535)))
    with open(os.path.join(var, 'ports.env'), 'w') as f:
        f.write('REDIS_PORT=%d\nPG_PORT=%d\n' % (redis_port, pg_port))
    env = dict(os.environ, PORT=str(port), SIM_PORT=str(sim_port),
               WXKF_BIN=wxkf_bin(), SIMULATOR_CMD='none', PG_FSYNC='off')
    ok = False
    try:
        with connections_on(port, redis_port):
            r = run_sh(root, 'start', env)
        out = r.stdout + r.stderr
        assert r.returncode != 0, out
        assert 'PostgreSQL port %d lies in the kernel\'s ephemeral range' \
            % pg_port in out, out
        assert 'Redis port %d was taken at start' % redis_port in out, out
        assert 'nginx: 127.0.0.1:%d is taken' % port in out, out
        # never half-started
        st = subprocess.run(['bash', os.path.join(root, 'scripts',
                                                  'stack.sh'), 'status'],
                            env=dict(env, STACK_DIR=var),
                            capture_output=True, text=True, timeout=60)
        assert re.findall(r'^(\S+)\s+up\b', st.stdout, re.M) == [], st.stdout
        moved = ports_env(root)
        new_redis, new_pg = int(moved['REDIS_PORT']), int(moved['PG_PORT'])
        assert new_redis != redis_port and lo <= new_redis <= hi
        assert new_pg != pg_port and lo <= new_pg <= hi
        with open(os.path.join(var, 'wxkf.conf')) as f:
            conf = f.read()
        assert 'url = redis://127.0.0.1:%d/0\n' % new_redis in conf
        assert 'dsn = host=127.0.0.1 port=%d dbname=wxkf' % new_pg in conf

        port = wp.free_port(avoid=(port, sim_port, new_redis, new_pg))
        env['PORT'] = str(port)
        r = run_sh(root, 'start', env)
        out = r.stdout + r.stderr
        assert r.returncode == 0, out
        assert 'taken' not in out and 'ephemeral' not in out, out
        assert ports_env(root) == moved
        assert requests.get('http://127.0.0.1:%d/readyz' % port,
                            timeout=10).status_code == 200
        ping = subprocess.run(['redis-cli', '-h', '127.0.0.1', '-p',
                               str(new_redis), 'ping'], capture_output=True,
                              text=True, timeout=10)
        assert ping.stdout.strip() == 'PONG'
        ok = True
    finally:
        stop = run_sh(root, 'stop', env)
        hits = sanitizer_reports(var)
        if ok and stop.returncode == 0 and not hits:
            shutil.rmtree(root, ignore_errors=True)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert not hits, '\n'.join(hits[:20])
