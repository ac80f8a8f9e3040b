-- media_keep: retention and the disk quota of the media store
-- (lib/media_keep.c).
-- KEYS[1] = P, the account prefix "wxkf:{APPID}:" (store_run adds it);
-- no other KEYS: every key is P .. suffix — media_files (sorted set of
-- media_ids by stored_ms), media_bytes (the bytes they take),
-- media:<media_id>, media_jobs, media_indexed, media_index_cursor.
-- ARGV[1] = op, ARGV[2..] its arguments:
--   pick  cut_ms quota need n -> { used, { {mid, path, size, why,
--         play_path}... } }: size counts a voice's playable copy too
--         (play_path, "" when none); the oldest files, at most n, stored
--         before cut_ms (why =
--         retention) or to delete so that used + need <= quota (why =
--         quota; quota 0 = none)
--   forget mid                -> 1 when mid was indexed: its hash, its
--                                index entry and its bytes are gone
--   usage                     -> { bytes, files, jobs }
--   index n                   -> indexes the stored hashes of an earlier
--                                version, SCAN COUNT n at a time; 1 while
--                                there is more, 0 when done (for good)
local P, op = KEYS[1], ARGV[1]
local FILES, BYTES = P .. 'media_files', P .. 'media_bytes'
local function used()
    return tonumber(redis.call('GET', BYTES) or '0') or 0
end

if op == 'pick' then
    local cut, quota = tonumber(ARGV[2]), tonumber(ARGV[3])
    local need, u = tonumber(ARGV[4]), used()
    local out, freed = {}, 0
    local old = redis.call('ZRANGE', FILES, 0, tonumber(ARGV[5]) - 1,
                           'WITHSCORES')
    for i = 1, #old - 1, 2 do
        local why
        if tonumber(old[i + 1]) < cut then why = 'retention'
        elseif quota > 0 and u - freed + need > quota then
            why = 'quota'
        else break end
        local h = redis.call('HMGET', P .. 'media:' .. old[i], 'path',
                             'size', 'play_path', 'play_size')
        local size = (tonumber(h[2] or '0') or 0) +
                     (tonumber(h[4] or '0') or 0)
        freed = freed + size
        out[#out + 1] = { old[i], h[1] or '', tostring(size), why,
                          h[3] or '' }
    end
    return { u, out }
elseif op == 'forget' then
    if not redis.call('ZSCORE', FILES, ARGV[2]) then return 0 end
    local k = P .. 'media:' .. ARGV[2]
    local h = redis.call('HMGET', k, 'size', 'play_size')
    local size = (tonumber(h[1] or '0') or 0) + (tonumber(h[2] or '0') or 0)
    redis.call('ZREM', FILES, ARGV[2])
    redis.call('DECRBY', BYTES, size)
    redis.call('DEL', k)
    return 1
elseif op == 'usage' then
    return { used(), redis.call('ZCARD', FILES),
             redis.call('ZCARD', P .. 'media_jobs') }
elseif op == 'index' then
    if redis.call('EXISTS', P .. 'media_indexed') == 1 then return 0 end
    local cur = redis.call('GET', P .. 'media_index_cursor') or '0'
    local r = redis.call('SCAN', cur, 'MATCH', P .. 'media:*', 'COUNT',
                         ARGV[2])
    for _, k in ipairs(r[2]) do
        local id = string.sub(k, #P + 7)
        if redis.call('TYPE', k).ok == 'hash' and
           not redis.call('ZSCORE', FILES, id) then
            local h = redis.call('HMGET', k, 'path', 'size', 'stored_ms')
            if h[1] and tonumber(h[2]) and tonumber(h[3]) then
                redis.call('ZADD', FILES, h[3], id)
                redis.call('INCRBY', BYTES, h[2])
            end
        end
    end
    if r[1] == '0' then
        redis.call('SET', P .. 'media_indexed', '1')
        redis.call('DEL', P .. 'media_index_cursor')
        return 0
    end
    redis.call('SET', P .. 'media_index_cursor', r[1])
    return 1
end
return redis.error_reply('unknown media_keep op')
