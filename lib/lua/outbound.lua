-- outbound: messages from agents (and from wxkf itself) to users, through
-- WeChat's customer-service API. WeChat lets an account answer a user
-- only inside windows the user opens: a message opens 48 h with `msg`
-- sends; a menu click, a subscribe or a QR scan opens 1 min with `evt`
-- sends (P win:<openid>, written by ingest). The window is checked and a
-- send reserved here, before WeChat is called; a refused send gives the
-- reservation back.
-- KEYS[1] the account prefix P; no other KEYS.
-- ARGV: 1 op, 2 now ms, 3 cfg, then per op:
--   reserve  4 openid, 5 by (agent; '' = admin or wxkf), 6 id, 7 msgtype,
--            8 the message (JSON of the msgtype object, for history)
--            -> {'ok', agent of the session ('' if none), sends left}
--            (the window and its quota: reserve_send in prelude.lua)
--   status   4 openid, 5 agent, 6 id, 7 sent|queued|failed, 8 errcode,
--            9 errmsg, 10 refund (1 = give the reserved send back)
--   enqueue  4 id, 5 openid, 6 agent, 7 msgtype, 8 payload JSON, 9 due ms
--   due      4 limit, 5 lease ms, 6 owner -> {{id, openid, agent, msgtype,
--            payload, attempts}, ...}: each leased to owner, not due again
--            before the lease ends (longer than the slowest send)
--   retry    4 id, 5 owner, 6 next due ms
--   typing   4 openid, 5 by (as reserve), 6 gap ms, 7 recent ms
--            -> {'ok', agent}: tell WeChat (at most once per gap per
--            user: P typing:<openid>, expiring after gap), or {'skip',
--            'recent'} (told within gap) or {'skip', 'quiet'} (the user
--            has not written within recent ms: WeChat refuses typing
--            then); refused like reserve when the window is closed
--   finish   4 id, 5 owner, 6 sent|failed, 7 errcode, 8 errmsg: the
--            delivery event (a failure gives the send back) and the entry
--            removed, in one step; refused when the lease was lost (the
--            entry belongs to whoever took it over)
local op, now = ARGV[1], tonumber(ARGV[2])
local cfg = parse_cfg(ARGV[3])

-- A send WeChat refused does not count against the user's window.
local function give_back(o)
    local k = P .. 'win:' .. o
    if tonumber(redis.call('HGET', k, 'sent') or '0') > 0 then
        redis.call('HINCRBY', k, 'sent', -1)
    end
end

-- A send WeChat took (sent) or wxkf will deliver (queued): the session's
-- first answer gives its first-response time, from when the user's
-- session opened (queue time included). Refused sends never count.
local function answered_first(o, a)
    local s = session(o)
    if not (s and s.state == 'active' and s.agent == a) then return end
    if redis.call('HSETNX', skey(o), 'first_reply_ms', now) == 0 then return end
    local k = P .. 'frt:' .. day_of(now, cfg)
    redis.call('ZADD', k, now - (tonumber(s.opened_ms) or now), s.id or o)
    redis.call('PEXPIRE', k, 3 * 86400000)
end

if op == 'reserve' then
    local o, by, id, mt = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
    local s = session(o)
    if by ~= '' and (not s or s.agent ~= by) then
        return { 'err', s and 'not_yours' or 'no_session' }
    end
    local left, refusal = reserve_send(o, now)
    if not left then return refusal end
    local agent = (s and s.agent) or ''
    if s and s.state == 'active' then
        -- the agent answered: stop the first-reply clock, push the
        -- idle deadline back
        redis.call('HSET', skey(o), 'answered', '1', 'last_ms', now,
                   'reply_ms', now)
        redis.call('ZREM', P .. 'frt', o)
        redis.call('ZADD', P .. 'deadline', now + cfg.idle, o)
    end
    local ev = { 'type', 'msg_out', 'id', id, 'openid', o, 'agent', agent,
                 'by', by, 'msgtype', mt, 'session',
                 (s and s.id) or '', 'payload', ARGV[8] or '{}',
                 'ts_ms', tostring(now) }
    emit(ev)
    inbox(agent, ev)
    return { 'ok', agent, left }
elseif op == 'typing' then
    local o, by = ARGV[4], ARGV[5]
    local s = session(o)
    if by ~= '' and (not s or s.agent ~= by) then
        return { 'err', s and 'not_yours' or 'no_session' }
    end
    local left, refusal = window_left(o, now)
    if not left and refusal[2] == 'outside_48h_window' then return refusal end
    local w = redis.call('HMGET', P .. 'win:' .. o, 'last_ms', 'last_evt_ms')
    local last = math.max(tonumber(w[1]) or 0, tonumber(w[2]) or 0)
    if now - last > tonumber(ARGV[7]) then return { 'skip', 'quiet' } end
    if not redis.call('SET', P .. 'typing:' .. o, now, 'PX', tonumber(ARGV[6]),
                      'NX') then
        return { 'skip', 'recent' }
    end
    return { 'ok', (s and s.agent) or '' }
elseif op == 'status' then
    local o, a, id, st = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
    if ARGV[10] == '1' then give_back(o) end
    if st == 'sent' then count_day(now, cfg, 'out', 1) end
    if st ~= 'failed' then answered_first(o, a) end
    local ev = { 'type', 'delivery', 'id', id, 'openid', o, 'agent', a,
                 'status', st, 'errcode', ARGV[8], 'errmsg', ARGV[9],
                 'ts_ms', tostring(now) }
    emit(ev)
    inbox(a, ev)
    return { 'ok' }
elseif op == 'enqueue' then
    local id = ARGV[4]
    redis.call('HSET', P .. 'outbox:' .. id, 'openid', ARGV[5], 'agent',
               ARGV[6], 'msgtype', ARGV[7], 'payload', ARGV[8],
               'attempts', 0, 'created_ms', now)
    redis.call('ZADD', P .. 'outbox', tonumber(ARGV[9]), id)
    return { 'ok' }
elseif op == 'due' then
    local out = {}
    local ids = redis.call('ZRANGEBYSCORE', P .. 'outbox', '-inf', now,
                           'LIMIT', 0, tonumber(ARGV[4]))
    for _, id in ipairs(ids) do
        local k = P .. 'outbox:' .. id
        local h = redis.call('HMGET', k, 'openid', 'agent', 'msgtype',
                             'payload')
        if h[1] then
            redis.call('ZADD', P .. 'outbox', now + tonumber(ARGV[5]), id)
            redis.call('HSET', k, 'lease', ARGV[6])
            local n = redis.call('HINCRBY', k, 'attempts', 1)
            out[#out + 1] = { id, h[1], h[2] or '', h[3], h[4], tostring(n) }
        else
            redis.call('ZREM', P .. 'outbox', id)
        end
    end
    return out
elseif op == 'retry' or op == 'finish' then
    local id, k = ARGV[4], P .. 'outbox:' .. ARGV[4]
    if redis.call('HGET', k, 'lease') ~= ARGV[5] then
        return { 'err', 'lost_lease' }
    end
    if op == 'retry' then
        redis.call('ZADD', P .. 'outbox', tonumber(ARGV[6]), id)
        return { 'ok' }
    end
    local h = redis.call('HMGET', k, 'openid', 'agent')
    if ARGV[6] == 'failed' then give_back(h[1]) end
    if ARGV[6] == 'sent' then count_day(now, cfg, 'out', 1) end
    local ev = { 'type', 'delivery', 'id', id, 'openid', h[1],
                 'agent', h[2] or '', 'status', ARGV[6], 'errcode', ARGV[7],
                 'errmsg', ARGV[8], 'ts_ms', tostring(now) }
    emit(ev)
    inbox(h[2], ev)
    redis.call('ZREM', P .. 'outbox', id)
    redis.call('DEL', k)
    return { 'ok' }
end
return { 'err', 'bad_op' }
