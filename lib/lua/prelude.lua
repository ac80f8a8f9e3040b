-- prelude: the routing state and its helpers, put in front of each routing
-- script (the Makefile's LUA_ROUTING) at build time; see README.md.
-- KEYS[1] is the account prefix "wxkf:{APPID}:" — every key a script
-- touches starts with it, so all of them live in one Redis Cluster slot.
-- ARGV[1] is the op. Times are milliseconds passed in by the caller
-- (ARGV), so a script is deterministic and testable.
local P = KEYS[1]

-- cfg: "key=value;key=value" from the worker's configuration.
local function parse_cfg(s)
    local c = { policy = 'round_robin', cap = 5, idle = 1800000, frt = 0,
                queue = 600000, gp = {} }
    for k, v in string.gmatch(s or '', '([%w_]+)=([^;]*)') do
        if k == 'gp' then
            for g, p in string.gmatch(v, '([^:,]+):([%w_]+)') do c.gp[g] = p end
        elseif k == 'policy' then c.policy = v
        elseif k == 'gt' then c.gt = v         -- [texts] greeting, in hex
        else c[k] = tonumber(v) or 0 end
    end
    return c
end

local function emit(fields)
    redis.call('XADD', P .. 'events', '*', unpack(fields))
end

-- An agent's own feed (GET /api/v1/me/events): what concerns them, in
-- order, the newest 10,000 kept.
local function inbox(a, fields)
    if a and a ~= '' then
        redis.call('XADD', P .. 'inbox:' .. a, 'MAXLEN', '~', 10000, '*',
                   unpack(fields))
    end
end

-- Today's live figures (GET /api/v1/stats): P day:<n> {in, out} and
-- P frt:<n> (first-response times, ms, by session id), where n counts
-- days in the configured UTC offset (cfg.tz, ms); kept three days.
local function day_of(now, cfg)
    return math.floor((now + (cfg.tz or 0)) / 86400000)
end

local function count_day(now, cfg, field, by)
    local k = P .. 'day:' .. day_of(now, cfg)
    -- the expiry is set when a field is first counted, not every time
    if redis.call('HINCRBY', k, field, by) == by then
        redis.call('PEXPIRE', k, 3 * 86400000)
    end
end

local function akey(a) return P .. 'agent:' .. a end
local function skey(o) return P .. 'sess:' .. o end

local function capacity(a, cfg)
    local c = tonumber(redis.call('HGET', akey(a), 'capacity') or '')
    if not c or c < 1 then return cfg.cap end
    return c
end

local function load_of(a) return redis.call('SCARD', P .. 'load:' .. a) end

local function groups_of(a)
    local out = { '_all' }
    local s = redis.call('HGET', akey(a), 'groups') or ''
    for g in string.gmatch(s, '[^,]+') do out[#out + 1] = g end
    return out
end

-- Online members of group g (sorted, so every worker sees the same order)
-- that have a free slot and are not `exclude`.
local function candidates(g, cfg, exclude)
    local members
    if g == '_all' then
        members = redis.call('SMEMBERS', P .. 'online')
    else
        members = redis.call('SINTER', P .. 'group:' .. g, P .. 'online')
    end
    table.sort(members)
    local out = {}
    for _, a in ipairs(members) do
        if a ~= exclude then
            local cap, l = capacity(a, cfg), load_of(a)
            if l < cap then out[#out + 1] = { acct = a, load = l, cap = cap } end
        end
    end
    return out
end

local function pick_round_robin(g, cands)
    local n = redis.call('INCR', P .. 'rr:' .. g)
    return cands[((n - 1) % #cands) + 1]
end

-- nginx's smooth weighted round robin over the eligible agents.
local function pick_weighted(g, cands)
    local key, total, best = P .. 'swrr:' .. g, 0, nil
    for _, c in ipairs(cands) do
        local w = tonumber(redis.call('HGET', akey(c.acct), 'weight') or '') or 1
        c.weight = w
        c.cw = (tonumber(redis.call('HGET', key, c.acct) or '') or 0) + w
        total = total + w
        if not best or c.cw > best.cw then best = c end
    end
    for _, c in ipairs(cands) do
        redis.call('HSET', key, c.acct, c == best and c.cw - total or c.cw)
    end
    return best
end

-- Lowest load/capacity (compared as cross products, no floats); ties go
-- to the agent whose last assignment is oldest (idle longest).
local function pick_least_busy(cands)
    local best
    for _, c in ipairs(cands) do
        c.last = tonumber(redis.call('HGET', akey(c.acct), 'last_assign_ms')
                          or '') or 0
        if not best then
            best = c
        else
            local l, r = c.load * best.cap, best.load * c.cap
            if l < r or (l == r and c.last < best.last) then best = c end
        end
    end
    return best
end

local function policy_for(g, cfg)
    return cfg.gp[g] or cfg.policy
end

local function pick(g, cands, cfg)
    local p = policy_for(g, cfg)
    if p == 'weighted' then return pick_weighted(g, cands), p end
    if p == 'least_busy' then return pick_least_busy(cands), p end
    return pick_round_robin(g, cands), p
end

local function explain(g, policy, cands, chosen, reason)
    local list = {}
    for i, c in ipairs(cands) do
        list[i] = { agent = c.acct, load = c.load, capacity = c.cap }
    end
    local s = cjson.encode({ group = g, policy = policy, candidates = list,
                             chosen = chosen, reason = reason })
    -- Redis's cjson writes an empty Lua table as an object; it is a list.
    if #list == 0 then
        s = string.gsub(s, '"candidates":{}', '"candidates":[]')
    end
    return s
end

local function session_id(o)
    local id = redis.call('HGET', skey(o), 'id')
    if id then return id end
    id = tostring(redis.call('INCR', P .. 'sessid'))
    redis.call('HSET', skey(o), 'id', id)
    return id
end

-- WeChat's customer-service window (docs/wechat-protocol.md §8), kept by
-- ingest in P win:<openid> {kind, last_ms, sent}: a user's message opens
-- 48 h with 5 sends, an event (a click, a scan, a subscribe) 1 min with 3.
local WIN_MSG_MS, WIN_EVT_MS, QUOTA_MSG, QUOTA_EVT =
    48 * 3600 * 1000, 60000, 5, 3

-- The sends left in o's window now, or nil and the refusal as a script's
-- answer ({'err', <code>}): the window closed, its sends spent.
local function window_left(o, now)
    local w = redis.call('HMGET', P .. 'win:' .. o, 'last_ms', 'kind', 'sent')
    local last, sent = tonumber(w[1]), tonumber(w[3]) or 0
    local span, quota = WIN_MSG_MS, QUOTA_MSG
    if w[2] and w[2] ~= 'msg' then span, quota = WIN_EVT_MS, QUOTA_EVT end
    if not last or now - last > span then
        return nil, { 'err', 'outside_48h_window' }
    end
    if sent >= quota then return nil, { 'err', 'quota_exhausted' } end
    return quota - sent
end

-- Reserves one send in o's window, for an agent's message (outbound.lua)
-- or one of wxkf's own texts alike. Returns the sends left after it, or
-- nil and the refusal (window_left's).
local function reserve_send(o, now)
    local left, refusal = window_left(o, now)
    if not left then return nil, refusal end
    redis.call('HINCRBY', P .. 'win:' .. o, 'sent', 1)
    return left - 1
end

-- One of wxkf's own texts to o (the greeting, the leave-a-message text):
-- reserved in o's window like an agent's send, handed to `wxkf jobs`
-- (P outbox, delivered by lib/outbound.c), and shown as a msg_out event
-- (by 'wxkf', marker = which text) to the agent a (may be ''). Nothing
-- is sent when the window is closed or its sends are spent: false.
local function wxkf_text(o, a, sid, text, marker, now)
    if not reserve_send(o, now) then return false end
    local id = 'sys_' .. redis.call('INCR', P .. 'outbox_seq')
    local payload = cjson.encode({ content = text })
    redis.call('HSET', P .. 'outbox:' .. id, 'openid', o, 'agent', a,
               'msgtype', 'text', 'payload', payload, 'attempts', 0,
               'created_ms', now)
    redis.call('ZADD', P .. 'outbox', now, id)
    local ev = { 'type', 'msg_out', 'id', id, 'openid', o, 'agent', a,
                 'by', 'wxkf', 'msgtype', 'text', 'session', sid,
                 'payload', payload, 'marker', marker,
                 'ts_ms', tostring(now) }
    emit(ev)
    inbox(a, ev)
    return true
end

-- [texts] greeting (cfg.gt, hex; absent = off): sent once per session,
-- when it is first given to an agent (the session's `greeted` field).
-- Between defer_greetings() and send_greetings() (ingest: after the
-- user's message is recorded, so the greeting follows it) it waits.
local deferred
local function send_greeting(g, cfg)
    local text = string.gsub(cfg.gt, '%x%x', function(h)
        return string.char(tonumber(h, 16))
    end)
    wxkf_text(g.o, g.a, g.sid, text, 'greeting', g.now)
end

local function greet(o, a, sid, now, cfg)
    if not cfg.gt or cfg.gt == '' then return end
    if redis.call('HSETNX', skey(o), 'greeted', '1') == 0 then return end
    local g = { o = o, a = a, sid = sid, now = now }
    if deferred then deferred[#deferred + 1] = g else send_greeting(g, cfg) end
end

local function defer_greetings() deferred = {} end

local function send_greetings(cfg)
    local d = deferred or {}
    deferred = nil
    for _, g in ipairs(d) do send_greeting(g, cfg) end
end

-- The handover a session arrives with (docs/api.md, `handed` and
-- `from_queue`). A transfer puts on the session who passed it on
-- (handed_by: the agent, '' for an admin; handed_nick: its nickname
-- then), the note and the time (handed_ms), with `handing` while the
-- session is on its way (in a group's queue too); the assignment that
-- ends the way takes `handing` off and names the giver and the note in
-- its event (by, by_nick, note), as does the queue event of a transfer
-- to a group nobody in can take it. Any other assignment takes the
-- handover off. waited_ms: how long a user taken from the queue waited;
-- set by the dequeued assignment, taken off by any other.
local function hand_over(o, by, note, now)
    local nick = by ~= '' and redis.call('HGET', akey(by), 'nick') or ''
    redis.call('HSET', skey(o), 'handing', '1', 'handed_by', by,
               'handed_nick', nick or '', 'handed_note', note,
               'handed_ms', now)
end

-- The handover fields of o's session on its way, for an event, or nil.
local function handover_fields(o)
    local h = redis.call('HMGET', skey(o), 'handing', 'handed_by',
                         'handed_nick', 'handed_note')
    if not h[1] then return nil end
    return { 'by', h[2] or '', 'by_nick', h[3] or '', 'note', h[4] or '' }
end

local function append(list, more)
    for _, v in ipairs(more or {}) do list[#list + 1] = v end
    return list
end

-- Makes o's session active with agent c (greeted, the first time, with
-- [texts] greeting). The caller has removed o from any previous agent's
-- load and from the queue.
local function assign(o, g, c, now, cfg, why, reason, evtype)
    local a = c.acct
    local sid = session_id(o)
    local handed, waited = handover_fields(o), nil
    if handed then
        redis.call('HDEL', skey(o), 'handing')
    else
        redis.call('HDEL', skey(o), 'handed_by', 'handed_nick',
                   'handed_note', 'handed_ms')
    end
    if reason == 'dequeued' then
        local q = tonumber(redis.call('HGET', skey(o), 'queued_ms') or '')
        if q then waited = math.max(0, now - q) end
    end
    if waited then
        redis.call('HSET', skey(o), 'waited_ms', waited)
    else
        redis.call('HDEL', skey(o), 'waited_ms')
    end
    redis.call('SADD', P .. 'load:' .. a, o)
    redis.call('HSET', skey(o), 'state', 'active', 'agent', a, 'group', g,
               'assigned_ms', now, 'last_ms', now, 'answered', '0', 'why', why)
    redis.call('HSETNX', skey(o), 'opened_ms', now)
    redis.call('ZADD', P .. 'deadline', now + cfg.idle, o)
    if cfg.frt > 0 then
        redis.call('ZADD', P .. 'frt', now + cfg.frt, o)
    else
        redis.call('ZREM', P .. 'frt', o)
    end
    redis.call('HSET', akey(a), 'last_assign_ms', now)
    redis.call('HINCRBY', P .. 'share', a, 1)
    local ev = { 'type', evtype or 'assign', 'openid', o, 'session', sid,
                 'agent', a, 'group', g, 'reason', reason, 'why', why,
                 'ts_ms', tostring(now) }
    append(ev, handed)
    if waited then append(ev, { 'waited_ms', tostring(waited) }) end
    emit(ev)
    inbox(a, ev)
    greet(o, a, sid, now, cfg)
    return a
end

-- Is any agent online or paused (i.e. holding a heartbeat)?
local function anyone_online()
    return redis.call('ZCARD', P .. 'hb') > 0
end

-- Group g's queue: a sorted set of openids scored by a sequence number
-- (the back is the highest score, the front the lowest), so a user's
-- position is a ZRANK, O(log n), whatever the length. A queue an earlier
-- release left as a LIST is converted, in its order, on first touch.
local function qkey(g)
    local q = P .. 'queue:' .. g
    if redis.call('TYPE', q).ok == 'list' then
        local old = redis.call('LRANGE', q, 0, -1)
        redis.call('DEL', q)
        for i = 1, #old, 1000 do       -- 1,000 per ZADD (Lua's unpack)
            local args = { 'NX' }
            for j = i, math.min(i + 999, #old) do
                args[#args + 1] = j
                args[#args + 1] = old[j]
            end
            redis.call('ZADD', q, unpack(args))
        end
    end
    return q
end

-- Every waiting user of every group, for the paged lists (read.lua's
-- page; docs/api.md GET /api/v1/queue): P waitq scored by queued_ms
-- (longest waiting first; a user put at the front of a queue, who was
-- being served, before everyone) and P waitlex (score 0, an
-- OpenID-prefix search by ZRANGEBYLEX). Kept with the queues: enqueue
-- adds, drain and detach remove.
local function waitlist_add(o, now, front)
    local score = now
    if front then
        local first = redis.call('ZRANGE', P .. 'waitq', 0, 0, 'WITHSCORES')
        if first[2] then score = math.min(now, tonumber(first[2]) - 1) end
    end
    redis.call('ZADD', P .. 'waitq', score, o)
    redis.call('ZADD', P .. 'waitlex', 0, o)
end

local function waitlist_rem(o)
    redis.call('ZREM', P .. 'waitq', o)
    redis.call('ZREM', P .. 'waitlex', o)
end

-- The score of the first (end 0) or last (end -1) in q, or nil.
local function qend_score(q, e)
    local r = redis.call('ZRANGE', q, e, e, 'WITHSCORES')
    return r[2] and tonumber(r[2])
end

-- When o's customer-service window closes (ms; see outbound.lua): 48 h
-- after a message, 1 min after an event; an unknown window counts as
-- opened now by a message.
local function window_end(o, now)
    local w = redis.call('HMGET', P .. 'win:' .. o, 'kind', 'last_ms')
    local last = tonumber(w[2]) or now
    if w[1] and w[1] ~= 'msg' then return last + WIN_EVT_MS end
    return last + WIN_MSG_MS
end

-- Puts o at the back (or, for a session that was already being served,
-- the front) of group g's queue. Returns the position (1 = next). With
-- [routing] queue_order = window (cfg.qo = 1) the back is not the end:
-- o is scored by the time its window closes, so the user who must be
-- answered first is seen first.
local function enqueue(o, g, now, cfg, reason, front)
    local q = qkey(g)
    local sid = session_id(o)
    redis.call('HSET', skey(o), 'state', 'waiting', 'agent', '', 'group', g,
               'queued_ms', now, 'last_ms', now, 'front', front and 1 or 0)
    redis.call('HSETNX', skey(o), 'opened_ms', now)
    local pos
    if front then
        redis.call('ZADD', q, (qend_score(q, 0) or 1) - 1, o)
        pos = 1
    elseif cfg.qo == 1 then
        redis.call('ZADD', q, window_end(o, now), o)
        pos = redis.call('ZRANK', q, o) + 1
    else
        redis.call('ZADD', q, (qend_score(q, -1) or 0) + 1, o)
        pos = redis.call('ZCARD', q)
    end
    redis.call('SADD', P .. 'queues', g)
    waitlist_add(o, now, front)
    if cfg.queue > 0 then
        redis.call('ZADD', P .. 'qdeadline', now + cfg.queue, o)
    end
    emit(append({ 'type', 'queue', 'openid', o, 'session', sid,
                  'group', g, 'reason', reason, 'position', tostring(pos),
                  'ts_ms', tostring(now) }, handover_fields(o)))
    return pos
end

-- Is g's queue at [routing] queue_max (cfg.qmax; 0 = no cap)? Then its
-- length, else nil.
local function queue_full(g, cfg)
    if (cfg.qmax or 0) <= 0 then return nil end
    local n = redis.call('ZCARD', qkey(g))
    if n >= cfg.qmax then return n end
    return nil
end

-- [routing] returning (cfg.ret ms, 0 = off): P last_agent:<o> {agent,
-- ms} names the agent whose session with o closed last, kept cfg.ret ms.
-- That agent, if it is online in group g with a free slot, as a
-- candidate; else nil.
local function returning_agent(o, g, cfg)
    if (cfg.ret or 0) <= 0 then return nil end
    local a = redis.call('HGET', P .. 'last_agent:' .. o, 'agent')
    if not a or redis.call('SISMEMBER', P .. 'online', a) == 0 then
        return nil
    end
    if g ~= '_all' and
       redis.call('SISMEMBER', P .. 'group:' .. g, a) == 0 then
        return nil
    end
    local cap, l = capacity(a, cfg), load_of(a)
    if l >= cap then return nil end
    return { acct = a, load = l, cap = cap }
end

-- Routes o (new, or moved off an agent) inside group g. Returns
-- 'assigned', agent  or  'queued'|'offline', position  or  'full', length
-- (a new session refused by the cap: no session is made). A new session
-- of a returning user goes back to its last agent when it can take it
-- (why: policy and reason `returning`).
local function route(o, g, now, cfg, exclude, reason, front)
    if reason == 'new_session' then
        local c = returning_agent(o, g, cfg)
        if c then
            return 'assigned', assign(o, g, c, now, cfg,
                                      explain(g, 'returning', { c }, c.acct,
                                              'returning'), 'returning')
        end
    end
    local cands = candidates(g, cfg, exclude)
    if #cands > 0 then
        local c, p = pick(g, cands, cfg)
        local why = explain(g, p, cands, c.acct, reason)
        return 'assigned', assign(o, g, c, now, cfg, why, reason,
                                  exclude and 'reassign' or 'assign')
    end
    -- the cap turns away new arrivals only: a user already being served
    -- (moved off an agent, transferred) is never dropped
    local full = reason == 'new_session' and queue_full(g, cfg)
    if full then return 'full', full end
    local online = anyone_online()
    local pos = enqueue(o, g, now, cfg,
                        online and 'all_busy' or 'no_agent_online', front)
    redis.call('HSET', skey(o), 'why',
               explain(g, policy_for(g, cfg), cands, '', online and
                       'all_busy' or 'no_agent_online'))
    return online and 'queued' or 'offline', pos
end

-- Position of o in its group's queue (1-based), or 0.
local function position(o, g)
    local r = redis.call('ZRANK', qkey(g), o)
    return r and r + 1 or 0
end

-- Assigns waiting users of group g in arrival order while someone in g has
-- a free slot. Bounded per call.
local function drain(g, now, cfg, limit)
    local q, n = qkey(g), 0
    while n < (limit or 100) do
        local o = redis.call('ZRANGE', q, 0, 0)[1]
        if not o then
            redis.call('SREM', P .. 'queues', g)
            break
        end
        local cands = candidates(g, cfg, nil)
        if #cands == 0 then break end
        redis.call('ZREM', q, o)
        redis.call('ZREM', P .. 'qdeadline', o)
        waitlist_rem(o)
        local c, p = pick(g, cands, cfg)
        assign(o, g, c, now, cfg, explain(g, p, cands, c.acct, 'dequeued'),
               'dequeued')
        n = n + 1
    end
    return n
end

local function drain_for(a, now, cfg)
    local n = 0
    for _, g in ipairs(groups_of(a)) do n = n + drain(g, now, cfg) end
    return n
end

-- Takes o off its agent (active) or out of its queue (waiting).
-- Takes o's session off its agent or queue. With a reason (the session
-- moves on rather than closing), the agent it leaves is told in its feed:
-- {type = release}, so a console drops the conversation at once; extra
-- (nil none) adds fields to it (a take-over: who took it).
local function detach(o, s, reason, now, extra)
    if s.state == 'active' and s.agent and s.agent ~= '' then
        redis.call('SREM', P .. 'load:' .. s.agent, o)
        if reason then
            inbox(s.agent, append({ 'type', 'release', 'openid', o,
                                    'session', s.id or '',
                                    'agent', s.agent, 'reason', reason,
                                    'ts_ms', tostring(now) }, extra))
        end
    elseif s.state == 'waiting' then
        redis.call('ZREM', qkey(s.group or '_all'), o)
        redis.call('ZREM', P .. 'qdeadline', o)
        waitlist_rem(o)
    end
    redis.call('ZREM', P .. 'deadline', o)
    redis.call('ZREM', P .. 'frt', o)
end

local function session(o)
    local h = redis.call('HGETALL', skey(o))
    if #h == 0 then return nil end
    local s = {}
    for i = 1, #h, 2 do s[h[i]] = h[i + 1] end
    return s
end

-- Closes o's session; frees the slot and lets the queue move.
-- wrap: the agent's wrap-up, a JSON object made by the C side (nil or
-- '' none), kept as the close event's payload. via: 'wechat' when WeChat
-- closed it (kf_close_session), kept as the event's `via` (nil none).
local function close(o, reason, now, cfg, by, wrap, via)
    local s = session(o)
    if not s then return false end
    detach(o, s)
    redis.call('DEL', skey(o))
    if (cfg.ret or 0) > 0 and s.state == 'active' and s.agent and
       s.agent ~= '' then
        -- the agent the user talked to, for [routing] returning
        local k = P .. 'last_agent:' .. o
        redis.call('HSET', k, 'agent', s.agent, 'ms', now)
        redis.call('PEXPIRE', k, cfg.ret)
    end
    local ev = { 'type', 'close', 'openid', o, 'session', s.id or '',
                 'agent', s.agent or '', 'group', s.group or '',
                 'reason', reason, 'by', by or '', 'ts_ms', tostring(now) }
    if wrap and wrap ~= '' then
        ev[#ev + 1] = 'payload'
        ev[#ev + 1] = wrap
    end
    if via then
        ev[#ev + 1] = 'via'
        ev[#ev + 1] = via
    end
    emit(ev)
    inbox(s.agent, ev)
    if s.state == 'active' and s.agent and s.agent ~= '' then
        drain_for(s.agent, now, cfg)
    end
    return true
end

-- Moves every active session of agent a elsewhere (a is going offline),
-- oldest assignment first; those nobody can take go to the FRONT of their
-- queue, still oldest first (they were being served already).
local function evacuate(a, now, cfg, reason)
    local list = {}
    for _, o in ipairs(redis.call('SMEMBERS', P .. 'load:' .. a)) do
        local s = session(o)
        detach(o, s or { state = 'active', agent = a }, reason, now)
        if s then
            list[#list + 1] = { o = o, s = s,
                                t = tonumber(s.assigned_ms or '') or 0 }
        end
    end
    table.sort(list, function(x, y)
        if x.t ~= y.t then return x.t < y.t end
        return x.o < y.o
    end)
    local waiting = {}
    for _, e in ipairs(list) do
        local g = e.s.group or '_all'
        local cands = candidates(g, cfg, a)
        if #cands > 0 then
            local c, p = pick(g, cands, cfg)
            assign(e.o, g, c, now, cfg, explain(g, p, cands, c.acct, reason),
                   reason, 'reassign')
        else
            waiting[#waiting + 1] = e
        end
    end
    for i = #waiting, 1, -1 do
        local e = waiting[i]
        route(e.o, e.s.group or '_all', now, cfg, a, reason, true)
    end
    return #list
end

local function set_status(a, status, now, cfg, reason)
    local prev = redis.call('HGET', akey(a), 'status') or 'offline'
    redis.call('HSET', akey(a), 'status', status, 'status_ms', now)
    -- who forced the last status (presence.lua's forced); any other
    -- change takes it off
    redis.call('HDEL', akey(a), 'status_by')
    local moved = 0
    if status == 'online' then
        redis.call('SADD', P .. 'online', a)
        redis.call('ZADD', P .. 'hb', now, a)
    elseif status == 'paused' then
        redis.call('SREM', P .. 'online', a)
        redis.call('ZADD', P .. 'hb', now, a)
    else
        redis.call('SREM', P .. 'online', a)
        redis.call('ZREM', P .. 'hb', a)
    end
    if prev ~= status then
        emit({ 'type', 'presence', 'agent', a, 'status', status,
               'prev', prev, 'reason', reason, 'ts_ms', tostring(now) })
    end
    if status == 'offline' then
        -- why the users move: the agent left (by request), or its
        -- heartbeat was lost
        moved = evacuate(a, now, cfg, reason == 'heartbeat_lost' and
                         'heartbeat_lost' or 'agent_offline')
    end
    if status == 'online' then moved = drain_for(a, now, cfg) end
    return prev, moved
end
