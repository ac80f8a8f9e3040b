-- consumers: the housekeeping of a consumer group on P events that every
-- reader of the stream shares (lib/stream_group.c), standalone (no
-- routing prelude).
-- KEYS[1] = P, the account prefix "wxkf:{APPID}:" (store_run adds it);
-- no other KEYS: the stream is P .. 'events'.
-- ARGV[1] = op, ARGV[2..] its arguments:
--   forget group me idle_ms -> the number of consumers removed
--          Removes (XGROUP DELCONSUMER) every consumer of group but me
--          idle over idle_ms with nothing pending: a process gone for
--          good (each `wxkf jobs` start reads under a name of its own).
--          A consumer with pending entries is kept: its entries are the
--          caller's to claim first (XAUTOCLAIM), which leaves it with
--          none. No stream or no group: 0.
local P, op = KEYS[1], ARGV[1]
if op ~= 'forget' then return redis.error_reply('ERR consumers: bad op') end
local S, g, me, idle = P .. 'events', ARGV[2], ARGV[3], tonumber(ARGV[4])
local list = redis.pcall('XINFO', 'CONSUMERS', S, g)
if type(list) ~= 'table' or list.err then return 0 end
local gone = 0
for _, c in ipairs(list) do
    local h = {}
    for i = 1, #c - 1, 2 do h[c[i]] = c[i + 1] end
    if h.name ~= me and h.pending == 0 and h.idle > idle then
        redis.call('XGROUP', 'DELCONSUMER', S, g, h.name)
        gone = gone + 1
    end
end
return gone
