-- presence: an agent's status or heartbeat.
-- ARGV: 1 now ms, 2 cfg, 3 agent, 4 op: online | paused | offline |
--       heartbeat, 5 reason (request, heartbeat_lost, ...).
-- Returns {status, sessions moved or assigned, previous status} or
-- {'err', code}.
local now, a, op = tonumber(ARGV[1]), ARGV[3], ARGV[4]
local cfg = parse_cfg(ARGV[2])
if redis.call('SISMEMBER', P .. 'agents', a) == 0 then
    return { 'err', 'unknown_agent' }
end
if op == 'heartbeat' then
    local st = redis.call('HGET', akey(a), 'status') or 'offline'
    if st == 'online' or st == 'paused' then
        redis.call('ZADD', P .. 'hb', now, a)
    end
    return { st, 0, st }
end
if op ~= 'online' and op ~= 'paused' and op ~= 'offline' then
    return { 'err', 'bad_status' }
end
local prev, moved = set_status(a, op, now, cfg, ARGV[5])
return { op, moved, prev }
