-- user_profile: which users' WeChat profiles (cgi-bin/user/info) `wxkf jobs`
-- looks up (lib/user_profile.c).
-- KEYS[1] = P, the account prefix "wxkf:{APPID}:" (store_run adds it);
-- no other KEYS: every key is P .. suffix — events, profile_due (sorted
-- set of OpenIDs scored by when their look-up is due), profile_tries
-- (hash OpenID -> failed look-ups in a row).
-- ARGV[1] = op, ARGV[2..] its arguments:
--   take group consumer count now_ms lease_ms read_max claim_idle_ms
--          -> { queued, { openid... }, claim cursor }
--          Reads up to read_max new entries of P events with the group
--          (created at '$' the first time: users who write from then on
--          are looked up) and acknowledges them all at once, so the group
--          never holds back the archiver's trimming; entries another
--          consumer left pending over claim_idle_ms are claimed
--          (XAUTOCLAIM, up to read_max from the start: claim cursor
--          "0-0" = none left) and read the same way. The OpenID of each
--          inbound message (type msg_in) is added to P profile_due, due
--          now, unless it is there already (NX: a user waiting for a
--          retry keeps its back-off). Then up to count due OpenIDs are
--          leased: their score moves lease_ms ahead, so another jobs
--          process looks one up only if this one died holding it.
--   done   openid                  -> 1: looked up (or given up on):
--                                     removed from both keys
--   later  openid now_ms base_ms max_ms
--                                  -> due_ms: a failed look-up; due again
--                                     after base_ms doubled per failure in
--                                     a row, at most max_ms
local P, op = KEYS[1], ARGV[1]
local DUE, TRIES = P .. 'profile_due', P .. 'profile_tries'

if op == 'take' then
    local S, g, me = P .. 'events', ARGV[2], ARGV[3]
    local n, now, lease = tonumber(ARGV[4]), tonumber(ARGV[5]),
                          tonumber(ARGV[6])
    -- the stream is read far faster than users are looked up (count a
    -- pass): reading only count entries a pass let the group fall behind
    -- any burst and hold back the archiver's trimming
    local read_max, claim_idle = tonumber(ARGV[7]), ARGV[8]
    local made = redis.pcall('XGROUP', 'CREATE', S, g, '$', 'MKSTREAM')
    if made.err and not string.find(made.err, 'BUSYGROUP', 1, true) then
        return redis.error_reply(made.err)
    end
    local queued, acks = 0, {}
    local function take(e)
        acks[#acks + 1] = e[1]
        local f = e[2]
        if type(f) ~= 'table' then return end
        local h = {}
        for i = 1, #f - 1, 2 do h[f[i]] = f[i + 1] end
        if h.type == 'msg_in' and h.openid and h.openid ~= '' then
            queued = queued + redis.call('ZADD', DUE, 'NX', now, h.openid)
        end
    end
    -- entries another consumer left pending (nothing of this version
    -- does: it acknowledges in the same script) are taken over first, so
    -- its consumer holds none and can be forgotten
    local cl = redis.call('XAUTOCLAIM', S, g, me, claim_idle, '0-0',
                          'COUNT', read_max)
    for _, e in ipairs(cl[2]) do take(e) end
    local new = redis.call('XREADGROUP', 'GROUP', g, me, 'COUNT', read_max,
                           'STREAMS', S, '>')
    if type(new) == 'table' and type(new[1]) == 'table' then
        for _, e in ipairs(new[1][2] or {}) do take(e) end
    end
    if #acks > 0 then redis.call('XACK', S, g, unpack(acks)) end
    local due = redis.call('ZRANGEBYSCORE', DUE, '-inf', now, 'LIMIT', 0, n)
    for _, o in ipairs(due) do
        redis.call('ZADD', DUE, 'XX', now + lease, o)
    end
    return { queued, due, cl[1] }
elseif op == 'done' then
    redis.call('ZREM', DUE, ARGV[2])
    redis.call('HDEL', TRIES, ARGV[2])
    return 1
elseif op == 'later' then
    local o, now = ARGV[2], tonumber(ARGV[3])
    local base, max = tonumber(ARGV[4]), tonumber(ARGV[5])
    local n = redis.call('HINCRBY', TRIES, o, 1)
    local wait = base
    for _ = 2, math.min(n, 30) do
        wait = wait * 2
        if wait >= max then break end
    end
    if wait > max then wait = max end
    redis.call('ZADD', DUE, now + wait, o)
    return now + wait
end
return redis.error_reply('bad_op')
