-- auth: who is calling the REST API, and the brake on guessing tokens.
-- P authfail:<address> counts failed token authentications from one
-- client address in a fixed window, P ticketfail:<address> failed stream
-- tickets apart (a ticket travels in a URL, so any web page an agent
-- opens can make the browser send a bad one). Past the limit a failed
-- attempt is answered 429 until the window ends; a right token or ticket
-- is never refused, so no one behind the same address is locked out.
-- KEYS[1] the account prefix P; no other KEYS.
-- ARGV: 1 op, 2 address, 3 limit, then per op:
--   check 4 token hash ('' = the caller is the admin, checked in C)
--         -> {'admin'} | {'agent', account, status} | {'limited', ms left}
--          | {'none'}
--   fail  4 window ms, 5 token | ticket -> {failures in this window}
--   ticket 4 ticket hash -> like check, for a console's push subscription
--   ticket_new 4 ticket hash, 5 account, 6 ttl ms, 7 the hash of the
--         token it is issued to, or 's:' .. the key hash of the password
--         session (lib/lua/staff.lua) -> {'ok'}
-- A ticket (P ticket:<sha256> -> '<account> <token hash>') lets an
-- EventSource, which cannot send an Authorization header, subscribe
-- without the agent's token in its URL. It works once, within its ttl,
-- and only while that token is still the agent's (a new token or a
-- removed agent makes it worthless; for an agent signed in with a
-- password: only while that session P staff:s:<hash> is there).
-- The agent tables are the mirror's (see agent.c): P token:<hash> ->
-- account, P agents, P agent:<account>.
local P = KEYS[1]
local op, ip, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])

-- Where the failures of a kind (token or ticket) from ip are counted.
local function fail_key(kind)
    if kind == 'ticket' then return P .. 'ticketfail:' .. ip end
    return P .. 'authfail:' .. ip
end

-- The answer to a failed attempt: {'limited', ms left} when ip is over
-- its limit for this kind, else {'none'} (the caller counts it then).
local function refused(kind)
    local fk = fail_key(kind)
    if tonumber(redis.call('GET', fk) or '0') < limit then
        return { 'none' }
    end
    return { 'limited', tostring(math.max(redis.call('PTTL', fk), 0)) }
end

-- Agent a's answer, if a is still an agent, else nil.
local function agent_rec(a)
    if not a or redis.call('SISMEMBER', P .. 'agents', a) == 0 then
        return nil
    end
    return { 'agent', a,
             redis.call('HGET', P .. 'agent:' .. a, 'status') or 'offline' }
end

-- The agent a mapping key names, if it is still an agent, else nil.
local function agent_of(key)
    return agent_rec(redis.call('GET', key))
end

if op == 'check' then
    if ARGV[4] == '' then return { 'admin' } end
    return agent_of(P .. 'token:' .. ARGV[4]) or refused('token')
elseif op == 'ticket' then
    -- used once; and only while the token it was issued for still works
    local v = redis.call('GETDEL', P .. 'ticket:' .. ARGV[4])
    local a, h, s
    if v then
        a, h = string.match(v, '^(%S+) (%x+)$')
        if not a then a, s = string.match(v, '^(%S+) s:(%x+)$') end
    end
    if s and redis.call('HGET', P .. 'staff:s:' .. s, 'agent') == a then
        local who = agent_rec(a)
        if who then return who end
    elseif h and redis.call('GET', P .. 'token:' .. h) == a then
        local who = agent_of(P .. 'token:' .. h)
        if who then return who end
    end
    return refused('ticket')
elseif op == 'ticket_new' then
    redis.call('SET', P .. 'ticket:' .. ARGV[4], ARGV[5] .. ' ' .. ARGV[7],
               'PX', tonumber(ARGV[6]))
    return { 'ok' }
elseif op == 'fail' then
    local fk = fail_key(ARGV[5])
    local n = redis.call('INCR', fk)
    if n == 1 then redis.call('PEXPIRE', fk, tonumber(ARGV[4])) end
    return { n }
end
return redis.error_reply('bad op')
