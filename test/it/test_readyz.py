"""GET /readyz (issue 15 item 7): each check pings Redis and opens a
PostgreSQL connection (a backend forked), so nginx allows it from this
machine only, like /metrics (the production template: the monitoring
network), and a worker checks at most once a second, answering from its
last result in between — never one more than a second old. Uses its own
stack: the last test stops Redis."""

import os
import re
import socket
import subprocess
import time

import pytest

from conftest import REPO, START_TIMEOUT, run_stack, wait_until


@pytest.fixture(scope='module')
def rstack():
    yield from run_stack('readyz', workers=2)


def status_from(st, path, source):
    """The status nginx answers GET path with, the client's address being
    source (any 127.x address reaches the stack's 127.0.0.1)."""
    s = socket.create_connection(('127.0.0.1', st.port), timeout=10,
                                 source_address=(source, 0))
    try:
        s.sendall(b'GET ' + path.encode() + b' HTTP/1.1\r\n'
                  b'Host: 127.0.0.1\r\nConnection: close\r\n\r\n')
        head = b''
        while b'\r\n' not in head and len(head) < 4096:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
    finally:
        s.close()
    m = re.match(rb'HTTP/1\.[01] (\d{3}) ', head)
    assert m, head[:200]
    return int(m.group(1))


def pings(st):
    return int(st.redis.info('commandstats').get('cmdstat_ping', {})
               .get('calls', 0))


def test_readyz_is_for_this_machine_only(rstack):
    assert status_from(rstack, '/readyz', '127.0.0.1') == 200
    assert status_from(rstack, '/readyz', '127.0.0.2') == 403
    assert status_from(rstack, '/metrics', '127.0.0.2') == 403
    assert status_from(rstack, '/healthz', '127.0.0.2') == 200


def location_rules(conf, path):
    """The allow/deny lines of `location = path { ... }`."""
    start = conf.index('location = %s {' % path)
    block = conf[start:conf.index('}', start)]
    return [re.sub(r'\s*#.*$', '', ln).strip() for ln in block.splitlines()
            if re.match(r'\s*(allow|deny)\s', ln)]


def test_production_template_restricts_readyz_like_metrics():
    with open(os.path.join(REPO, 'nginx', 'wxkf-production.conf')) as f:
        conf = f.read()
    rules = location_rules(conf, '/readyz')
    assert rules and rules[-1] == 'deny all;'
    assert rules == location_rules(conf, '/metrics')


def test_readyz_checks_at_most_once_a_second_per_worker(rstack):
    st = rstack
    before, t0 = pings(st), time.monotonic()
    for _ in range(60):
        assert status_from(st, '/readyz', '127.0.0.1') == 200
    elapsed = time.monotonic() - t0
    checks = pings(st) - before
    # one check (one PING, one PostgreSQL connection) per worker and
    # second at most, not one per request
    assert checks <= st.workers * (int(elapsed) + 2), (checks, elapsed)


def test_readyz_is_never_more_than_a_second_stale(rstack):
    st = rstack
    subprocess.run(['redis-cli', '-h', '127.0.0.1', '-p', str(st.redis_port),
                    'shutdown', 'nosave'], stdin=subprocess.DEVNULL,
                   capture_output=True, timeout=10)

    def down():
        try:
            st.redis.ping()
        except Exception:       # noqa: BLE001 - any failure means down
            return True
        return False
    wait_until(down, 10, 0.1, 'redis to stop')
    time.sleep(1.1)             # every worker's last result is now stale
    assert [status_from(st, '/readyz', '127.0.0.1')
            for _ in range(10)] == [503] * 10
    rs = st.script('start', START_TIMEOUT)
    assert rs.returncode == 0, (rs.stdout[-2000:], rs.stderr[-2000:])
    wait_until(lambda: all(status_from(st, '/readyz', '127.0.0.1') == 200
                           for _ in range(4)), 15, 0.25, 'ready again')
