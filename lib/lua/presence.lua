-- presence: an agent's status or heartbeat.
-- KEYS[1] the account prefix P; no other KEYS.
-- ARGV: 1 op: online | paused | offline | heartbeat, 2 now ms, 3 cfg,
--       4 agent, 5 reason (request = the agent through the API, wechat =
--       WeChat's online list, heartbeat_lost, forced = a supervisor or
--       an admin), 6 for forced: who (a staff login, or 'admin').
-- forced takes paused or offline only, and paused only for an agent at
-- work (online or paused): else {'err', 'not_at_work'}. The agent's
-- feed gets {type = presence, status, prev, reason = forced, by}, and
-- its record status_by = who until it sets a status itself.
--       WeChat's online list, heartbeat_lost, ...).
-- A status change is audited (audit.lua) when the caller armed it.
-- Returns {status, sessions moved or assigned, previous status} or
-- {'err', code}.
local op, now, a = ARGV[1], tonumber(ARGV[2]), ARGV[4]
local cfg = parse_cfg(ARGV[3])
if redis.call('SISMEMBER', P .. 'agents', a) == 0 then
    return { 'err', 'unknown_agent' }
end
if op == 'heartbeat' then
    local st = redis.call('HGET', akey(a), 'status') or 'offline'
    if st == 'online' or st == 'paused' then
        redis.call('ZADD', P .. 'hb', now, a)
    end
    return { st, 0, st }
end
if op ~= 'online' and op ~= 'paused' and op ~= 'offline' then
    return { 'err', 'bad_status' }
end
-- mode = wechat_kf (cfg wk): an agent in kf_account form goes online and
-- offline in WeChat's tool (`wxkf jobs` follows getonlinekflist, reason
-- 'wechat'); asked through the API it can only pause and resume.
if cfg.wk == 1 and ARGV[5] == 'request' and string.find(a, '@', 1, true)
then
    local st = redis.call('HGET', akey(a), 'status') or 'offline'
    if op == 'offline' or st == 'offline' then
        return { 'err', 'presence_from_wechat' }
    end
end
local forced = ARGV[5] == 'forced'
if forced then
    local st = redis.call('HGET', akey(a), 'status') or 'offline'
    if op == 'online' then return { 'err', 'bad_status' } end
    if op == 'paused' and st == 'offline' then
        return { 'err', 'not_at_work' }
    end
end
local prev, moved = set_status(a, op, now, cfg, ARGV[5])
if forced then
    redis.call('HSET', akey(a), 'status_by', ARGV[6] or '')
    inbox(a, { 'type', 'presence', 'agent', a, 'status', op, 'prev', prev,
               'reason', 'forced', 'by', ARGV[6] or '', 'moved',
               tostring(moved), 'ts_ms', tostring(now) })
end
audit(a)
return { op, moved, prev }
