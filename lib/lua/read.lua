-- read: views for the API (no writes, but for converting a queue an
-- earlier release left as a LIST: see qkey).
-- KEYS[1] the account prefix P; no other KEYS.
-- ARGV: 1 op: agent_sessions | session | inbox | me | sessions | queue |
-- stats | colleagues, 2 agent, openid or state.
-- agent_sessions -> list of session hashes (each as {field, value...})
-- session -> the session hash as {field, value...} plus position.
-- stats (3 now ms, 4 cfg) -> {field, value...}: agents, online, paused,
--          sessions_active, waiting, today's messages_in/out and
--          first-response figures, then load:, share:, status:<agent>
--          per agent and queue:<group> per queue.
-- me -> the agent's hash plus load, or {} for an unknown agent.
-- colleagues (3 cfg) -> {agents, groups}: agents one {field, value...} per
--          agent by account (account, nick, status, weight, groups, load,
--          capacity: the one routing applies, the default when unset; no
--          token), groups one {group, online, waiting} per group an agent
--          lists, sorted (online: its members whose status is online).
-- sessions (2 state: ''|active|waiting, 3 limit) -> session hashes, the
--          active ones by agent then user, then the waiting ones in queue
--          order (with position), at most limit; the last element is
--          {'total', n} (how many there are in all).
-- queue (3 limit per group, 0: none) -> {group, length, {openid, queued_ms,
--          session}...} per queue, groups sorted.
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
elseif op == 'me' then
    local h = redis.call('HGETALL', akey(x))
    if #h == 0 or redis.call('SISMEMBER', P .. 'agents', x) == 0 then
        return {}
    end
    h[#h + 1] = 'load'
    h[#h + 1] = tostring(load_of(x))
    return h
elseif op == 'colleagues' then
    local cfg = parse_cfg(ARGV[3])
    local agents = redis.call('SMEMBERS', P .. 'agents')
    table.sort(agents)
    local out, names, online = {}, {}, {}
    for _, a in ipairs(agents) do
        local f = redis.call('HMGET', akey(a), 'nick', 'status', 'weight',
                             'groups')
        local st = f[2] or 'offline'
        out[#out + 1] = { 'account', a, 'nick', f[1] or '', 'status', st,
                          'weight', f[3] or '1', 'groups', f[4] or '',
                          'load', tostring(load_of(a)),
                          'capacity', tostring(capacity(a, cfg)) }
        for g in string.gmatch(f[4] or '', '[^,]+') do
            if not online[g] then
                online[g] = 0
                names[#names + 1] = g
            end
            if st == 'online' then online[g] = online[g] + 1 end
        end
    end
    table.sort(names)
    local groups = {}
    for _, g in ipairs(names) do
        groups[#groups + 1] = { g, tostring(online[g]),
                                tostring(redis.call('ZCARD', qkey(g))) }
    end
    return { out, groups }
elseif op == 'sessions' then
    local want, limit = x, tonumber(ARGV[3])
    local out, total = {}, 0
    local function add(o, extra)
        total = total + 1
        if #out >= limit then return end
        local h = redis.call('HGETALL', skey(o))
        if #h == 0 then return end
        h[#h + 1] = 'openid'
        h[#h + 1] = o
        if extra then
            h[#h + 1] = 'position'
            h[#h + 1] = tostring(extra)
        end
        out[#out + 1] = h
    end
    if want == '' or want == 'active' then
        local agents = redis.call('SMEMBERS', P .. 'agents')
        table.sort(agents)
        for _, a in ipairs(agents) do
            local users = redis.call('SMEMBERS', P .. 'load:' .. a)
            table.sort(users)
            for _, o in ipairs(users) do add(o) end
        end
    end
    if want == '' or want == 'waiting' then
        local qs = redis.call('SMEMBERS', P .. 'queues')
        table.sort(qs)
        for _, g in ipairs(qs) do
            -- list only what fits; count the rest without reading it
            local q = qkey(g)
            local n = redis.call('ZCARD', q)
            local room = limit - #out
            if room > 0 then
                for i, o in ipairs(redis.call('ZRANGE', q, 0, room - 1)) do
                    add(o, i)
                end
                n = n - math.min(n, room)
            end
            total = total + n
        end
    end
    out[#out + 1] = { 'total', tostring(total) }
    return out
elseif op == 'queue' then
    local limit = tonumber(ARGV[3])
    local qs = redis.call('SMEMBERS', P .. 'queues')
    table.sort(qs)
    local out = {}
    for _, g in ipairs(qs) do
        local q = qkey(g)
        local n = redis.call('ZCARD', q)
        if n > 0 then
            local users = {}
            -- limit 0: the lengths only (ZRANGE 0 -1 would list them all)
            local listed = limit > 0 and
                redis.call('ZRANGE', q, 0, limit - 1) or {}
            for _, o in ipairs(listed) do
                local h = redis.call('HMGET', skey(o), 'queued_ms', 'id')
                users[#users + 1] = { o, h[1] or '', h[2] or '' }
            end
            out[#out + 1] = { g, tostring(n), users }
        end
    end
    return out
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
        local n = redis.call('ZCARD', qkey(g))
        waiting = waiting + n
        out[#out + 1] = 'queue:' .. g
        out[#out + 1] = tostring(n)
    end
    local head = { 'agents', tostring(#agents), 'online', tostring(online),
                   'paused', tostring(paused), 'sessions_active',
                   tostring(active), 'waiting', tostring(waiting) }
    local cfg = parse_cfg(ARGV[4])
    local day = day_of(tonumber(ARGV[3]), cfg)
    local d = redis.call('HMGET', P .. 'day:' .. day, 'in', 'out')
    local fk = P .. 'frt:' .. day
    local n = redis.call('ZCARD', fk)
    for _, v in ipairs({ 'messages_in_today', d[1] or '0',
                         'messages_out_today', d[2] or '0',
                         'first_responses_today', tostring(n) }) do
        head[#head + 1] = v
    end
    if n > 0 then
        -- the median: the middle one, or the mean of the middle two
        local lo = redis.call('ZRANGE', fk, math.floor((n - 1) / 2),
                              math.floor(n / 2), 'WITHSCORES')
        local m = tonumber(lo[2])
        if #lo == 4 then m = (m + tonumber(lo[4])) / 2 end
        head[#head + 1] = 'first_response_median_ms'
        head[#head + 1] = tostring(math.floor(m + 0.5))
    end
    for _, v in ipairs(out) do head[#head + 1] = v end
    return head
end
return redis.error_reply('bad op')
