-- auth: who is calling the REST API, and the brake on guessing tokens.
-- P authfail:<address> counts failed authentications from one client
-- address in a fixed window; at the limit every request from it is
-- refused (429) until the window ends — before any token is looked at, so
-- a guess that happens to be right is refused too.
-- ARGV: 1 op, 2 address, 3 limit, then per op:
--   check 4 token hash ('' = the caller is the admin, checked in C)
--         -> {'limited', ms left} | {'admin'} | {'agent', account, status}
--          | {'none'}
--   fail  4 window ms -> {failures in this window}
--   ticket 4 ticket hash -> like check, for a console's push subscription
--   ticket_new 4 ticket hash, 5 account, 6 ttl ms, 7 the hash of the
--         token it is issued to -> {'ok'}
-- A ticket (P ticket:<sha256> -> '<account> <token hash>') lets an
-- EventSource, which cannot send an Authorization header, subscribe
-- without the agent's token in its URL. It works once, within its ttl,
-- and only while that token is still the agent's (a new token or a
-- removed agent makes it worthless).
-- The agent tables are the mirror's (see agent.c): P token:<hash> ->
-- account, P agents, P agent:<account>.
local op, ip, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local fk = P .. 'authfail:' .. ip

-- The address over its limit: {'limited', ms left}, else nil.
local function limited()
    if tonumber(redis.call('GET', fk) or '0') < limit then return nil end
    return { 'limited', tostring(math.max(redis.call('PTTL', fk), 0)) }
end

-- The agent a mapping key names, if it is still an agent.
local function agent_of(key)
    local a = redis.call('GET', key)
    if not a or redis.call('SISMEMBER', P .. 'agents', a) == 0 then
        return { 'none' }
    end
    return { 'agent', a, redis.call('HGET', akey(a), 'status') or 'offline' }
end

if op == 'check' then
    local l = limited()
    if l then return l end
    if ARGV[4] == '' then return { 'admin' } end
    return agent_of(P .. 'token:' .. ARGV[4])
elseif op == 'ticket' then
    local l = limited()
    if l then return l end
    -- used once; and only while the token it was issued for still works
    local v = redis.call('GETDEL', P .. 'ticket:' .. ARGV[4])
    if not v then return { 'none' } end
    local a, h = string.match(v, '^(%S+) (%x+)$')
    if not a or redis.call('GET', P .. 'token:' .. h) ~= a then
        return { 'none' }
    end
    return agent_of(P .. 'token:' .. h)
elseif op == 'ticket_new' then
    redis.call('SET', P .. 'ticket:' .. ARGV[4], ARGV[5] .. ' ' .. ARGV[7],
               'PX', tonumber(ARGV[6]))
    return { 'ok' }
elseif op == 'fail' then
    local n = redis.call('INCR', fk)
    if n == 1 then redis.call('PEXPIRE', fk, tonumber(ARGV[4])) end
    return { n }
end
return redis.error_reply('bad op')
