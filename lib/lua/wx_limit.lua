-- wx_limit: the WeChat API's rate limit and daily budgets, shared by every
-- process (lib/wx_token.c).
-- P .. 'wx:bucket'              HASH   tokens (fractional), ts_ms: a token
--                                      bucket, capacity per_min, refilled
--                                      per_min/60 a second.
-- P .. 'wx:daily:<day>:<name>'  STRING units spent that day; expires after
--                                      2 days.
-- Times come from the caller (ARGV), so the script is deterministic.
-- KEYS[1] the account prefix P; KEYS[2] a budget's key
-- (P wx:daily:<day>:<name>), absent when a call spends no budget.
-- ARGV[1] op:
--   admit now per_min limit
--     per_min > 0: takes one bucket token; with KEYS[2]: spends one unit
--     of that budget (limit a day). Both or neither.
--     -> {1, 0} admitted, {0, wait_ms} bucket empty (wait_ms until the
--        next token), {-1, spent} budget used up. Nothing changes on a
--        refusal except the bucket's refill bookkeeping.
--   refund (KEYS[2]) -> units spent after giving one back
--   spent (KEYS[2]) -> units spent
local P, bkey, op = KEYS[1], KEYS[2], ARGV[1]

local function take(now, per_min)
    local b = P .. 'wx:bucket'
    local h = redis.call('HMGET', b, 'tokens', 'ts_ms')
    local tokens, ts = tonumber(h[1] or ''), tonumber(h[2] or '')
    if not tokens or not ts then tokens, ts = per_min, now end
    if now > ts then
        tokens = tokens + (now - ts) * per_min / 60000
        ts = now
    end
    if tokens > per_min then tokens = per_min end
    local ok = tokens >= 1
    if ok then tokens = tokens - 1 end
    redis.call('HSET', b, 'tokens', tostring(tokens), 'ts_ms', tostring(ts))
    -- an idle bucket is full again after a minute: nothing is lost
    redis.call('PEXPIRE', b, 120000)
    if ok then return 0 end
    return math.ceil((1 - tokens) * 60000 / per_min)
end

if op == 'admit' then
    local now, per_min, limit = tonumber(ARGV[2]), tonumber(ARGV[3]),
                                tonumber(ARGV[4])
    if bkey then
        local spent = tonumber(redis.call('GET', bkey) or '') or 0
        if spent >= limit then return { -1, spent } end
    end
    if per_min > 0 then
        local wait = take(now, per_min)
        if wait > 0 then return { 0, wait } end
    end
    if bkey then
        if redis.call('INCR', bkey) == 1 then
            redis.call('EXPIRE', bkey, 172800)
        end
    end
    return { 1, 0 }
elseif op == 'refund' and bkey then
    local spent = tonumber(redis.call('GET', bkey) or '') or 0
    if spent > 0 then spent = redis.call('DECR', bkey) end
    return spent
elseif op == 'spent' and bkey then
    return tonumber(redis.call('GET', bkey) or '') or 0
end
return redis.error_reply('wx_limit: unknown op')
