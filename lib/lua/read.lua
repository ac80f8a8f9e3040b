-- read: views for the API (no writes).
-- ARGV: 1 op: agent_sessions | session | token | stats, 2 agent, openid or
-- token hash.
-- agent_sessions -> list of session hashes (each as {field, value...})
-- session -> the session hash as {field, value...} plus position.
-- token -> {account, status} or {} for an unknown token.
-- stats -> {field, value...}: agents, online, paused, sessions_active,
--          waiting, then share:<agent> and load:<agent> per agent.
local op, x = ARGV[1], ARGV[2]
if op == 'agent_sessions' then
    local users = redis.call('SMEMBERS', P .. 'load:' .. x)
    table.sort(users)
    local out = {}
    for _, o in ipairs(users) do
        local h = redis.call('HGETALL', skey(o))
        h[#h + 1] = 'openid'
        h[#h + 1] = o
        out[#out + 1] = h
    end
    return out
elseif op == 'session' then
    local s = session(x)
    if not s then return {} end
    local h = redis.call('HGETALL', skey(x))
    if s.state == 'waiting' then
        h[#h + 1] = 'position'
        h[#h + 1] = tostring(position(x, s.group or '_all'))
    end
    h[#h + 1] = 'openid'
    h[#h + 1] = x
    return h
elseif op == 'inbox' then
    local after = ARGV[3]
    if after == '' then after = '0' end
    return redis.call('XRANGE', P .. 'inbox:' .. x, '(' .. after, '+',
                      'COUNT', tonumber(ARGV[4]))
elseif op == 'token' then
    local a = redis.call('GET', P .. 'token:' .. x)
    if not a or redis.call('SISMEMBER', P .. 'agents', a) == 0 then
        return {}
    end
    return { a, redis.call('HGET', akey(a), 'status') or 'offline' }
elseif op == 'stats' then
    local agents = redis.call('SMEMBERS', P .. 'agents')
    table.sort(agents)
    local online, paused, active = 0, 0, 0
    local out = {}
    for _, a in ipairs(agents) do
        local st = redis.call('HGET', akey(a), 'status') or 'offline'
        if st == 'online' then online = online + 1 end
        if st == 'paused' then paused = paused + 1 end
        local l = load_of(a)
        active = active + l
        out[#out + 1] = 'load:' .. a
        out[#out + 1] = tostring(l)
        out[#out + 1] = 'share:' .. a
        out[#out + 1] = redis.call('HGET', P .. 'share', a) or '0'
        out[#out + 1] = 'status:' .. a
        out[#out + 1] = st
    end
    local waiting = 0
    for _, g in ipairs(redis.call('SMEMBERS', P .. 'queues')) do
        local n = redis.call('LLEN', P .. 'queue:' .. g)
        waiting = waiting + n
        out[#out + 1] = 'queue:' .. g
        out[#out + 1] = tostring(n)
    end
    local head = { 'agents', tostring(#agents), 'online', tostring(online),
                   'paused', tostring(paused), 'sessions_active',
                   tostring(active), 'waiting', tostring(waiting) }
    for _, v in ipairs(out) do head[#head + 1] = v end
    return head
end
return redis.error_reply('bad op')
