"""Redis goes away and comes back: the worker answers 503
backend_unavailable (WeChat will retry), stays alive, and serves again once
Redis is back. Uses its own stack (no PostgreSQL), so stopping Redis does
not disturb the other tests."""

import subprocess
import time

import pytest

from conftest import START_TIMEOUT, assert_error, run_stack, wait_until, wc


@pytest.fixture(scope='module')
def ostack():
    yield from run_stack('redis-outage', skip_pg=True)


def redis_cli(st, *args):
    return subprocess.run(['redis-cli', '-h', '127.0.0.1', '-p',
                           str(st.redis_port)] + list(args),
                          stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=10)


def redis_down(st):
    try:
        st.redis.ping()
    except Exception:       # noqa: BLE001 - any failure means down
        return True
    return False


def test_redis_outage_gives_503_then_recovers(ostack):
    st = ostack
    u = st.user()
    assert u.send_text('before the outage').content == b'success'
    workers = st.worker_pids()
    assert workers, 'no workers under multiwatch'

    redis_cli(st, 'shutdown', 'nosave')
    wait_until(lambda: redis_down(st), 10, 0.1, 'redis to stop')

    xml_a = u.text_xml('during the outage')
    r = u.send_raw(xml_a, 'plain')
    assert_error(r, 503, 'backend_unavailable')
    # A second one too: the worker must not have cached a dead connection
    # in a way that crashes it.
    assert_error(u.send_text('again during the outage'), 503,
                 'backend_unavailable')
    time.sleep(0.5)
    assert st.worker_pids() == workers, 'a worker died during the outage'

    rs = st.script('start', START_TIMEOUT)     # restarts only what is down
    assert rs.returncode == 0, (rs.stdout[-2000:], rs.stderr[-2000:])

    xml_b = u.text_xml('after the outage')
    key_b = 'msgid:%s' % wc.parse_fields(xml_b)['MsgId']

    def delivered():
        resp = u.send_raw(xml_b, 'plain')
        return resp.status_code == 200 and resp.content == b'success'
    wait_until(delivered, 10, 0.25, 'a callback to succeed after restart')
    assert len(st.entries_for(key_b)) == 1

    # WeChat's retry of the message that got 503 is now stored, once.
    key_a = 'msgid:%s' % wc.parse_fields(xml_a)['MsgId']
    for _ in range(2):
        resp = u.send_raw(xml_a, 'plain')
        assert resp.status_code == 200 and resp.content == b'success'
    assert len(st.entries_for(key_a)) == 1
    assert st.worker_pids() == workers, 'workers were replaced'
