-- read: views for the API (no writes).
-- ARGV: 1 op: agent_sessions | session, 2 agent or openid.
-- agent_sessions -> flat list of session hashes (each as {field, value...})
-- session -> the session hash as {field, value...} plus position.
local op, x = ARGV[1], ARGV[2]
if op == 'agent_sessions' then
    local users = redis.call('SMEMBERS', P .. 'load:' .. x)
    table.sort(users)
    local out = {}
    for _, o in ipairs(users) do
        local h = redis.call('HGETALL', skey(o))
        h[#h + 1] = 'openid'
        h[#h + 1] = o
        out[#out + 1] = h
    end
    return out
elseif op == 'session' then
    local s = session(x)
    if not s then return {} end
    local h = redis.call('HGETALL', skey(x))
    if s.state == 'waiting' then
        h[#h + 1] = 'position'
        h[#h + 1] = tostring(position(x, s.group or '_all'))
    end
    h[#h + 1] = 'openid'
    h[#h + 1] = x
    return h
end
return redis.error_reply('bad op')
