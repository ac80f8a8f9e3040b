-- sweep: the periodic work of `wxkf jobs`, bounded per call.
-- KEYS[1] the account prefix P; no other KEYS.
-- ARGV: 1 op: sweep, 2 now ms, 3 cfg, 4 heartbeat ttl ms, 5 limit per
--       kind, 6 the leave-a-message text sent to a user whose wait timed
--       out ('' = none; it goes to the outbox, see outbound.lua).
-- Returns {agents_lost, sessions_expired, first_reply_reroutes,
--          queue_timeouts, dequeued}.
if ARGV[1] ~= 'sweep' then return redis.error_reply('sweep: unknown op') end
local now, ttl, limit = tonumber(ARGV[2]), tonumber(ARGV[4]),
                        tonumber(ARGV[5])
local text = ARGV[6]
local cfg = parse_cfg(ARGV[3])
local lost, expired, rerouted, timeouts, dequeued = 0, 0, 0, 0, 0

for _, a in ipairs(redis.call('ZRANGEBYSCORE', P .. 'hb', '-inf',
                              now - ttl, 'LIMIT', 0, limit)) do
    set_status(a, 'offline', now, cfg, 'heartbeat_lost')
    lost = lost + 1
end

for _, o in ipairs(redis.call('ZRANGEBYSCORE', P .. 'deadline', '-inf', now,
                              'LIMIT', 0, limit)) do
    if not close(o, 'idle_timeout', now, cfg, '') then
        redis.call('ZREM', P .. 'deadline', o)
    end
    expired = expired + 1
end

for _, o in ipairs(redis.call('ZRANGEBYSCORE', P .. 'frt', '-inf', now,
                              'LIMIT', 0, limit)) do
    local s = session(o)
    redis.call('ZREM', P .. 'frt', o)
    if s and s.state == 'active' and s.answered ~= '1' then
        local g = s.group or '_all'
        local cands = candidates(g, cfg, s.agent)
        if #cands > 0 then
            detach(o, s, 'first_reply_timeout', now)
            local c, p = pick(g, cands, cfg)
            assign(o, g, c, now, cfg,
                   explain(g, p, cands, c.acct, 'first_reply_timeout'),
                   'first_reply_timeout', 'reassign')
            drain_for(s.agent, now, cfg)
            rerouted = rerouted + 1
        else
            emit({ 'type', 'first_reply_late', 'openid', o,
                   'session', s.id or '', 'agent', s.agent,
                   'reason', 'no_other_agent', 'ts_ms', tostring(now) })
        end
    end
end

for _, o in ipairs(redis.call('ZRANGEBYSCORE', P .. 'qdeadline', '-inf', now,
                              'LIMIT', 0, limit)) do
    local s = session(o)
    redis.call('ZREM', P .. 'qdeadline', o)
    if s and s.state == 'waiting' then
        detach(o, s)
        redis.call('DEL', skey(o))
        emit({ 'type', 'close', 'openid', o, 'session', s.id or '',
               'agent', '', 'group', s.group or '', 'reason', 'queue_timeout',
               'notify', 'leave_message', 'ts_ms', tostring(now) })
        -- the leave-a-message text, only inside the user's window
        if text and text ~= '' then
            wxkf_text(o, '', s.id or '', text, 'leave_message', now)
        end
        timeouts = timeouts + 1
    end
end

for _, g in ipairs(redis.call('SMEMBERS', P .. 'queues')) do
    dequeued = dequeued + drain(g, now, cfg, limit)
end

return { lost, expired, rerouted, timeouts, dequeued }
