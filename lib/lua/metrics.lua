-- metrics: the shared counters of every process (lib/metrics.c).
-- KEYS[1] = P, the account prefix "wxkf:{APPID}:" (store_run adds it);
-- no other KEYS: the keys are P .. 'metrics' (the hash) and
-- P .. 'metrics:seq:<process id>' (the last batch a process delivered).
-- ARGV[1] = op, ARGV[2..] its arguments:
--   flush id seq ttl_s field incr [field incr...] -> 1, or 0 when the
--         process id already delivered batch seq (or a later one): a
--         batch resent after a lost reply is counted once. The batch
--         number is remembered ttl_s seconds.
--   render max_fields max_field_len max_value_len -> { field count, field,
--         value, field, value... }: at most max_fields fields are looked
--         at (HSCAN when the hash holds more); oversized ones are left
--         out.
local P, op = KEYS[1], ARGV[1]
local h = P .. 'metrics'

if op == 'flush' then
    local sk = P .. 'metrics:seq:' .. ARGV[2]
    local last = tonumber(redis.pcall('GET', sk) or '')
    if type(last) == 'number' and last >= tonumber(ARGV[3]) then
        return 0
    end
    for i = 5, #ARGV - 1, 2 do
        -- a field someone broke (not an integer, overflow) must not
        -- wedge every later batch
        redis.pcall('HINCRBY', h, ARGV[i], ARGV[i + 1])
    end
    redis.call('SET', sk, ARGV[3], 'EX', ARGV[4])
    return 1
elseif op == 'render' then
    local cap, mf, mv = tonumber(ARGV[2]), tonumber(ARGV[3]),
                        tonumber(ARGV[4])
    local n = redis.call('HLEN', h)
    local out, seen = { n }, 0
    local function take(r)
        for i = 1, #r - 1, 2 do
            if seen < cap and #r[i] <= mf and #r[i + 1] <= mv then
                out[#out + 1] = r[i]
                out[#out + 1] = r[i + 1]
            end
            seen = seen + 1
        end
    end
    if n <= cap then
        take(redis.call('HGETALL', h))
    else
        local cur = '0'
        repeat
            local r = redis.call('HSCAN', h, cur, 'COUNT', 1000)
            cur = r[1]
            take(r[2])
        until cur == '0' or seen >= cap
    end
    return out
end
return redis.error_reply('unknown metrics op')
