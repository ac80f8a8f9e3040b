-- read: views for the API (no writes, but for converting a queue an
-- earlier release left as a LIST: see qkey).
-- KEYS[1] the account prefix P; no other KEYS.
-- ARGV: 1 op: agent_sessions | session | inbox | me | queue | board | page |
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
-- queue (3 limit per group, 0: none) -> {group, length, {openid, queued_ms,
--          session}...} per queue, groups sorted.
-- board (3 cfg) -> per agent by account {{account, nick, status,
--          status_by, status_ms, groups, load, capacity}, {{openid, id,
--          group, assigned_ms, user_ms, reply_ms, answered}...}}: the
--          supervisors' live board; bounded by the agents' capacities.
-- page (2 state: ''|active|waiting, 3 now ms, 4 agent, 5 group, 6 OpenID
--          prefix, 7 offset, 8 limit; '' = no filter) -> {total, capped,
--          {session hash + openid, position (waiting), window_end_ms
--          (a window known)}...}: the active sessions by agent then user,
--          then the waiting users longest waiting first (P waitq; in one
--          group: in queue order; with a prefix: by OpenID, P waitlex).
--          The cost is bounded: the active sessions are at most the
--          agents' capacities; the waiting ones are read by rank. A
--          prefix with a group filters at most PREFIX_SCAN matches
--          (capped = 1 when there were more).
local op, x = ARGV[1], ARGV[2]
local PREFIX_SCAN = 2000

-- P waitq/waitlex hold every waiting user (prelude's waitlist_add). An
-- account upgraded with users waiting has them in the queues only: then
-- (the counts differ) the index is rebuilt from the queues, once.
local function waitlist_check()
    local n = 0
    local qs = redis.call('SMEMBERS', P .. 'queues')
    for _, g in ipairs(qs) do n = n + redis.call('ZCARD', qkey(g)) end
    if n == redis.call('ZCARD', P .. 'waitq') then return end
    redis.call('DEL', P .. 'waitq', P .. 'waitlex')
    for _, g in ipairs(qs) do
        for _, o in ipairs(redis.call('ZRANGE', qkey(g), 0, -1)) do
            local t = redis.call('HGET', skey(o), 'queued_ms')
            waitlist_add(o, tonumber(t or '') or 0)
        end
    end
end

-- The waiting users of the page: total, capped, openids.
local function waiting_page(group, prefix, offset, limit)
    waitlist_check()
    if prefix ~= '' then
        local lo, hi = '[' .. prefix, '[' .. prefix .. '\255'
        if group == '' then
            local n = redis.call('ZLEXCOUNT', P .. 'waitlex', lo, hi)
            if limit == 0 then return n, 0, {} end
            return n, 0, redis.call('ZRANGEBYLEX', P .. 'waitlex', lo, hi,
                                    'LIMIT', offset, limit)
        end
        local m = redis.call('ZRANGEBYLEX', P .. 'waitlex', lo, hi,
                             'LIMIT', 0, PREFIX_SCAN + 1)
        local capped, hits = 0, {}
        if #m > PREFIX_SCAN then
            capped = 1
            m[#m] = nil
        end
        for _, o in ipairs(m) do
            if redis.call('HGET', skey(o), 'group') == group then
                hits[#hits + 1] = o
            end
        end
        local out = {}
        for i = offset + 1, math.min(#hits, offset + limit) do
            out[#out + 1] = hits[i]
        end
        return #hits, capped, out
    end
    local z = P .. 'waitq'
    if group ~= '' then
        if redis.call('SISMEMBER', P .. 'queues', group) == 0 then
            return 0, 0, {}
        end
        z = qkey(group)
    end
    local n = redis.call('ZCARD', z)
    if limit == 0 or offset >= n then return n, 0, {} end
    return n, 0, redis.call('ZRANGE', z, offset, offset + limit - 1)
end

local function page_item(o, now, waiting)
    local h = redis.call('HGETALL', skey(o))
    if #h == 0 then return nil end
    h[#h + 1] = 'openid'
    h[#h + 1] = o
    if waiting then
        local g = redis.call('HGET', skey(o), 'group') or '_all'
        h[#h + 1] = 'position'
        h[#h + 1] = tostring(position(o, g))
    end
    if redis.call('EXISTS', P .. 'win:' .. o) == 1 then
        h[#h + 1] = 'window_end_ms'
        h[#h + 1] = tostring(window_end(o, now))
    end
    return h
end

if op == 'board' then
    local cfg = parse_cfg(ARGV[3])
    local agents = redis.call('SMEMBERS', P .. 'agents')
    table.sort(agents)
    local out = {}
    for _, a in ipairs(agents) do
        local f = redis.call('HMGET', akey(a), 'nick', 'status', 'status_by',
                             'status_ms', 'groups')
        local users = redis.call('SMEMBERS', P .. 'load:' .. a)
        table.sort(users)
        local sess = {}
        for _, o in ipairs(users) do
            local h = redis.call('HMGET', skey(o), 'id', 'group',
                                 'assigned_ms', 'user_ms', 'reply_ms',
                                 'answered')
            sess[#sess + 1] = { 'openid', o, 'id', h[1] or '',
                                'group', h[2] or '',
                                'assigned_ms', h[3] or '0',
                                'user_ms', h[4] or '0',
                                'reply_ms', h[5] or '0',
                                'answered', h[6] or '0' }
        end
        out[#out + 1] = { { 'account', a, 'nick', f[1] or '',
                            'status', f[2] or 'offline',
                            'status_by', f[3] or '',
                            'status_ms', f[4] or '0', 'groups', f[5] or '',
                            'load', tostring(#users),
                            'capacity', tostring(capacity(a, cfg)) }, sess }
    end
    return out
elseif op == 'page' then
    local now, agent, group, prefix = tonumber(ARGV[3]), ARGV[4], ARGV[5],
                                      ARGV[6]
    local offset, limit = tonumber(ARGV[7]), tonumber(ARGV[8])
    local total, capped, out = 0, 0, {}
    if x == '' or x == 'active' then
        local agents = { agent }
        if agent == '' then
            agents = redis.call('SMEMBERS', P .. 'agents')
            table.sort(agents)
        end
        for _, a in ipairs(agents) do
            local users = redis.call('SMEMBERS', P .. 'load:' .. a)
            table.sort(users)
            for _, o in ipairs(users) do
                if (prefix == '' or string.sub(o, 1, #prefix) == prefix) and
                   (group == '' or
                    redis.call('HGET', skey(o), 'group') == group) then
                    total = total + 1
                    if total > offset and #out < limit then
                        out[#out + 1] = page_item(o, now, false)
                    end
                end
            end
        end
    end
    if (x == '' or x == 'waiting') and agent == '' then
        local skip = math.max(0, offset - total)
        local n, c, ids = waiting_page(group, prefix, skip, limit - #out)
        for _, o in ipairs(ids) do
            out[#out + 1] = page_item(o, now, true)
        end
        total, capped = total + n, c
    end
    return { tostring(total), tostring(capped), out }
elseif op == 'agent_sessions' then
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
