-- session: an agent or an admin acts on a user's session.
-- KEYS[1] the account prefix P; no other KEYS.
-- ARGV: 1 op: close | transfer_agent | transfer_group | answered |
--       move_agent | move_group | reopen | reopen_peek,
--       2 now ms, 3 cfg, 4 openid, 5 by (agent account, or '' for an
--       admin), 6 target (agent or group; for close the wrap-up, a JSON
--       object kept as the close event's payload, '' none; for reopen the
--       agent the new session is for), 7 for a transfer the note (checked
--       by the caller, lib/handover; '' none), kept on the session with
--       the giver (prelude's hand_over); for reopen the id of the past
--       session reopened (kept in the why).
-- move_agent and move_group: a supervisor or an admin moves a user
-- WAITING in a queue (else {'err', 'not_waiting'}) to an agent (online
-- or paused with a free slot, as a transfer) or to another group's queue
-- (the same group: {'err', 'same_group'}); then as the transfers.
-- Audited (audit.lua, when the caller armed it): a reopen that reopened,
-- a close, a transfer — each when it changed the session.
-- Returns {'ok', ...} or {'err', code}:
--   reopen: {'ok', 'reopened' | 'already', agent, session id, sends left}
--     or {'err', 'held', the agent who has the user} or another refusal;
--   reopen_peek: {'ok', state ('' none), its agent, window end ms ('' no
--     window known), sends left now (0: closed or spent)}.
local op, now, o, by, target, note = ARGV[1], tonumber(ARGV[2]), ARGV[4],
                                     ARGV[5], ARGV[6], ARGV[7] or ''
local cfg = parse_cfg(ARGV[3])

-- An agent starts a session again with a user it served before (the C
-- side has checked the past session was the agent's): the user must have
-- no live session with anyone else, the agent be online or paused with a
-- free slot, and the user's window still open (an agent cannot write
-- first). A user waiting in the queue is taken out of it.
local function reopen(a, past)
    if redis.call('SISMEMBER', P .. 'agents', a) == 0 then
        return { 'err', 'unknown_agent' }
    end
    local s = session(o)
    if s and s.state == 'active' then
        if s.agent == a then
            return { 'ok', 'already', a, s.id or '',
                     tostring(window_left(o, now) or 0) }
        end
        return { 'err', 'held', s.agent or '' }
    end
    local st = redis.call('HGET', akey(a), 'status')
    if st ~= 'online' and st ~= 'paused' then
        return { 'err', 'agent_offline' }
    end
    local left, refusal = window_left(o, now)
    if not left then return refusal end
    local c = { acct = a, load = load_of(a), cap = capacity(a, cfg) }
    if c.load >= c.cap then return { 'err', 'agent_full' } end
    local g = '_all'
    if s then
        g = s.group or '_all'
        detach(o, s)                    -- out of the queue
    else
        -- the agent writes first: no greeting for a user who did not ask
        redis.call('HSET', skey(o), 'greeted', '1')
    end
    local why = cjson.encode({ group = g, policy = 'reopen',
                               candidates = { { agent = a, load = c.load,
                                                capacity = c.cap } },
                               chosen = a, reason = 'reopen',
                               reopens = tonumber(past), by = by })
    assign(o, g, c, now, cfg, why, 'reopen')
    audit(o)
    return { 'ok', 'reopened', a, redis.call('HGET', skey(o), 'id'),
             tostring(left) }
end

if op == 'reopen' then return reopen(target, ARGV[7] or '') end
if op == 'reopen_peek' then
    local s = session(o) or {}
    local w = redis.call('HMGET', P .. 'win:' .. o, 'last_ms')
    local left = w[1] and window_left(o, now) or 0
    return { 'ok', s.state or '', s.agent or '',
             w[1] and tostring(window_end(o, now)) or '',
             tostring(left or 0) }
end

local s = session(o)
if not s then return { 'err', 'no_session' } end
if by ~= '' and s.agent ~= by then return { 'err', 'not_yours' } end

if op == 'move_agent' or op == 'move_group' then
    if s.state ~= 'waiting' then return { 'err', 'not_waiting' } end
    if op == 'move_group' and (s.group or '_all') == target then
        return { 'err', 'same_group' }
    end
    op = op == 'move_agent' and 'transfer_agent' or 'transfer_group'
end

if op == 'close' then
    close(o, by == '' and 'admin' or 'agent', now, cfg, by, target)
    audit(o)
    return { 'ok', 'closed' }
elseif op == 'answered' then
    if s.state ~= 'active' then return { 'err', 'not_active' } end
    redis.call('HSET', skey(o), 'answered', '1', 'last_ms', now)
    redis.call('ZREM', P .. 'frt', o)
    redis.call('ZADD', P .. 'deadline', now + cfg.idle, o)
    return { 'ok', 'answered' }
elseif op == 'transfer_agent' then
    if redis.call('SISMEMBER', P .. 'agents', target) == 0 then
        return { 'err', 'unknown_agent' }
    end
    if s.state == 'active' and s.agent == target then
        return { 'err', 'same_agent' }
    end
    local st = redis.call('HGET', akey(target), 'status')
    if st ~= 'online' and st ~= 'paused' then
        return { 'err', 'agent_offline' }
    end
    local c = { acct = target, load = load_of(target),
                cap = capacity(target, cfg) }
    if c.load >= c.cap then return { 'err', 'agent_full' } end
    detach(o, s, 'transfer', now)
    hand_over(o, by, note, now)
    local g = s.group or '_all'
    assign(o, g, c, now, cfg, explain(g, 'transfer', { c }, target,
                                      'transfer'), 'transfer', 'transfer')
    if s.state == 'active' and s.agent ~= '' then
        drain_for(s.agent, now, cfg)
    end
    audit(o)
    return { 'ok', 'assigned', target }
elseif op == 'transfer_group' then
    if target ~= '_all' and redis.call('SCARD', P .. 'group:' .. target) == 0
    then
        return { 'err', 'unknown_group' }
    end
    detach(o, s, 'transfer', now)
    hand_over(o, by, note, now)
    local exclude = s.state == 'active' and s.agent or nil
    -- The freed slot goes to the queue first, so the user is not handed
    -- straight back to the agent who transferred them.
    if exclude then drain_for(exclude, now, cfg) end
    local r, v = route(o, target, now, cfg, exclude, 'transfer', false)
    audit(o)
    return { 'ok', r, tostring(v) }
end
return { 'err', 'bad_op' }
