"""The waiting queue at scale against the real stack (issue 15, item 6):
a queue of 100,000 waiting users, left as a LIST by an earlier release,
is converted on first touch; a waiting user's message then costs the same
Redis work as in a queue of one (no command walks the queue), the queue
keeps its order, a new user is told how many are ahead of them, and past
[routing] queue_max a new user gets [texts] queue_full instead of a place.
The work is counted with MONITOR (the commands the ingest script runs),
not timed; wall-clock figures are printed for the record only."""

import statistics
import threading
import time

import pytest
import redis as redis_lib

from conftest import run_stack
from test_routing import make_agents, reply_text
from wxkf_checks import load_violations

BIG = 100000          # [routing] queue_max in this stack, and the queue
QUEUED = '您前面还有 {n} 位用户在等待'
FULL = '排队人数已满'
# Commands whose cost grows with the queue they read.
QUEUE_WALKS = {'LRANGE', 'LREM', 'LPOS', 'ZRANGE', 'ZREVRANGE',
               'ZRANGEBYSCORE', 'SORT'}

FILL_LUA = """
local P, from, to = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
for i = from, to do
    local o = string.format('oFill%023d', i)
    redis.call('HSET', P .. 'sess:' .. o, 'id', 'f' .. i, 'state', 'waiting',
               'agent', '', 'group', 'big', 'queued_ms', i, 'opened_ms', i)
    redis.call('RPUSH', P .. 'queue:big', o)
end
"""


@pytest.fixture(scope='module')
def qstack():
    yield from run_stack('queue', workers=2, extra={
        'routing': {'default_capacity': '1', 'queue_timeout': '0',
                    'first_reply_timeout': '0', 'queue_max': str(BIG),
                    'keyword_groups': '[big]:big'},
        'texts': {'queued': QUEUED + '，请稍候。',
                  'queue_full': FULL + '（{n}），请稍后再试。',
                  'no_agent': '无人在线'},
    })


def prefix(stack):
    return 'wxkf:{%s}:' % stack.app_id


def script_commands(stack, user, text):
    """Sends text as user and returns (reply, the commands the ingest
    script ran for it, uppercased names in order). MONITOR shows each
    command a script runs right after the EVALSHA that ran it, and a
    script runs alone; the EVALSHA is the one naming this user (a NOSCRIPT
    EVALSHA runs nothing; the EVAL after it does). Bounded:
    10 s and 100,000 monitored lines."""
    mon_client = redis_lib.Redis(host='127.0.0.1', port=stack.redis_port,
                                 decode_responses=True, socket_timeout=10)
    seen, ready = [], threading.Event()
    marker = 'end-of-%s' % user.openid

    def watch():
        with mon_client.monitor() as m:
            ready.set()
            for _ in range(100000):
                c = m.next_command()
                seen.append(c)
                if c['client_type'] != 'lua' and marker in c['command']:
                    return

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    assert ready.wait(5)
    time.sleep(0.2)         # MONITOR is on once the thread is in the loop
    resp = user.send_text(text)
    stack.redis.echo(marker)
    t.join(10)
    assert not t.is_alive(), 'MONITOR did not see the marker'
    mon_client.close()
    cmds, inside = [], False
    for c in seen:
        if c['client_type'] == 'lua':
            if inside:
                cmds.append(c['command'].split(' ', 1)[0].upper())
        else:
            # EVALSHA, or EVAL after a NOSCRIPT
            inside = c['command'].upper().startswith(('EVALSHA ', 'EVAL ')) \
                and user.openid in c['command'] and 'msg_in' in c['command']
            if inside and cmds:
                raise AssertionError('two ingests for one message')
    assert cmds, 'no ingest script seen for %s' % user.openid
    return resp, cmds


def latency_ms(user, n=20):
    """The median wall-clock time of n messages (for the report only)."""
    out = []
    for i in range(n):
        t0 = time.monotonic()
        user.send_text('still waiting %d' % i)
        out.append((time.monotonic() - t0) * 1000)
    return statistics.median(out)


def test_a_waiting_users_message_costs_the_same_in_a_queue_of_100000(
        qstack):
    st, p = qstack, prefix(qstack)
    ag = make_agents(st, [dict(account='qa1', capacity=1),
                          dict(account='qb1', capacity=1, groups=['big'])])
    ag['qb1'].status('online')
    ag['qa1'].status('online')
    assert st.user().send_text('[big] served').status_code == 200
    assert st.user().send_text('served').status_code == 200
    # a queue of one: the first in line has nobody ahead (issue 17)
    small = st.user()
    assert QUEUED.format(n=0) in reply_text(small, small.send_text('hi'))
    resp, small_cmds = script_commands(st, small, 'again')
    assert QUEUED.format(n=0) in reply_text(small, resp)

    # 99,999 users waiting in a LIST, as the release before this one kept
    # them; the next new user converts it and stands at the back
    t0 = time.monotonic()
    for start in range(1, BIG, 10000):      # 10 scripts of 10,000
        st.redis.eval(FILL_LUA, 1, p, start, min(start + 9999, BIG - 1))
    assert st.redis.llen(p + 'queue:big') == BIG - 1
    # listed last, so nothing converts it before it is whole (the first
    # to touch it may be `wxkf jobs` draining it or the next callback)
    st.redis.sadd(p + 'queues', 'big')
    fill_s = time.monotonic() - t0
    big = st.user()
    t0 = time.monotonic()
    text = reply_text(big, big.send_text('[big] hi'))
    convert_ms = (time.monotonic() - t0) * 1000
    assert QUEUED.format(n=BIG - 1) in text, text

    resp, big_cmds = script_commands(st, big, 'again')
    assert QUEUED.format(n=BIG - 1) in reply_text(big, resp)
    small_ms, big_ms = latency_ms(small), latency_ms(big)
    print('\nqueue of 1: %d commands, median callback %.1f ms; queue of '
          '%d: %d commands, median callback %.1f ms (fill %.1f s, first '
          'touch %.0f ms)' % (len(small_cmds), small_ms, BIG, len(big_cmds),
                              big_ms, fill_s, convert_ms))
    # the same work whatever the length, and none of it walks the queue
    assert big_cmds == small_cmds, (small_cmds, big_cmds)
    assert not QUEUE_WALKS & set(big_cmds), big_cmds
    # converted in its order, the new user at the back
    assert st.redis.type(p + 'queue:big') == 'zset'
    assert st.redis.zcard(p + 'queue:big') == BIG
    assert st.redis.zrange(p + 'queue:big', 0, 1) == \
        ['oFill%023d' % 1, 'oFill%023d' % 2]
    assert st.redis.zrange(p + 'queue:big', -1, -1) == [big.openid]

    # the queue is at [routing] queue_max: a new user is turned away with
    # the queue_full text and gets no session; other groups still queue
    late = st.user()
    text = reply_text(late, late.send_text('[big] me too'))
    assert FULL + '（%d）' % BIG in text, text
    assert not st.redis.exists(p + 'sess:' + late.openid)
    assert st.redis.zcard(p + 'queue:big') == BIG
    other = st.user()
    assert QUEUED.format(n=1) in reply_text(other, other.send_text('hi'))
    # loads and queues consistent (checked over all 100,000: a longer
    # timeout than the stack's client has)
    r = redis_lib.Redis(host='127.0.0.1', port=st.redis_port,
                        decode_responses=True, socket_timeout=120)
    try:
        _loads, bad = load_violations(r, p, 1)
    finally:
        r.close()
    assert not bad, bad[:10]
