-- audit: put in front of EVERY script at build time (scripts/embed_lua.sh;
-- README.md). A state-changing staff action done in Redis is audited by
-- its own script run: the C side (lib/audit, audit_redis_arm) appends
-- the audit record to ARGV as 8 values — the marker "\1audit", action,
-- target, actor, role, ip, request id, detail (a JSON object) — and the
-- script calls audit() where the change is made. audit() XADDs one
-- `type=audit` entry onto the account's event stream (KEYS[1] ..
-- 'events'), which the archiver copies into audit_log exactly once
-- (event_id = the entry's id); the account is the one of KEYS[1]. A run
-- without the record (a job, a sweep, a callback) audits nothing. A
-- second call in one run does nothing: one action, one row. target and
-- action (nil: the record's) let a script name what it found.
local audit_done = false
local function audit(target, action)
    local n = #ARGV
    if audit_done or n < 9 or ARGV[n - 7] ~= '\1audit' then return end
    audit_done = true
    local t = target or ARGV[n - 5]
    redis.call('XADD', KEYS[1] .. 'events', '*', 'type', 'audit',
               'app', string.match(KEYS[1], '{(.*)}') or '',
               'action', action or ARGV[n - 6], 'target', t, 'actor', ARGV[n - 4],
               'role', ARGV[n - 3], 'ip', ARGV[n - 2], 'rid', ARGV[n - 1],
               'detail', ARGV[n])
end
