-- supervise: staff inside a user's live session (lib/supervise) — a
-- whisper (an internal note, never sent to WeChat) and a supervisor's
-- take-over.
-- KEYS[1] the account prefix P; no other KEYS.
-- ARGV: 1 op: whisper | takeover, 2 now ms, 3 cfg, 4 openid, then
--   whisper  5 by (the agent writing it, which must be the session's;
--            '' a supervisor or an admin), 6 its id ('w_' + hex: the
--            message id, archived as msgid), 7 payload
--            (JSON made by the caller: content and author)
--            -> {'ok', session id, the session's agent ('' waiting)};
--            the event {type = whisper} goes to the stream (archived with
--            the messages as direction 'w') and to the serving agent's
--            feed — never to WeChat.
--   takeover 5 the supervisor's agent, 6 the supervisor's login, 7 its
--            name -> {'ok', 'taken_over', agent, the agent it left}:
--            the active session moves to the supervisor's agent as a
--            transfer (reason takeover, the giver the supervisor's
--            agent); the agent it leaves gets {type = release, reason =
--            takeover, by_login, by_name} in its feed and its slot goes
--            to the queue. An offline supervisor's agent is set paused
--            first (it holds the session, takes no new users).
-- Refusals: no_session, not_yours, not_active, unknown_agent,
-- same_agent.
local op, now, cfg, o = ARGV[1], tonumber(ARGV[2]), parse_cfg(ARGV[3]),
                        ARGV[4]

local s = session(o)
if not s then return { 'err', 'no_session' } end

if op == 'whisper' then
    local by, id, payload = ARGV[5], ARGV[6], ARGV[7]
    if by ~= '' and (s.state ~= 'active' or s.agent ~= by) then
        return { 'err', 'not_yours' }
    end
    local a = s.state == 'active' and s.agent or ''
    local sid = s.id or ''
    local ev = { 'type', 'whisper', 'openid', o, 'session', sid,
                 'agent', a, 'msgtype', 'text', 'id', id,
                 'payload', payload, 'ts_ms', tostring(now) }
    emit(ev)
    inbox(a, ev)
    audit(o)
    return { 'ok', sid, a }
elseif op == 'takeover' then
    local target, login, name = ARGV[5], ARGV[6], ARGV[7]
    if s.state ~= 'active' then return { 'err', 'not_active' } end
    if redis.call('SISMEMBER', P .. 'agents', target) == 0 then
        return { 'err', 'unknown_agent' }
    end
    if s.agent == target then return { 'err', 'same_agent' } end
    local st = redis.call('HGET', akey(target), 'status')
    if st ~= 'online' and st ~= 'paused' then
        set_status(target, 'paused', now, cfg, 'takeover')
    end
    detach(o, s, 'takeover', now, { 'by_login', login, 'by_name', name })
    hand_over(o, target, '', now)
    local g = s.group or '_all'
    local c = { acct = target, load = load_of(target),
                cap = capacity(target, cfg) }
    assign(o, g, c, now, cfg, explain(g, 'takeover', { c }, target,
                                      'takeover'), 'takeover', 'transfer')
    drain_for(s.agent, now, cfg)
    audit(o)
    return { 'ok', 'taken_over', target, s.agent }
end
return { 'err', 'bad_op' }
