-- ingest: the whole callback in ONE round trip — dedupe, session lookup,
-- routing, the msg_in event, and the decision remembered for retries.
-- KEYS: 1 the account prefix P, 2 the dedupe key (P dedupe:<key>),
--       3 the signed query's key (P sig:<query>; absent: none).
-- ARGV: 1 op, the action: record | route | kf_create | kf_close |
--       kf_switch, 2 dedupe ttl s, 3 now ms, 4 openid, 5 requested group
--       ('' = none), 6 cfg, 7 base decision (none|welcome),
--       8 kf account (kf_create/kf_close: KfAccount; kf_switch: From),
--       9 kf account (kf_switch: To), 10 window: msg (a user message:
--       48 h to answer) | evt (click/subscribe/scan: 1 min) | '',
--       11 message hash (with KEYS[3]), 12 its ttl s, 13.. msg_in
--       field/value pairs.
-- Returns the routing decision {dup (0|1), kind, value, reply time (unix
-- s)}, or {2} when the signed query came before with another message
-- (nothing is recorded). kind value: none '' | welcome '' | assigned <a>
-- | sticky <a> | queued <position> | offline <position> | full <queue
-- length>. The dedupe key keeps it as "<kind>[:<value>]|<time>" (also
-- the msg_in event's decision field, without the time), so a retry's
-- reply is identical.
local ops = { record = 1, route = 1, kf_create = 1, kf_close = 1,
              kf_switch = 1 }
if not ops[ARGV[1]] then return redis.error_reply('ingest: unknown op') end

-- The URL signature covers no body: one signed query is bound to the
-- first message it brings. A retry brings the same message; another one
-- under the same query is a forgery (anyone who saw the query could
-- send it).
local sigkey, mhash = KEYS[3], ARGV[11]
if sigkey then
    local bound = redis.call('GET', sigkey)
    if not bound then
        redis.call('SET', sigkey, mhash, 'EX', tonumber(ARGV[12]))
    elseif bound ~= mhash then
        return { 2 }
    end
end

-- The reply for a stored "<kind>[:<value>]|<time>".
local function decided(dup, stored)
    local kind, value, t = string.match(stored, '^([^:|]*):?([^|]*)|(%d+)$')
    return { dup, kind or '', value or '', tonumber(t) or 0 }
end

local dkey = KEYS[2]
local prev = redis.call('GET', dkey)
if prev then return decided(1, prev) end

local action, now, o = ARGV[1], tonumber(ARGV[3]), ARGV[4]
local cfg = parse_cfg(ARGV[6])

-- The customer-service window this opens (see outbound.lua), before the
-- routing: [routing] queue_order = window places a waiting user by the
-- window's end. An event never shortens a message's longer window.
local wk, wkey = ARGV[10], P .. 'win:' .. o
local w = redis.call('HMGET', wkey, 'kind', 'last_ms')
local msg_window_open = w[1] == 'msg' and
                        now - (tonumber(w[2]) or 0) <= WIN_MSG_MS
if wk == 'msg' then count_day(now, cfg, 'in', 1) end
if wk == 'msg' or (wk == 'evt' and not msg_window_open) then
    redis.call('HSET', wkey, 'last_ms', now, 'kind', wk, 'sent', 0)
    redis.call('PEXPIRE', wkey, 49 * 3600 * 1000)
elseif wk == 'evt' then
    redis.call('HSET', wkey, 'last_evt_ms', now)
end

local decision, agent = ARGV[7], ''
defer_greetings()

local function known(a)
    return a ~= '' and redis.call('SISMEMBER', P .. 'agents', a) == 1
end

local function place(r, v)
    if r == 'assigned' then agent = v end
    decision = r .. ':' .. v
end

if action == 'route' then
    local s = session(o)
    if s and s.state == 'active' then
        local st = redis.call('HGET', akey(s.agent), 'status')
        if st == 'online' or st == 'paused' then
            redis.call('HSET', skey(o), 'last_ms', now)
            redis.call('ZADD', P .. 'deadline', now + cfg.idle, o)
            agent = s.agent
            decision = 'sticky:' .. s.agent
        else
            detach(o, s, 'agent_offline', now)
            place(route(o, s.group or '_all', now, cfg, s.agent,
                        'agent_offline', true))
        end
    elseif s and s.state == 'waiting' then
        redis.call('HSET', skey(o), 'last_ms', now)
        if cfg.qo == 1 and s.front ~= '1' then
            -- the message moved the window's end, and the place with it
            redis.call('ZADD', qkey(s.group or '_all'), 'XX',
                       window_end(o, now), o)
        end
        decision = (anyone_online() and 'queued:' or 'offline:') ..
                   position(o, s.group or '_all')
    else
        local g = ARGV[5]
        if g == '' or redis.call('SCARD', P .. 'group:' .. g) == 0 then
            g = '_all'
        end
        place(route(o, g, now, cfg, nil, 'new_session', false))
    end
    -- when the user last asked (the board's "waiting for an answer";
    -- outbound.lua's reserve keeps reply_ms)
    if redis.call('EXISTS', skey(o)) == 1 then
        redis.call('HSET', skey(o), 'user_ms', now)
    end
elseif action == 'kf_create' and known(ARGV[8]) then
    -- WeChat's own tool: an agent accepted the user (wechat_kf mode).
    local s, a = session(o), ARGV[8]
    if not (s and s.state == 'active' and s.agent == a) then
        if s then detach(o, s, 'kf_create_session', now) end
        local c = { acct = a, load = load_of(a), cap = capacity(a, cfg) }
        assign(o, (s and s.group) or '_all', c, now, cfg,
               explain((s and s.group) or '_all', 'wechat_kf', { c }, a,
                       'kf_create_session'), 'kf_create_session')
        if s and s.state == 'active' then drain_for(s.agent, now, cfg) end
    end
    agent = a
elseif action == 'kf_close' then
    close(o, 'agent', now, cfg, ARGV[8], nil, 'wechat')
elseif action == 'kf_switch' and known(ARGV[9]) then
    local s, to = session(o), ARGV[9]
    if s then detach(o, s, s.agent ~= to and 'transfer' or nil, now) end
    local c = { acct = to, load = load_of(to), cap = capacity(to, cfg) }
    assign(o, (s and s.group) or '_all', c, now, cfg,
           explain((s and s.group) or '_all', 'wechat_kf', { c }, to,
                   'kf_switch_session'), 'kf_switch_session', 'transfer')
    if s and s.state == 'active' and s.agent ~= to then
        drain_for(s.agent, now, cfg)
    end
    agent = to
end

local fields = {}
for i = 13, #ARGV do fields[#fields + 1] = ARGV[i] end
fields[#fields + 1] = 'decision'
fields[#fields + 1] = decision
fields[#fields + 1] = 'agent'
fields[#fields + 1] = agent
fields[#fields + 1] = 'session'
fields[#fields + 1] = redis.call('HGET', skey(o), 'id') or ''
emit(fields)
inbox(agent, fields)
send_greetings(cfg)
local stored = decision .. '|' .. math.floor(now / 1000)
redis.call('SET', dkey, stored, 'EX', tonumber(ARGV[2]))
return decided(0, stored)
