-- kf_session: in [wechat] mode = wechat_kf, the WeChat-side session calls
-- (kfsession/close and /create) that follow wxkf's routing, made by
-- `wxkf jobs` (lib/wechat_kf.c).
-- KEYS[1] = P, the account prefix "wxkf:{APPID}:" (store_run adds it);
-- no other KEYS: every key is P .. suffix —
--   events        the event stream, read with the consumer group
--   kfs_at        hash OpenID -> the kf account WeChat serves the user
--                 with, as far as wxkf knows (set by every assignment,
--                 removed by a close or a return to the queue)
--   kfs:<openid>  list of the user's steps still to make, oldest first:
--                 "close <kf_account>" or "create <kf_account>"
--   kfs_due       sorted set of OpenIDs with steps, scored by when the
--                 first step is due
--   kfs_tries     hash OpenID -> failed tries of the first step in a row
-- ARGV[1] = op, ARGV[2..] its arguments:
--   take group consumer count now_ms lease_ms read_max
--          -> { queued, { openid, step, openid, step, ... } }
--          Reads up to read_max new entries of P events with the group
--          (created at '$' the first time) and acknowledges them all at
--          once (the steps they make are kept in kfs:<openid>, so an entry
--          is turned into steps exactly once and the group never holds
--          back the archiver's trimming):
--            assign / reassign / transfer to agent A: when WeChat's
--              session is another agent's, "close <that agent>"; then
--              "create A" — except when WeChat made the session itself
--              (reason kf_create_session, kf_switch_session) or the
--              callback's transfer_customer_service reply makes it
--              (reason new_session, returning);
--            close: "close <agent>", unless WeChat closed it (via wechat);
--            queue (the user went back to the queue): "close <agent>".
--          Only accounts in kf_account form (with '@') get steps. Then up
--          to count due users are leased (their score moves lease_ms
--          ahead, so another jobs process takes them only if this one
--          died holding them) and returned with their first step: the
--          steps of one user are made one at a time, in order.
--   done   openid now_ms -> steps left: the first step is made (or given up
--                     on): removed; the next one is due now
--   later  openid now_ms base_ms max_ms max_tries
--                  -> due_ms, or 0 when the step failed max_tries times
--                     in a row and was dropped (the next one is due now):
--                     due again after base_ms doubled per failure in a
--                     row, at most max_ms
local P, op = KEYS[1], ARGV[1]
local DUE, TRIES, AT = P .. 'kfs_due', P .. 'kfs_tries', P .. 'kfs_at'

local function steps(o) return P .. 'kfs:' .. o end

-- The first step made (or dropped): the next one, if any, is due now.
local function pop(o, now)
    redis.call('LPOP', steps(o))
    redis.call('HDEL', TRIES, o)
    local left = redis.call('LLEN', steps(o))
    if left == 0 then
        redis.call('ZREM', DUE, o)
    else
        redis.call('ZADD', DUE, now, o)
    end
    return left
end

if op == 'take' then
    local S, g, me = P .. 'events', ARGV[2], ARGV[3]
    local n, now, lease = tonumber(ARGV[4]), tonumber(ARGV[5]),
                          tonumber(ARGV[6])
    local read_max = tonumber(ARGV[7])
    local made = redis.pcall('XGROUP', 'CREATE', S, g, '$', 'MKSTREAM')
    if made.err and not string.find(made.err, 'BUSYGROUP', 1, true) then
        return redis.error_reply(made.err)
    end
    local queued, acks = 0, {}
    local function step(o, what, a)
        if not a or a == '' or not string.find(a, '@', 1, true) then
            return
        end
        redis.call('RPUSH', steps(o), what .. ' ' .. a)
        redis.call('ZADD', DUE, 'NX', now, o)
        queued = queued + 1
    end
    local new = redis.call('XREADGROUP', 'GROUP', g, me, 'COUNT', read_max,
                           'STREAMS', S, '>')
    if type(new) == 'table' and type(new[1]) == 'table' then
        for _, e in ipairs(new[1][2] or {}) do
            acks[#acks + 1] = e[1]
            local f = e[2]
            local h = {}
            if type(f) == 'table' then
                for i = 1, #f - 1, 2 do h[f[i]] = f[i + 1] end
            end
            local o, t = h.openid, h.type
            if o and o ~= '' then
                local at = redis.call('HGET', AT, o)
                if t == 'assign' or t == 'reassign' or t == 'transfer' then
                    local a, r = h.agent or '', h.reason or ''
                    local wechat_made = r == 'kf_create_session' or
                                        r == 'kf_switch_session'
                    if at and at ~= a and not wechat_made then
                        step(o, 'close', at)
                    end
                    if not wechat_made and r ~= 'new_session' and
                       r ~= 'returning' and at ~= a then
                        step(o, 'create', a)
                    end
                    if a ~= '' then redis.call('HSET', AT, o, a) end
                elseif t == 'close' then
                    if h.via ~= 'wechat' then
                        step(o, 'close', at or h.agent)
                    end
                    redis.call('HDEL', AT, o)
                elseif t == 'queue' and at then
                    step(o, 'close', at)
                    redis.call('HDEL', AT, o)
                end
            end
        end
    end
    if #acks > 0 then redis.call('XACK', S, g, unpack(acks)) end
    local out = {}
    for _, o in ipairs(redis.call('ZRANGEBYSCORE', DUE, '-inf', now,
                                  'LIMIT', 0, n)) do
        local first = redis.call('LINDEX', steps(o), 0)
        if first then
            redis.call('ZADD', DUE, 'XX', now + lease, o)
            out[#out + 1] = o
            out[#out + 1] = first
        else
            redis.call('ZREM', DUE, o)
            redis.call('HDEL', TRIES, o)
        end
    end
    return { queued, out }
elseif op == 'done' then
    return pop(ARGV[2], tonumber(ARGV[3]))
elseif op == 'later' then
    local o, now = ARGV[2], tonumber(ARGV[3])
    local base, max = tonumber(ARGV[4]), tonumber(ARGV[5])
    local n = redis.call('HINCRBY', TRIES, o, 1)
    if n >= tonumber(ARGV[6]) then
        pop(o, now)
        return 0
    end
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
