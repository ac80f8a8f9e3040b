-- session: an agent or an admin acts on a user's session.
-- KEYS[1] the account prefix P; no other KEYS.
-- ARGV: 1 op: close | transfer_agent | transfer_group | answered,
--       2 now ms, 3 cfg, 4 openid, 5 by (agent account, or '' for an
--       admin), 6 target (agent or group; for close the wrap-up, a JSON
--       object kept as the close event's payload, '' none), 7 for a
--       transfer the note (checked by the caller, lib/handover; '' none),
--       kept on the session with the giver (prelude's hand_over).
-- Returns {'ok', ...} or {'err', code}.
local op, now, o, by, target, note = ARGV[1], tonumber(ARGV[2]), ARGV[4],
                                     ARGV[5], ARGV[6], ARGV[7] or ''
local cfg = parse_cfg(ARGV[3])
local s = session(o)
if not s then return { 'err', 'no_session' } end
if by ~= '' and s.agent ~= by then return { 'err', 'not_yours' } end

if op == 'close' then
    close(o, by == '' and 'admin' or 'agent', now, cfg, by, target)
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
    return { 'ok', r, tostring(v) }
end
return { 'err', 'bad_op' }
