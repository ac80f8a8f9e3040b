-- wx_token: the access token every process shares (lib/wx_token.c).
-- KEYS[1] the account prefix P; no other KEYS.
-- P .. 'wx:token'      HASH   token, expires_ms, fetched_ms (absolute wall
--                             clock ms); expires with the token itself.
-- P .. 'wx:token_lock' STRING the refresher's random id (SET NX PX).
-- ARGV[1] op:
--   acquire now fresh_ms min_age_ms owner lock_ttl_ms
--     -> {state, token or '', expires_ms}. state 'fresh': use the token;
--        'locked': the caller now owns the lock and must fetch (the
--        current token, maybe still valid, comes along); 'busy': someone
--        else is fetching. A token fetched less than min_age_ms ago counts
--        as fresh while valid: near its end WeChat's stable_token keeps
--        answering the same token, and refetching it on every call would
--        spend the daily budget.
--   put token expires_ms now owner -> 1; releases the lock if it is owner's
--   unlock owner -> 1 if the lock was owner's (and is gone), else 0
--   drop token -> 1 if the cached token was that one (and is gone), else 0:
--     a newer token stored by another process survives.
local P = KEYS[1]
local key, lock, op = P .. 'wx:token', P .. 'wx:token_lock', ARGV[1]

if op == 'acquire' then
    local now, fresh, min_age = tonumber(ARGV[2]), tonumber(ARGV[3]),
                                tonumber(ARGV[4])
    local h = redis.call('HMGET', key, 'token', 'expires_ms', 'fetched_ms')
    local tok, exp, fetched = h[1] or '', tonumber(h[2] or '') or 0,
                              tonumber(h[3] or '') or 0
    if tok ~= '' and (exp - now > fresh or
                      (exp > now and now - fetched < min_age)) then
        return { 'fresh', tok, exp }
    end
    if redis.call('SET', lock, ARGV[5], 'NX', 'PX', ARGV[6]) then
        return { 'locked', tok, exp }
    end
    return { 'busy', tok, exp }
elseif op == 'put' then
    redis.call('HSET', key, 'token', ARGV[2], 'expires_ms', ARGV[3],
               'fetched_ms', ARGV[4])
    redis.call('PEXPIREAT', key, ARGV[3])
    if redis.call('GET', lock) == ARGV[5] then redis.call('DEL', lock) end
    return 1
elseif op == 'unlock' then
    if redis.call('GET', lock) == ARGV[2] then
        redis.call('DEL', lock)
        return 1
    end
    return 0
elseif op == 'drop' then
    if redis.call('HGET', key, 'token') == ARGV[2] then
        redis.call('DEL', key)
        return 1
    end
    return 0
end
return redis.error_reply('wx_token: unknown op')
