-- staff: the console sessions of staff users who signed in with a
-- password (lib/staff_session), and the lock-out of logins after failed
-- passwords. Times are the caller's (ms); the expiry decision is made in
-- C (staff_session_expired) from the times this script hands back.
-- P staff:s:<sha256 of the cookie's id> -> hash login, role, agent, csrf,
--   name, created, last (ms); its TTL is the idle timeout, cut to what
--   the absolute one leaves.
-- P staff:u:<login> -> set of that user's session hashes (sign-out
--   everywhere; members whose session is gone are dropped then).
-- P staff:lock:<login> -> hash n (failed passwords in a row), until (ms:
--   no verification before it); gone a day after the last failure.
-- KEYS[1] the account prefix P; no other KEYS.
-- Audited (audit.lua, when the caller armed it): new (the sign-in), end
-- (when a session ended), end_all, fail (a failed password), lock_until
-- (as 'staff.lock', when it locks the login).
-- ARGV: 1 op, then per op:
--   new     2 hash, 3 login, 4 role, 5 agent, 6 csrf, 7 name, 8 now,
--           9 idle ms, 10 max ms -> {'ok'}
--   get     2 hash, 3 now, 4 idle ms, 5 max ms -> {'none'}
--           | {'ok', login, role, agent, csrf, name, created, last (the
--              one before this call), agent status ('' no agent; 'gone'
--              an agent no longer in P agents)}; last becomes now
--   end     2 hash -> {sessions ended (0 or 1)}
--   end_all 2 login, 3 hash to keep ('' none) -> {sessions ended}
--   lock    2 login, 3 now -> {'ok'} | {'locked', ms left}
--   fail    2 login -> {failures in a row}
--   lock_until 2 login, 3 until ms -> {'ok'}
--   unlock  2 login -> {'ok'}
local P = KEYS[1]
local op = ARGV[1]
local DAY = 86400000

local function skey(h) return P .. 'staff:s:' .. h end
local function ukey(l) return P .. 'staff:u:' .. l end
local function lkey(l) return P .. 'staff:lock:' .. l end

if op == 'new' then
    local k = skey(ARGV[2])
    redis.call('HSET', k, 'login', ARGV[3], 'role', ARGV[4], 'agent',
               ARGV[5], 'csrf', ARGV[6], 'name', ARGV[7], 'created',
               ARGV[8], 'last', ARGV[8])
    redis.call('PEXPIRE', k, tonumber(ARGV[9]))
    redis.call('SADD', ukey(ARGV[3]), ARGV[2])
    redis.call('PEXPIRE', ukey(ARGV[3]), tonumber(ARGV[10]))
    audit(ARGV[3])
    return { 'ok' }
elseif op == 'get' then
    local k = skey(ARGV[2])
    local v = redis.call('HMGET', k, 'login', 'role', 'agent', 'csrf', 'name',
                         'created', 'last')
    if not v[1] then return { 'none' } end
    local now, idle, max = tonumber(ARGV[3]), tonumber(ARGV[4]),
                           tonumber(ARGV[5])
    local st = ''
    if v[3] ~= '' then
        if redis.call('SISMEMBER', P .. 'agents', v[3]) == 1 then
            st = redis.call('HGET', P .. 'agent:' .. v[3], 'status')
                 or 'offline'
        else
            st = 'gone'
        end
    end
    local left = math.min(idle, tonumber(v[6]) + max - now)
    if left > 0 then
        redis.call('HSET', k, 'last', ARGV[3])
        redis.call('PEXPIRE', k, left)
    end
    return { 'ok', v[1], v[2], v[3], v[4], v[5], v[6], v[7], st }
elseif op == 'end' then
    local l = redis.call('HGET', skey(ARGV[2]), 'login')
    if l then redis.call('SREM', ukey(l), ARGV[2]) end
    local n = redis.call('DEL', skey(ARGV[2]))
    if n > 0 then audit(l) end
    return { n }
elseif op == 'end_all' then
    local n = 0
    for _, h in ipairs(redis.call('SMEMBERS', ukey(ARGV[2]))) do
        if h ~= ARGV[3] then
            n = n + redis.call('DEL', skey(h))
            redis.call('SREM', ukey(ARGV[2]), h)
        end
    end
    audit(ARGV[2])
    return { n }
elseif op == 'lock' then
    local u = tonumber(redis.call('HGET', lkey(ARGV[2]), 'until') or '0')
    local now = tonumber(ARGV[3])
    if u > now then return { 'locked', tostring(u - now) } end
    return { 'ok' }
elseif op == 'fail' then
    local n = redis.call('HINCRBY', lkey(ARGV[2]), 'n', 1)
    redis.call('PEXPIRE', lkey(ARGV[2]), DAY)
    audit(ARGV[2])
    return { n }
elseif op == 'lock_until' then
    local u = tonumber(redis.call('HGET', lkey(ARGV[2]), 'until') or '0')
    if tonumber(ARGV[3]) > u then
        redis.call('HSET', lkey(ARGV[2]), 'until', ARGV[3])
        audit(ARGV[2], 'staff.lock')
    end
    return { 'ok' }
elseif op == 'unlock' then
    redis.call('DEL', lkey(ARGV[2]))
    return { 'ok' }
end
return redis.error_reply('bad op')
