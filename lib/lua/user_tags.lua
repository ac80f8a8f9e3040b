-- user_tags: the account's user tags (cgi-bin/tags/get) as `wxkf jobs`
-- keeps them for the profile page (lib/user_tags.c), standalone.
-- KEYS[1] = P, the account prefix "wxkf:{APPID}:" (store_run adds it);
-- no other KEYS: P user_tags (hash tag id -> name), P user_tags_at (ms of
-- the last list fetched), P user_tags_tried (ms of the last attempt).
-- ARGV[1] = op, ARGV[2..] its arguments:
--   due   now_ms fresh_ms retry_ms unknown
--                     -> 1: fetch the list now (the attempt is noted, so
--                        another jobs process does not fetch it too); 0:
--                        not yet. Due when no attempt was made in the last
--                        retry_ms and the list is missing, older than
--                        fresh_ms, or unknown is 1 (a profile names an id
--                        the list lacks).
--   put   now_ms id name [id name ...]
--                     -> the number of tags kept: the list replaced whole
--   names id [id ...] -> { name or nil per id }
local P, op = KEYS[1], ARGV[1]
local TAGS, AT, TRIED = P .. 'user_tags', P .. 'user_tags_at',
                        P .. 'user_tags_tried'

if op == 'due' then
    local now, fresh = tonumber(ARGV[2]), tonumber(ARGV[3])
    local retry, unknown = tonumber(ARGV[4]), ARGV[5] == '1'
    local tried = tonumber(redis.call('GET', TRIED) or '')
    if tried and now - tried < retry and now >= tried then return 0 end
    local at = tonumber(redis.call('GET', AT) or '')
    if at and now - at < fresh and now >= at and not unknown then
        return 0
    end
    redis.call('SET', TRIED, ARGV[2])
    return 1
elseif op == 'put' then
    redis.call('DEL', TAGS)
    for i = 3, #ARGV - 1, 2 do
        redis.call('HSET', TAGS, ARGV[i], ARGV[i + 1])
    end
    redis.call('SET', AT, ARGV[2])
    return math.floor((#ARGV - 2) / 2)
elseif op == 'names' then
    local ids = {}
    for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
    if #ids == 0 then return {} end
    return redis.call('HMGET', TAGS, unpack(ids))
end
return redis.error_reply('ERR user_tags: bad op')
