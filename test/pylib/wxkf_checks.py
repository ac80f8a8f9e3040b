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
# {per agent {load, active sessions naming it, capacity}, what is wrong
# with the queues}: every waiting session stands in its group's queue
# (a sorted set, or a LIST an earlier release left and no script has
# touched since), and every queue member is a waiting session of that
# group. KEYS[1] is the account's prefix "wxkf:{APPID}:".
INVARIANT_LUA = """
local P, out, qbad = KEYS[1], {}, {}
local active, qtype = {}, {}

local function in_queue(g, o)
    local q = P .. 'queue:' .. g
    qtype[g] = qtype[g] or redis.call('TYPE', q).ok
    if qtype[g] == 'list' then
        return redis.call('LPOS', q, o) ~= false
    end
    return redis.call('ZSCORE', q, o) ~= false
end

local cursor = '0'
repeat
    local r = redis.call('SCAN', cursor, 'MATCH', P .. 'sess:*', 'COUNT', 1000)
    cursor = r[1]
    for _, k in ipairs(r[2]) do
        local st, a, g = unpack(redis.call('HMGET', k, 'state', 'agent',
                                           'group'))
        if st == 'active' then active[a] = (active[a] or 0) + 1 end
        local o = string.sub(k, #P + 6)
        if st == 'waiting' and not in_queue(g or '_all', o) then
            qbad[#qbad + 1] = o .. ' waiting but not in queue ' ..
                              tostring(g)
        end
    end
until cursor == '0'
cursor = '0'
repeat
    local r = redis.call('SCAN', cursor, 'MATCH', P .. 'queue:*', 'COUNT', 100)
    cursor = r[1]
    for _, k in ipairs(r[2]) do
        local g, members = string.sub(k, #P + 7), {}
        if redis.call('TYPE', k).ok == 'list' then
            members = redis.call('LRANGE', k, 0, -1)
        else
            members = redis.call('ZRANGE', k, 0, -1)
        end
        for _, o in ipairs(members) do
            local st, sg = unpack(redis.call('HMGET', P .. 'sess:' .. o,
                                             'state', 'group'))
            if st ~= 'waiting' or (sg or '_all') ~= g then
                qbad[#qbad + 1] = o .. ' in queue ' .. g .. ' but ' ..
                                  tostring(st) .. ' in ' .. tostring(sg)
            end
        end
    end
until cursor == '0'
for _, a in ipairs(redis.call('SMEMBERS', P .. 'agents')) do
    out[#out + 1] = {a, redis.call('SCARD', P .. 'load:' .. a),
                     active[a] or 0,
                     redis.call('HGET', P .. 'agent:' .. a, 'capacity') or ''}
end
return {out, qbad}
"""


def load_violations(redis_client, prefix, default_capacity):
    """Runs INVARIANT_LUA; returns ({agent: load}, violations) where a
    violation is (agent, load, active sessions, capacity) with load !=
    active or load > capacity ([routing] default_capacity when the agent
    has none of its own), or a text saying what is wrong with a queue."""
    rows, queue_bad = redis_client.eval(INVARIANT_LUA, 1, prefix)
    bad = [(a, load, active, cap) for a, load, active, cap in rows
           if load != active or load > int(cap or default_capacity)]
    return {a: load for a, load, _act, _cap in rows}, bad + queue_bad


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
