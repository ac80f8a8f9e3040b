-- archive_tidy: the archiver's trimming and lag (lib/archive_stream.c),
-- standalone (no routing prelude).
-- KEYS[1] the account prefix P (store_run); KEYS[2] the stream P .. 'events'.
-- ARGV[1] op: 'trim' or 'lag'; then group, keep_ms, hold_ms (ARGV[2..4]).
-- For every group on the stream: the first entry it still needs (its
-- oldest pending entry, else the one after its last delivered); another
-- group than ours needs nothing older than now - hold_ms (hold_ms 0: no
-- bound), so no other group can stop the trimming for longer. 'trim'
-- trims the stream (MINID) below the smallest of those, and below
-- now - keep_ms; 'lag' only measures. (The group's idle consumers are
-- forgotten by lib/stream_group.c, as every group's are.)
-- "now" is the server's TIME, not an ARGV: the stream ids it is compared
-- with come from the server's clock (XADD *), whatever the caller's says.
-- Returns {pending, undelivered (counted up to 10,000 when Redis does not
-- know it), oldest unarchived id or '', trimmed, other groups held back
-- by the bound}.
local S, op, g = KEYS[2], ARGV[1], ARGV[2]
if op ~= 'trim' and op ~= 'lag' then
    return redis.error_reply('ERR archive_tidy: unknown op')
end
if redis.call('EXISTS', S) == 0 then return { 0, 0, '', 0, 0 } end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(t[2] / 1000)
local hold, behind, bound = tonumber(ARGV[4]), 0, nil
if hold > 0 and now - hold > 0 then
    bound = string.format('%.0f-0', now - hold)
end
local function split(id)
    local ms, seq = string.match(id, '^(%d+)%-(%d+)$')
    return tonumber(ms), tonumber(seq)
end
local function less(a, b)
    local am, as = split(a)
    local bm, bs = split(b)
    return am < bm or (am == bm and as < bs)
end
local function after(id)
    local ms, seq = split(id)
    return string.format('%.0f-%.0f', ms, seq + 1)
end
local need, pending, undelivered, oldest, mine = nil, 0, 0, '', false
for _, raw in ipairs(redis.call('XINFO', 'GROUPS', S)) do
    local h = {}
    for i = 1, #raw - 1, 2 do h[raw[i]] = raw[i + 1] end
    local first, last = nil, h['last-delivered-id']
    if h.pending > 0 then
        first = redis.call('XPENDING', S, h.name)[2]
    else
        first = after(last)
    end
    if h.name ~= g and bound and less(first, bound) then
        first, behind = bound, behind + 1
    end
    if not need or less(first, need) then need = first end
    if h.name == g then
        mine = true
        pending = h.pending
        local top = redis.call('XREVRANGE', S, '+', '-', 'COUNT', 1)
        if #top == 0 or not less(last, top[1][1]) then
            undelivered = 0
        elseif h.lag then
            -- Redis's count; it can be off after a restart: bound it
            undelivered = math.max(1, math.min(h.lag,
                                   redis.call('XLEN', S)))
        else
            -- unknown to Redis (after XDEL or SETID): count, up to 10k
            undelivered = #redis.call('XRANGE', S, '(' .. last, '+',
                                      'COUNT', 10000)
        end
        if h.pending > 0 then
            oldest = first
        else
            local nx = redis.call('XRANGE', S, '(' .. last, '+',
                                  'COUNT', 1)
            if #nx > 0 then oldest = nx[1][1] end
        end
    end
end
if not mine then
    undelivered = redis.call('XLEN', S)
    local nx = redis.call('XRANGE', S, '-', '+', 'COUNT', 1)
    if #nx > 0 then oldest = nx[1][1] end
end
local trimmed = 0
if op == 'trim' and need then
    local keep = tonumber(ARGV[3])
    if keep > 0 then
        local floor = string.format('%.0f-0', now - keep)
        if now - keep < 0 then floor = '0-0' end
        if less(floor, need) then need = floor end
    end
    trimmed = redis.call('XTRIM', S, 'MINID', need)
end
return { pending, undelivered, oldest, trimmed, behind }
