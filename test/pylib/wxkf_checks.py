"""Checks shared by the black-box suites (test/it) and the multi-host one
(test/cluster): a bounded poll, the routing invariant evaluated
atomically in Redis, "every acknowledged callback archived exactly
once", and the scan of logs for sanitizer reports. Standard library only; the callers bring their own Redis and
PostgreSQL connections."""

import time

SANITIZER_MARKERS = ('ERROR: AddressSanitizer', 'ERROR: LeakSanitizer',
                     'runtime error:')


def sanitizer_reports(paths):
    """'path: line' for each line of the files in paths that reports a
    sanitizer finding (unreadable files are passed over)."""
    hits = []
    for p in paths:
        try:
            with open(p, encoding='utf-8', errors='replace') as f:
                for line in f:
                    if any(m in line for m in SANITIZER_MARKERS):
                        hits.append('%s: %s' % (p, line.rstrip()))
        except OSError:
            continue
    return hits


def wait_until(fn, timeout, interval=0.1, what='condition'):
    """Poll fn() until it returns a truthy value; bounded in time and
    count. Returns the value; raises AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    for _ in range(int(timeout / interval) + 2):
        try:
            last = fn()
        except Exception as e:     # noqa: BLE001 - report the last error
            last = e
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            break
        time.sleep(interval)
    raise AssertionError('timed out after %ss waiting for %s (last: %r)'
                         % (timeout, what, last))


# Evaluated atomically (workers and `wxkf jobs` keep routing meanwhile):
# per agent {load, active sessions naming it, capacity}. KEYS[1] is the
# account's prefix "wxkf:{APPID}:".
INVARIANT_LUA = """
local P, out = KEYS[1], {}
local active = {}
local cursor = '0'
repeat
    local r = redis.call('SCAN', cursor, 'MATCH', P .. 'sess:*', 'COUNT', 1000)
    cursor = r[1]
    for _, k in ipairs(r[2]) do
        local st, a = unpack(redis.call('HMGET', k, 'state', 'agent'))
        if st == 'active' then active[a] = (active[a] or 0) + 1 end
    end
until cursor == '0'
for _, a in ipairs(redis.call('SMEMBERS', P .. 'agents')) do
    out[#out + 1] = {a, redis.call('SCARD', P .. 'load:' .. a),
                     active[a] or 0,
                     redis.call('HGET', P .. 'agent:' .. a, 'capacity') or ''}
end
return out
"""


def load_violations(redis_client, prefix, default_capacity):
    """Runs INVARIANT_LUA; returns ({agent: load}, violations) where a
    violation is (agent, load, active sessions, capacity) with load !=
    active or load > capacity ([routing] default_capacity when the agent
    has none of its own)."""
    rows = redis_client.eval(INVARIANT_LUA, 1, prefix)
    bad = [(a, load, active, cap) for a, load, active, cap in rows
           if load != active or load > int(cap or default_capacity)]
    return {a: load for a, load, _act, _cap in rows}, bad


def assert_each_once(query, msgids):
    """Every msgid has exactly one inbound row in `messages`. query(sql,
    args) runs one statement and returns its rows."""
    rows = query("SELECT msgid, count(*) FROM messages WHERE"
                 " direction = 'i' AND msgid = ANY(%s) GROUP BY msgid",
                 (list(msgids),))
    counts = dict(rows)
    missing = [m for m in msgids if m not in counts]
    twice = {m: c for m, c in counts.items() if c != 1}
    assert not missing, '%d acknowledged callbacks not archived: %s' % (
        len(missing), missing[:10])
    assert not twice, 'archived more than once: %r' % (
        list(twice.items())[:10],)
