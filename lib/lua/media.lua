-- media: the media store's jobs and records (lib/media.c).
-- KEYS[1] = P, the account prefix "wxkf:{APPID}:" (store_run adds it);
-- no other KEYS: every key is P .. suffix — events, inbox:<agent>,
-- media_jobs, media_job:<entry id>, media:<media_id>, media_files,
-- media_bytes, media_off, load:<agent>, sess:<openid>.
-- ARGV[1] = op, ARGV[2..] its arguments:
--   take group consumer count idle_ms cursor now_ms lease_ms
--          -> { claim cursor, acked (not media), queued,
--               { {id, openid, msgtype, payload, agent}... } }
--          One pass's take. The group only reads P events: every entry
--          it reads is acknowledged at once, so it never holds back the
--          archiver's trimming for longer than a pass. An inbound image,
--          voice, video or shortvideo becomes a job: P media_job:<entry
--          id> (openid, msgtype, payload, agent; expires after JOB_TTL,
--          when WeChat has forgotten the media anyway) and a member of
--          the sorted set P media_jobs scored by when it is due. The group
--          is created at id 0 the first time (entries already in the
--          stream are seen), at '$' after op off dropped it (P media_off:
--          entries appended while fetching was off are not fetched).
--          Entries an earlier version left pending are claimed
--          (XAUTOCLAIM) and handled the same way (when the claim cursor
--          wraps, lib/media.c forgets the consumers gone for a day with
--          nothing pending: lib/stream_group.c).
--          Then up to count due jobs are leased: their score moves
--          lease_ms ahead, so another consumer takes a job only if this
--          one died holding it.
--   begin  mid now                 -> {stored | failed | wait | go,
--                                      retry_ms or "0"}
--   stored mid path ct size openid now agent msg play_path play_size
--          play_ms                                    -> 1 (0: already)
--          (also indexed: P media_files by stored_ms, P media_bytes
--          counting the playable copy too); play_path "" = none, else a
--          voice's WAV (play_path, play_size, play_ms in the hash and the
--          event, with play_type audio/wav)
--   failed key_mid event_mid openid now agent msg reason errcode errmsg
--                                  -> 1 (0: already); key_mid "" = no hash
--   retry  mid now min_delay_ms    -> {attempts so far, retry_ms}
--   done   job_id                  -> the job is finished: removed
--   later  job_id due_ms           -> the job is due again then
--   off    group                   -> drops the group (1 if it existed)
--                                     and notes that fetching was off
--   lookup mid agent format        -> {ok, path, ct, size} | {no_media} |
--                                     {not_yours} | {media_failed} |
--                                     {no_playable}; format "wav": the
--                                     playable copy's path and size
-- A failure's hash, and a retry count, expire after FAILED_TTL. Events go
-- to P events and to the feed of the agent the message was routed to (as
-- the ingest script's inbox()).
local P, op = KEYS[1], ARGV[1]
local JOB_TTL = 259200          -- 3 days: WeChat keeps a media no longer
local FAILED_TTL = 604800       -- a failure (or retry count): 7 days
local function mkey(id) return P .. 'media:' .. id end
-- The event {type, openid, media_id, <what>..., ts_ms, msg, agent}.
local function emit(kind, openid, mid, what, ts, msg, agent)
    local f = { 'type', kind, 'openid', openid, 'media_id', mid }
    for _, v in ipairs(what) do f[#f + 1] = v end
    for _, v in ipairs({ 'ts_ms', ts, 'msg', msg, 'agent', agent }) do
        f[#f + 1] = v
    end
    redis.call('XADD', P .. 'events', '*', unpack(f))
    if agent ~= '' then
        redis.call('XADD', P .. 'inbox:' .. agent, 'MAXLEN', '~', 10000,
                   '*', unpack(f))
    end
end

if op == 'take' then
    local S, JOBS = P .. 'events', P .. 'media_jobs'
    local g, me, n = ARGV[2], ARGV[3], tonumber(ARGV[4])
    local now, lease = tonumber(ARGV[7]), tonumber(ARGV[8])
    local start = '0'
    if redis.call('EXISTS', P .. 'media_off') == 1 then start = '$' end
    local made = redis.pcall('XGROUP', 'CREATE', S, g, start, 'MKSTREAM')
    if made.err then
        if not string.find(made.err, 'BUSYGROUP', 1, true) then
            return redis.error_reply(made.err)
        end
    else
        redis.call('DEL', P .. 'media_off')
    end
    local MEDIA = { image = true, voice = true, video = true,
                    shortvideo = true }
    local acks, seen, queued = {}, {}, 0
    local function take(e)
        local id, f = e[1], e[2]
        if seen[id] then return end
        seen[id] = true
        acks[#acks + 1] = id
        if type(f) ~= 'table' then return end
        local h = {}
        for i = 1, #f - 1, 2 do h[f[i]] = f[i + 1] end
        if h.type ~= 'msg_in' or not MEDIA[h.msgtype] then return end
        local k = P .. 'media_job:' .. id
        redis.call('HSET', k, 'openid', h.openid or '', 'msgtype',
                   h.msgtype, 'payload', h.payload or '', 'agent',
                   h.agent or '')
        redis.call('EXPIRE', k, JOB_TTL)
        redis.call('ZADD', JOBS, 'NX', now, id)
        queued = queued + 1
    end
    local cl = redis.call('XAUTOCLAIM', S, g, me, ARGV[5], ARGV[6],
                          'COUNT', n)
    for _, e in ipairs(cl[2]) do take(e) end
    local new = redis.call('XREADGROUP', 'GROUP', g, me, 'COUNT', n,
                           'STREAMS', S, '>')
    if type(new) == 'table' and type(new[1]) == 'table' then
        for _, e in ipairs(new[1][2] or {}) do take(e) end
    end
    if #acks > 0 then redis.call('XACK', S, g, unpack(acks)) end
    local out = {}
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', JOBS, '-inf', now,
                                   'LIMIT', 0, n)) do
        local h = redis.call('HMGET', P .. 'media_job:' .. id, 'openid',
                             'msgtype', 'payload', 'agent')
        if not h[2] then
            redis.call('ZREM', JOBS, id)
        else
            redis.call('ZADD', JOBS, 'XX', now + lease, id)
            out[#out + 1] = { id, h[1] or '', h[2], h[3] or '', h[4] or '' }
        end
    end
    return { cl[1], #acks - queued, queued, out }
elseif op == 'begin' then
    local h = redis.call('HMGET', mkey(ARGV[2]), 'path', 'error',
                         'retry_ms')
    if h[1] then return { 'stored', '0' } end
    if h[2] then return { 'failed', '0' } end
    if h[3] and tonumber(h[3]) > tonumber(ARGV[3]) then
        return { 'wait', h[3] }
    end
    return { 'go', '0' }
elseif op == 'stored' then
    local k = mkey(ARGV[2])
    if redis.call('HEXISTS', k, 'path') == 1 then return 0 end
    redis.call('HSET', k, 'path', ARGV[3], 'content_type', ARGV[4],
               'size', ARGV[5], 'openid', ARGV[6], 'stored_ms', ARGV[7],
               'msg', ARGV[9])
    local what = { 'path', ARGV[3], 'content_type', ARGV[4], 'size',
                   ARGV[5] }
    local bytes = tonumber(ARGV[5])
    if (ARGV[10] or '') ~= '' then
        redis.call('HSET', k, 'play_path', ARGV[10], 'play_size', ARGV[11],
                   'play_ms', ARGV[12])
        bytes = bytes + tonumber(ARGV[11])
        for _, v in ipairs({ 'play_type', 'audio/wav', 'play_size',
                             ARGV[11], 'play_ms', ARGV[12] }) do
            what[#what + 1] = v
        end
    end
    redis.call('HDEL', k, 'retry_ms')
    redis.call('PERSIST', k)
    redis.call('ZADD', P .. 'media_files', ARGV[7], ARGV[2])
    redis.call('INCRBY', P .. 'media_bytes', bytes)
    emit('media_stored', ARGV[6], ARGV[2], what, ARGV[7], ARGV[9], ARGV[8])
    return 1
elseif op == 'failed' then
    if ARGV[2] ~= '' then
        local k = mkey(ARGV[2])
        if redis.call('HEXISTS', k, 'path') == 1 or
           redis.call('HEXISTS', k, 'error') == 1 then return 0 end
        redis.call('HSET', k, 'error', ARGV[8], 'errcode', ARGV[9],
                   'openid', ARGV[4], 'failed_ms', ARGV[5],
                   'msg', ARGV[7])
        redis.call('HDEL', k, 'retry_ms')
        redis.call('EXPIRE', k, FAILED_TTL)
    end
    emit('media_failed', ARGV[4], ARGV[3], { 'reason', ARGV[8],
         'errcode', ARGV[9], 'errmsg', ARGV[10] }, ARGV[5], ARGV[7],
         ARGV[6])
    return 1
elseif op == 'retry' then
    local k = mkey(ARGV[2])
    local n = redis.call('HINCRBY', k, 'attempts', 1)
    local d = 1000 * 2 ^ math.min(n, 11)
    if d > 1800000 then d = 1800000 end
    local min = tonumber(ARGV[4]) or 0
    if min > d then d = min end
    local due = string.format('%.0f', tonumber(ARGV[3]) + d)
    redis.call('HSET', k, 'retry_ms', due)
    redis.call('EXPIRE', k, FAILED_TTL)
    return { n, due }
elseif op == 'done' then
    redis.call('ZREM', P .. 'media_jobs', ARGV[2])
    return redis.call('DEL', P .. 'media_job:' .. ARGV[2])
elseif op == 'later' then
    return redis.call('ZADD', P .. 'media_jobs', 'XX', ARGV[3], ARGV[2])
elseif op == 'off' then
    -- NX: once done, a pass with fetching off writes nothing
    redis.call('SET', P .. 'media_off', '1', 'NX')
    local d = redis.pcall('XGROUP', 'DESTROY', P .. 'events', ARGV[2])
    if type(d) == 'number' then return d end
    return 0
elseif op == 'lookup' then
    local h = redis.call('HMGET', mkey(ARGV[2]), 'path', 'content_type',
                         'size', 'openid', 'error', 'play_path',
                         'play_size')
    if not h[1] and not h[5] then return { 'no_media' } end
    local a = ARGV[3]
    if a ~= '' and (not h[4] or
       (redis.call('SISMEMBER', P .. 'load:' .. a, h[4]) == 0 and
        redis.call('HGET', P .. 'sess:' .. h[4], 'agent') ~= a)) then
        return { 'not_yours' }
    end
    if not h[1] then return { 'media_failed' } end
    if ARGV[4] == 'wav' then
        if not h[6] then return { 'no_playable' } end
        return { 'ok', h[6], 'audio/wav', h[7] or '0' }
    end
    return { 'ok', h[1], h[2] or '', h[3] or '0' }
end
return redis.error_reply('unknown media op')
