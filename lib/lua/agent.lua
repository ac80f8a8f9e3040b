-- agent: the Redis mirror of the agent records (lib/agent_mirror.c).
-- KEYS[1] is the account prefix P; KEYS[2..] are full key names.
-- ARGV[1] op:
--   put: KEYS[2] P agent:<acct>, KEYS[3] P agents, KEYS[4] P token:<new>
--        (or KEYS[2]), KEYS[5] P token:<old> (or KEYS[2]), KEYS[6..]
--        P group:<g>; ARGV[2] acct, ARGV[3] groups as read, ARGV[4]
--        token_sha256 as read, ARGV[5] nick, ARGV[6] weight, ARGV[7]
--        capacity ('' = default), ARGV[8] groups, ARGV[9] new token hash
--        ('' = keep), ARGV[10] '1' = DEL KEYS[5], ARGV[11] n: acct joins
--        the first n group keys and leaves the others.
--        HSET the record (status=offline only if the hash is new), SADD
--        P agents, the group moves, the token key. -> 1, or 0 if the
--        hash changed since the caller read it (it reads and retries):
--        the caller names the old groups' keys from what it read.
--   remove: KEYS[2] P agent:<acct>, KEYS[3] P agents, KEYS[4] P
--        load:<acct>, KEYS[5] P token:<hash> (or KEYS[2]), KEYS[6] P
--        inbox:<acct> (its feed: an account made again starts empty),
--        KEYS[7..] P group:<g>; ARGV[2] acct, ARGV[3] groups as read,
--        ARGV[4] token_sha256 as read, ARGV[5] '1' = DEL KEYS[5].
--        -> 1 removed, 0 changed since read, -1 active sessions, -2 not
--        offline.
--   sweep_token: KEYS[2] P token:<h>, KEYS[3] P agent:<acct> (absent if
--        acct is not an account); ARGV[2] acct as read, ARGV[3] h.
--        Deletes a token key its agent's hash does not name. -> 1 or 0.
--   sweep_group: KEYS[2] P group:<g>, KEYS[3] P agent:<m> (absent if m
--        is not an account); ARGV[2] m, ARGV[3] g. Removes a member
--        whose hash does not list the group. -> 1 or 0.
local op = ARGV[1]

if op == 'put' then
    local cur = redis.call('HMGET', KEYS[2], 'groups', 'token_sha256')
    if (cur[1] or '') ~= ARGV[3] or (cur[2] or '') ~= ARGV[4] then
        return 0
    end
    redis.call('HSET', KEYS[2], 'nick', ARGV[5], 'weight', ARGV[6],
               'capacity', ARGV[7], 'groups', ARGV[8])
    redis.call('HSETNX', KEYS[2], 'status', 'offline')
    redis.call('SADD', KEYS[3], ARGV[2])
    local joins = tonumber(ARGV[11])
    for i = 6, #KEYS do
        if i - 5 <= joins then redis.call('SADD', KEYS[i], ARGV[2])
        else redis.call('SREM', KEYS[i], ARGV[2]) end
    end
    if ARGV[9] ~= '' then
        redis.call('SET', KEYS[4], ARGV[2])
        redis.call('HSET', KEYS[2], 'token_sha256', ARGV[9])
    end
    if ARGV[10] == '1' then redis.call('DEL', KEYS[5]) end
    return 1
elseif op == 'remove' then
    local cur = redis.call('HMGET', KEYS[2], 'groups', 'token_sha256',
                           'status')
    if (cur[1] or '') ~= ARGV[3] or (cur[2] or '') ~= ARGV[4] then
        return 0
    end
    if redis.call('SCARD', KEYS[4]) > 0 then return -1 end
    if (cur[3] or 'offline') ~= 'offline' then return -2 end
    redis.call('SREM', KEYS[3], ARGV[2])
    for i = 7, #KEYS do redis.call('SREM', KEYS[i], ARGV[2]) end
    if ARGV[5] == '1' then redis.call('DEL', KEYS[5]) end
    redis.call('DEL', KEYS[2], KEYS[6])
    return 1
elseif op == 'sweep_token' then
    if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
    if #KEYS > 2 and
       redis.call('HGET', KEYS[3], 'token_sha256') == ARGV[3] then
        return 0
    end
    return redis.call('DEL', KEYS[2])
elseif op == 'sweep_group' then
    local gs = #KEYS > 2 and redis.call('HGET', KEYS[3], 'groups')
    if gs and string.find(',' .. gs .. ',', ',' .. ARGV[3] .. ',', 1,
                          true) then
        return 0
    end
    return redis.call('SREM', KEYS[2], ARGV[2])
end
return redis.error_reply('agent.lua: unknown op')
