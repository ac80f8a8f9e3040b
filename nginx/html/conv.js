// wxkf console — one conversation: its messages (history pages from
// PostgreSQL merged with the live feed, each shown once), the feed's
// effect on them, sending with a visible state (sending / queued / sent /
// failed), transfer and close.

import {api, ApiError, seg} from './api.js';
import {streamIdOf} from './feed.js';
import {t} from './i18n.js';
import {$, detailsNode, errInfo, fmtDur, fmtTime, h, num, setError,
        show, showError, tid, toast, toastError} from './dom.js';
import {S, agentName, info, saveInfo} from './state.js';
import {refreshSessions, refreshSessionsSoon, renderSessions, renderStatus}
    from './workspace.js';
import {mediaEvent, mediaNode} from './media.js';
import {windowState} from './limits.js';
import {pieces, plain, safeHref} from './emoji.js';
import {alertAgent} from './notify.js';
import {displayName, learnName} from './profile.js';
import {wrapUp} from './wrapup.js';
import {openColleagues} from './colleagues.js';
import {handoverOf, renderHandover, resetNote, withNote} from './handover.js';
import {autoMark, isAutomatic, wireTyping} from './routing.js';
import {PICK_ACCEPT, sendFile} from './send_media.js';
import {onForcedPresence} from './board.js';
import {wireEmojiPicker} from './emoji_picker.js';
import {fillWhisperEl, takenOverNotice, whisperMsg} from './supervise.js';

const HISTORY_PAGE = 30;

// A message: {key, dir: 'in'|'out', ts, msgtype, content, mediaId, payload,
// state, err, mid, by, localUrl, seq, el}
function conv(openid) {
    let c = S.convs.get(openid);
    if (!c) {
        c = {openid, msgs: [], byKey: new Map(), next: null,
             historyLoaded: false, loading: false, atStart: false};
        S.convs.set(openid, c);
    }
    return c;
}

function parseJson(s) {
    if (s && typeof s === 'object')
        return s;
    try {
        const v = JSON.parse(s);
        return v && typeof v === 'object' ? v : {};
    } catch (e) {
        return {};
    }
}

function inKey(msgid, createTime, kind) {
    if (msgid)
        return 'in:' + msgid;
    return 'in:ev:' + (createTime || '') + ':' + (kind || '');
}

const STATE_RANK = {sending: 0, queued: 1, sent: 2, failed: 2};

// err: {msg, details} of a failure (details: what the server said).
function setMsgState(m, state, err) {
    if (!(state in STATE_RANK))
        return;
    if (m.state && STATE_RANK[state] < STATE_RANK[m.state])
        return;
    m.state = state;
    if (state === 'failed')
        m.err = err && err.msg ? err : (m.err || null);
    else
        m.err = null;
    if (m.el)
        fillMsgEl(m);
}

function bindMid(m, mid) {
    if (!mid)
        return m;
    const other = S.midIndex.get(mid);
    if (other && other !== m) {
        // The feed saw it before the send answered: keep one.
        if (STATE_RANK[other.state] > STATE_RANK[m.state || 'sending'])
            setMsgState(m, other.state, other.err);
        if (!m.ts && other.ts)
            m.ts = other.ts;
        removeMsg(other);
    }
    m.mid = mid;
    S.midIndex.set(mid, m);
    const d = S.pendingDelivery.get(mid);
    if (d) {
        S.pendingDelivery.delete(mid);
        applyDelivery(m, d);
    }
    return m;
}

function removeMsg(m) {
    const c = S.convs.get(m.openid);
    if (!c)
        return;
    c.msgs = c.msgs.filter(x => x !== m);
    if (c.byKey.get(m.key) === m)
        c.byKey.delete(m.key);
    if (m.el)
        m.el.remove();
}

function insertMsg(c, m) {
    m.openid = c.openid;
    m.seq = ++S.localSeq;
    c.byKey.set(m.key, m);
    // keep c.msgs sorted by time (ties: arrival)
    let i = c.msgs.length;
    while (i > 0 && (c.msgs[i - 1].ts || 0) > (m.ts || 0))
        i--;
    c.msgs.splice(i, 0, m);
    return m;
}

// A whisper, once (the feed and the history both bring it).
function insertWhisper(c, m) {
    return c.byKey.has(m.key) ? null : insertMsg(c, m);
}

function findOutByTs(c, ts) {
    return c.msgs.find(x => x.dir === 'out' && x.ts === ts);
}

function addInbound(c, fields) {
    const old = c.byKey.get(fields.key);
    if (old)
        return null;
    return insertMsg(c, Object.assign({dir: 'in'}, fields));
}

function msgFromFeed(e) {
    const p = parseJson(e.payload);
    return {
        key: inKey(e.msgid || p.MsgId, e.create_time || p.CreateTime,
                   e.event || p.Event || e.msgtype),
        ts: num(e.recv_ms) || num(e.ts_ms) || (num(e.create_time) * 1000) ||
            Date.now(),
        msgtype: e.msgtype || p.MsgType || '',
        content: firstOf(p.Content, p.Recognition, p.Title, p.Label),
        mediaId: p.MediaId || e.media_id || '',
        payload: p,
        event: e.event || p.Event || '',
        session: e.session || '',
    };
}

function firstOf(...vals) {
    for (const v of vals) {
        if (typeof v === 'string' && v !== '')
            return v;
    }
    return '';
}

// An outbound message (msg_out entry, or a history row): merge with what we
// have (same message id, a local send with the same content, or the same
// time), else add.
function upsertOutbound(c, o) {
    let m = o.mid ? S.midIndex.get(o.mid) : null;
    if (!m && o.ts)
        m = findOutByTs(c, o.ts);
    if (!m && o.mid) {
        m = c.msgs.find(x => x.dir === 'out' && x.local && !x.mid &&
                        x.msgtype === o.msgtype &&
                        (x.content || '') === (o.content || '') &&
                        (x.mediaId || '') === (o.mediaId || ''));
    }
    if (m) {
        if (o.ts && m.ts !== o.ts && (!m.ts || m.local)) {
            // the server's time, so history pages merge with it
            m.ts = o.ts;
            c.msgs.sort((x, y) => ((x.ts || 0) - (y.ts || 0)) || (x.seq - y.seq));
        }
        if (o.by && !m.by)
            m.by = o.by;
        if (o.marker && !m.marker)
            m.marker = o.marker;
        if (o.session && !m.session)
            m.session = o.session;      // a local send: its session now known
        if (o.mid && m.mid !== o.mid)
            bindMid(m, o.mid);
        if (o.state)
            setMsgState(m, o.state, o.err);
        if (m.el)
            fillMsgEl(m);
        return m;
    }
    m = insertMsg(c, Object.assign({dir: 'out', key: o.mid ? 'out:' + o.mid :
                                    'out:' + o.ts + ':' + (++S.localSeq)},
                                   o, {state: undefined}));
    setMsgState(m, o.state || 'sending', o.err);
    if (o.mid)
        bindMid(m, o.mid);
    return m;
}

// A send WeChat refused: its errcode in words (45015 and 45047 are the
// window and the budget), WeChat's own text as the details.
export function wechatErr(errcode, errmsg) {
    const n = Number(errcode);
    const details = [errcode && n !== 0 ? 'errcode ' + errcode : '',
                     errmsg || ''].filter(Boolean).join(' · ');
    if (n === 45015)
        return {msg: t('err.code.outside_48h_window'), details};
    if (n === 45047)
        return {msg: t('err.code.quota_exhausted'), details};
    if (errcode && n !== 0)
        return {msg: t('err.code.wechat_refused', {errcode}), details};
    // no errcode: wxkf jobs gave up reaching WeChat
    return {msg: t('err.code.wechat_unreachable'), details};
}

function applyDelivery(m, d) {
    setMsgState(m, d.status, d.status === 'failed' ?
        wechatErr(d.errcode, d.errmsg) : null);
}

// --- the feed ----------------------------------------------------------------

export function onFeedEvents(events) {
    if (!S.me)
        return;
    let sessionsChanged = false;
    const touched = new Set();
    const alerts = new Map();       // openid -> {kind, text}: live ones only
    for (const e of events) {
        if (!e || typeof e !== 'object')
            continue;
        const openid = typeof e.openid === 'string' ? e.openid : '';
        switch (e.type) {
        case 'msg_in': {
            if (!openid)
                break;
            const c = conv(openid);
            const m = addInbound(c, msgFromFeed(e));
            if (!m)
                break;
            const i = info(openid);
            i.at = Date.now();
            if (!i.since)
                i.since = m.ts;
            if (!viewing(openid))
                i.unread = (i.unread || 0) + 1;
            if (m.ts >= Date.now() - 60000) {           // not a replay
                const a = alerts.get(openid);
                alerts.set(openid, {
                    kind: a ? a.kind : S.sessions.has(openid) ? 'message' : 'user',
                    text: previewText(m)});
            }
            if (!S.sessions.has(openid))
                sessionsChanged = true;
            touched.add(openid);
            break;
        }
        case 'msg_out': {
            if (!openid)
                break;
            const c = conv(openid);
            const p = parseJson(e.payload);
            const mid = msgIdOf(e);
            // A msg_out carries no stream id, so one seen before (pushed
            // again after a reconnect) must not reset the counters.
            const known = !!(mid && S.midIndex.has(mid));
            upsertOutbound(c, {
                mid, ts: num(e.ts_ms) || 0, msgtype: e.msgtype || '',
                content: firstOf(p.content, p.title),
                mediaId: p.media_id || '', by: e.by || e.agent || '',
                marker: e.marker || '', payload: p, state: 'sending',
                session: e.session || ''});
            if (known)
                break;
            if (isAutomatic(e)) {       // the user still waits for an answer
                touched.add(openid);
                break;
            }
            const i = info(openid);
            i.at = Date.now();
            i.since = 0;
            i.unread = 0;
            i.out = true;
            touched.add(openid);
            break;
        }
        case 'delivery': {
            const mid = msgIdOf(e);
            const m = mid && S.midIndex.get(mid);
            if (m)
                applyDelivery(m, e);
            else if (mid) {
                // its msg_out has not come yet (or never will: an old one)
                S.pendingDelivery.set(mid, e);
                if (S.pendingDelivery.size > 500)
                    S.pendingDelivery.delete(S.pendingDelivery.keys().next().value);
            }
            break;
        }
        case 'media_stored':
        case 'media_failed':
            mediaEvent(e);
            break;
        case 'presence':
            if (e.status && (!e.agent || e.agent === S.me.account)) {
                S.me.status = e.status;
                // a supervisor forced it: say who (board.js)
                onForcedPresence(e);
                renderStatus();
            }
            sessionsChanged = true;
            break;
        case 'assign':
        case 'reassign':
        case 'transfer':
            // shown at once; GET /api/v1/me/sessions (soon) has the rest
            if (openid && e.agent === S.me.account && !S.sessions.has(openid) &&
                !(num(e.ts_ms) < Date.now() - 60000)) {     // not a replay
                S.sessions.set(openid, {openid, state: 'active', agent: e.agent,
                                        group: e.group || '', id: e.session || '',
                                        opened_ms: num(e.ts_ms) || Date.now(),
                                        assigned_ms: num(e.ts_ms) || Date.now(),
                                        reason: e.reason || '',
                                        ...handoverOf(e),
                                        provisional: true, added: Date.now()});
                alerts.set(openid, {kind: 'user', text: ''});
                touched.add(openid);
            } else if (openid && e.agent && e.agent !== S.me.account &&
                       S.sessions.delete(openid)) {
                touched.add(openid);
            }
            sessionsChanged = true;
            break;
        case 'whisper':         // staff's internal note (supervise.js)
            if (openid && insertWhisper(conv(openid), whisperMsg(
                    parseJson(e.payload), num(e.ts_ms) || Date.now(),
                    e.session || '')))
                touched.add(openid);
            break;
        case 'release':
            if (e.reason === 'takeover' && !(num(e.ts_ms) < Date.now() - 60000))
                takenOverNotice(e);
            if (openid || e.agent)
                sessionsChanged = true;
            break;
        case 'close':
            if (openid) {
                const i = info(openid);
                i.since = 0;
                i.unread = 0;
                if (S.sessions.delete(openid))
                    touched.add(openid);
            }
            sessionsChanged = true;
            break;
        default:
            // queue, first_reply_late, ...
            if (openid || e.agent)
                sessionsChanged = true;
            break;
        }
    }
    saveInfo();
    for (const [openid, a] of alerts)
        alertAgent(a.kind, openid, a.text, openConv);
    if (sessionsChanged)
        refreshSessionsSoon();
    if (touched.size)
        renderSessions();
    if (S.active && touched.has(S.active))
        renderMessages(true);
}

// msg_out and delivery entries name their message with "id" (m_...), or
// with msg_id if the server keeps "id" for the stream id.
function msgIdOf(e) {
    if (typeof e.msg_id === 'string' && e.msg_id)
        return e.msg_id;
    if (typeof e.id === 'string' && !streamIdOf({id: e.id}))
        return e.id;
    return '';
}

function viewing(openid) {
    return S.active === openid && !document.hidden &&
        (!isNarrow() || document.body.classList.contains('conv-open'));
}

function isNarrow() {
    return window.matchMedia('(max-width: 760px)').matches;
}

// --- the conversation pane ----------------------------------------------------

export function openConv(openid) {
    S.active = openid;
    const i = info(openid);
    i.unread = 0;
    saveInfo();
    document.body.classList.add('conv-open');
    show(tid('conv-none'), false);
    show($('.conv-body'), true);
    setNotice('');
    tid('composer-input').value = '';
    enableComposer(true);
    renderConvHead();
    renderSessions();
    const c = conv(openid);
    renderMessages(false);
    scrollToBottom();
    if (!c.historyLoaded)
        loadHistory(c, true);
    learnName(openid);
    if (!isNarrow())
        tid('composer-input').focus();
}

export function closeConvPane() {
    S.active = null;
    document.body.classList.remove('conv-open');
    show(tid('conv-none'), true);
    show($('.conv-body'), false);
    tid('message-list').replaceChildren();
    renderSessions();
}

export function renderConvHead() {
    const openid = S.active;
    if (!openid)
        return;
    const s = S.sessions.get(openid);
    const name = displayName(openid);
    tid('conv-title').textContent = name ? name + ' · ' + openid : openid;
    const sub = [];
    if (s) {
        if (s.group && s.group !== '_all')
            sub.push(s.group);
        if (s.opened_ms)
            sub.push(fmtTime(num(s.opened_ms)));
    }
    tid('conv-sub').textContent = sub.join(' · ');
    const mine = !!s;
    tid('transfer-open').disabled = !mine;
    tid('close-session').disabled = !mine;
    renderHandover();
    if (!mine && !convNoticeSet) {
        setNotice(t('conv.gone'));
        enableComposer(false);
    } else if (mine && convNoticeSet) {
        // ours (again): a closed or transferred user who came back
        setNotice('');
        enableComposer(true);
    }
}

let convNoticeSet = '';
function setNotice(msg) {
    convNoticeSet = msg;
    setError(tid('conv-notice'), msg);
}

let composerOn = true;
function enableComposer(on) {
    composerOn = on;
    for (const el of tid('composer').querySelectorAll('textarea, button, input'))
        el.disabled = !on;
    renderLimits();
}

// The active conversation's window and send budget (limits.js), and why
// sending is blocked, before a send fails. Ticks every second.
export function limitsOf(openid) {
    const c = openid && S.convs.get(openid);
    return c ? windowState(c.msgs, Date.now(), c.reply) : null;
}

export function windowText(w) {
    return w.open ? t('limits.window', {t: fmtDur(w.endsAt - Date.now())}) :
        t('limits.closed');
}

export function budgetText(w) {
    return t('limits.left', {n: w.left, quota: w.quota});
}

// Every second: the open conversation's and the session list's
// countdowns.
export function tickLimits() {
    if (S.active)
        renderLimits();
    for (const el of document.querySelectorAll('[data-testid="session-limits"]')) {
        const w = limitsOf(el.dataset.openid);
        if (w) {
            el.textContent = windowText(w) + ' · ' + budgetText(w);
            el.dataset.blocked = w.blocked;
        }
    }
}

export function renderLimits() {
    const w = limitsOf(S.active);
    const box = tid('conv-limits');
    show(box, !!w);
    if (w) {
        tid('conv-window', box).textContent = windowText(w);
        tid('conv-budget', box).textContent = budgetText(w);
        box.dataset.blocked = w.blocked;
    }
    const blocked = w && composerOn ? w.blocked : '';
    const why = !blocked ? '' : blocked === 'budget' ?
        t('limits.why.budget', {quota: w.quota}) :
        t(w.kind === 'evt' ? 'limits.why.window_evt' : 'limits.why.window');
    setError(tid('composer-why'), why);
    const send = tid('composer-send');
    send.disabled = !composerOn || !!blocked;
    send.title = why;
    tid('composer-image').disabled = send.disabled;
    tid('composer').dataset.blocked = blocked || '';
}

function nearBottom(el) {
    return el.scrollHeight - el.scrollTop - el.clientHeight < 80;
}

function scrollToBottom() {
    const box = tid('messages');
    box.scrollTop = box.scrollHeight;
}

function renderMessages(keepBottom) {
    const c = S.active && S.convs.get(S.active);
    const ol = tid('message-list');
    if (!c) {
        ol.replaceChildren();
        return;
    }
    const box = tid('messages');
    const stick = keepBottom && nearBottom(box);
    // where one session ends and the next begins: between two messages
    // whose sessions are known and differ
    const els = [];
    let last = '', lastAt = 0;
    for (const m of c.msgs) {
        if (!m.el)
            m.el = makeMsgEl(m);
        if (m.session && last && m.session !== last)
            els.push(sessionBreak());
        if (m.session) {
            last = m.session;
            lastAt = els.length + 1;
        }
        els.push(m.el);
    }
    // the current session has no message of its own known yet (reopened by
    // the agent; its sends not confirmed): the break after the last
    // session's messages
    const cur = S.sessions.get(c.openid);
    if (cur && cur.id && last && String(cur.id) !== last)
        els.splice(lastAt, 0, sessionBreak());
    ol.replaceChildren(...els);
    show(tid('load-older'), !c.atStart && c.historyLoaded);
    show(tid('history-start'), c.atStart && c.historyLoaded);
    if (stick)
        scrollToBottom();
    renderLimits();
}

function sessionBreak() {
    return h('li', {class: 'session-break', role: 'separator',
                    dataset: {testid: 'session-break'}},
             h('span', {}, t('wrapup.break')));
}

function makeMsgEl(m) {
    const li = h('li', {class: 'msg ' + m.dir,
                        dataset: {testid: 'message', dir: m.dir}});
    fillMsgEl(m, li);
    return li;
}

export function previewText(m) {
    if (m.dir === 'whisper')
        return t('super.whisper.tag') + ': ' + plain(m.content);
    if (m.msgtype === 'text')
        return plain(m.content);
    return typeLabel(m);
}

// A message's text as nodes: WeChat's faces as emoji (the code kept as
// the title), http(s) links that open in a new tab without an opener or
// a referrer; everything else text nodes.
function richText(text) {
    const span = h('span', {class: 'text', dataset: {testid: 'message-text'}});
    for (const p of pieces(text)) {
        if (p.kind === 'emoji') {
            span.append(h('span', {class: 'emoji', role: 'img', title: p.code,
                                   'aria-label': p.name,
                                   dataset: {testid: 'emoji', code: p.code}},
                          p.text));
        } else if (p.kind === 'link') {
            span.append(h('a', {href: p.href, target: '_blank',
                                rel: 'noopener noreferrer',
                                dataset: {testid: 'message-link'}}, p.text));
        } else {
            span.append(p.text);
        }
    }
    return span;
}

export function typeLabel(m) {
    switch (m.msgtype) {
    case 'image': return t('msg.image');
    case 'voice': return t('msg.voice');
    case 'video': case 'shortvideo': return t('msg.video');
    case 'location':
        return t('msg.location', {label: m.payload && m.payload.Label || ''});
    case 'link':
        return t('msg.link', {title: m.content || ''});
    case 'event':
        return t('msg.event', {event: m.event || ''});
    default:
        return m.content || t('msg.other', {type: m.msgtype || '?'});
    }
}

export function fillMsgEl(m, li = m.el) {
    if (!li)
        return;
    if (m.dir === 'whisper')
        return fillWhisperEl(m, li);
    li.dataset.key = m.key;
    if (m.mid)
        li.dataset.msgid = m.mid;
    if (m.state)
        li.dataset.state = m.state;
    const bubble = h('div', {class: 'bubble', dataset: {testid: 'message-body'}});
    if (m.msgtype === 'text') {
        bubble.append(richText(m.content));
    } else if (['image', 'voice', 'video', 'shortvideo'].includes(m.msgtype)) {
        bubble.append(mediaNode(m));
        if (m.msgtype === 'voice' && m.content) {
            bubble.append(h('div', {class: 'recog'},
                            t('msg.recognition', {text: m.content})));
        }
    } else if (m.msgtype === 'link' && safeHref(m.payload && m.payload.Url)) {
        bubble.append(h('a', {href: safeHref(m.payload.Url), target: '_blank',
                              rel: 'noopener noreferrer', class: 'text',
                              dataset: {testid: 'message-link'}}, typeLabel(m)));
    } else {
        bubble.append(h('span', {class: 'text', dataset: {testid: 'message-text'}},
                        typeLabel(m)));
    }
    const meta = h('div', {class: 'meta'},
                   h('time', {}, fmtTime(m.ts)));
    if (m.dir === 'out') {
        const auto = autoMark(m);
        if (auto)
            meta.append(auto);
        else if (m.by && S.me && m.by !== S.me.account)
            meta.append(h('span', {class: 'by', title: m.by}, agentName(m.by)));
        meta.append(h('span', {class: 'state ' + (m.state || ''),
                               dataset: {testid: 'message-state',
                                         state: m.state || ''}},
                      t('msg.state.' + (m.state || 'sending'))));
        if (m.state === 'failed' && m.err) {
            meta.append(h('span', {class: 'err', dataset: {testid: 'message-error'}},
                          m.err.msg));
            if (m.err.details)
                meta.append(detailsNode(m.err.details));
        }
        if (m.state === 'failed' && resendable(m))
            meta.append(retryButtons(m));
    }
    li.replaceChildren(bubble, meta);
}

// --- history ---------------------------------------------------------------

function msgFromHistory(r) {
    const p = (r.payload && typeof r.payload === 'object') ? r.payload : {};
    const ts = Date.parse(r.created_at);
    const session = r.session_id ? String(r.session_id) : '';
    if (r.direction === 'whisper')
        return whisperMsg(p, ts, session);
    if (r.direction === 'in') {
        return {key: inKey(p.MsgId, p.CreateTime, p.Event || r.msgtype), ts,
                msgtype: r.msgtype || p.MsgType || '', content: r.content || '',
                mediaId: r.media_id || p.MediaId || '', payload: p,
                event: p.Event || '', session};
    }
    // 'sending' until its delivery is archived; the feed may know better
    const state = r.status || 'sent';
    return {ts, msgtype: r.msgtype || '', content: r.content || '',
            mediaId: r.media_id || '', payload: p, by: p.by || r.agent || '',
            marker: p.marker || '', state,
            err: state === 'failed' ? wechatErr(r.errcode, '') : null,
            session};
}

// A message of a history page, read-only (wrapup.js's past sessions,
// supervise.js's live view): on its side, as the live timeline has it
// (addInbound and upsertOutbound give it there).
export function historyMsgEl(r) {
    const m = msgFromHistory(r);
    if (!m.dir)
        m.dir = r.direction === 'in' ? 'in' : 'out';
    return makeMsgEl(m);
}

async function loadHistory(c, first) {
    if (c.loading || (c.atStart && c.historyLoaded))
        return;
    c.loading = true;
    const box = tid('messages');
    const before = box.scrollHeight - box.scrollTop;
    tid('load-older').textContent = t('conv.loading');
    try {
        const r = await api.get('/api/v1/users/' + seg(c.openid) + '/messages', {
            query: {limit: HISTORY_PAGE, before: first ? '' : c.next}});
        mergeRows(c, Array.isArray(r && r.messages) ? r.messages : []);
        c.next = r && r.next || null;
        c.atStart = !c.next;
        c.historyLoaded = true;
        if (first) {
            deriveWaiting(c);
            // The archiver writes within a second or so: what arrived just
            // before this session became ours (a transfer) may not have
            // been in that page.
            setTimeout(() => mergeNewest(c), 2500);
        }
    } catch (e) {
        c.historyLoaded = true;
        if (!(e instanceof ApiError && e.status === 403))
            toastError(e);
    } finally {
        c.loading = false;
        tid('load-older').textContent = t('conv.older');
    }
    if (S.active === c.openid) {
        renderMessages(false);
        if (first)
            scrollToBottom();
        else
            box.scrollTop = box.scrollHeight - before;
    }
}

// A conversation not opened yet whose messages the feed never brought
// (handed over, taken from the queue: they came before it was ours):
// its first page, so that the list's preview shows the last message.
export async function preloadConv(openid) {
    const c = conv(openid);
    if (c.historyLoaded || c.loading)
        return;
    await loadHistory(c, true);
    renderSessions();
}

async function mergeNewest(c) {
    if (!S.me || S.convs.get(c.openid) !== c)
        return;
    let r;
    try {
        r = await api.get('/api/v1/users/' + seg(c.openid) + '/messages', {
            query: {limit: HISTORY_PAGE}});
    } catch (e) {
        return;         // not ours any more, or a hiccup: nothing to add
    }
    const before = c.msgs.length;
    mergeRows(c, Array.isArray(r && r.messages) ? r.messages : []);
    if (c.msgs.length !== before && S.active === c.openid)
        renderMessages(true);
}

function mergeRows(c, rows) {
    for (const row of rows) {
        const m = msgFromHistory(row);
        if (row.direction === 'whisper')
            insertWhisper(c, m);
        else if (row.direction === 'in')
            addInbound(c, m);
        else
            upsertOutbound(c, m);
    }
}

// From the newest page: a user whose last messages are unanswered waits
// since the first of them.
function deriveWaiting(c) {
    const i = info(c.openid);
    if (i.since || !c.msgs.length)
        return;
    let since = 0;
    for (let k = c.msgs.length - 1; k >= 0; k--) {
        const m = c.msgs[k];
        if (m.dir === 'out')
            break;
        since = m.ts;
    }
    if (since) {
        i.since = since;
        i.at = Date.now();
        saveInfo();
        renderSessions();
    }
}

// --- sending -----------------------------------------------------------------

export async function sendMessage(openid, body, local) {
    const c = conv(openid);
    const m = insertMsg(c, Object.assign({dir: 'out', key: 'local:' + (++S.localSeq),
                                          ts: Date.now(), local: true,
                                          by: S.me.account}, local,
                                         {sendBody: body}));
    setMsgState(m, 'sending');
    renderMessages(false);
    scrollToBottom();
    try {
        const r = await api.post('/api/v1/sessions/' + seg(openid) + '/messages',
                                 body);
        if (r && r.id)
            bindMid(m, r.id);
        if (r && Number.isFinite(r.left))
            c.reply = {left: r.left, at: Date.now()};
        setMsgState(m, r && r.status === 'queued' ? 'queued' : 'sent');
    } catch (e) {
        setMsgState(m, 'failed', errInfo(e));
        if (e instanceof ApiError && e.code === 'quota_exhausted')
            c.reply = {left: 0, at: Date.now()};
        if (e instanceof ApiError && e.status === 403)
            refreshSessionsSoon();
    }
    if (S.active === openid)
        renderLimits();
    const i = info(openid);
    if (m.state !== 'failed') {
        i.since = 0;
        i.unread = 0;
        i.out = true;
        i.at = Date.now();
        saveInfo();
        renderSessions();
    }
    return m;
}

// A failed text or media can be sent again as it was (media: once at
// WeChat), and a failed text put back in the composer to be edited.
function resendable(m) {
    return m.local && (m.msgtype === 'text' ? !!m.content : !!m.sendBody);
}

function retryButtons(m) {
    const box = h('span', {class: 'retry'},
        h('button', {type: 'button', class: 'link',
                     dataset: {testid: 'message-retry'},
                     onclick: () => retryMsg(m)}, t('msg.retry')));
    if (m.msgtype === 'text') {
        box.append(h('button', {type: 'button', class: 'link',
                                dataset: {testid: 'message-edit'},
                                onclick: () => editMsg(m)}, t('msg.edit')));
    }
    return box;
}

function retryMsg(m) {
    const openid = m.openid;
    removeMsg(m);
    if (m.msgtype === 'text')
        sendMessage(openid, {msgtype: 'text', text: {content: m.content}},
                    {msgtype: 'text', content: m.content});
    else
        sendMessage(openid, m.sendBody, {msgtype: m.msgtype, mediaId: m.mediaId,
                                         localUrl: m.localUrl,
                                         localType: m.localType});
}

function editMsg(m) {
    removeMsg(m);
    const input = tid('composer-input');
    input.value = m.content + (input.value ? '\n' + input.value : '');
    input.focus();
}

async function sendText() {
    const openid = S.active;
    const input = tid('composer-input');
    const text = input.value;
    if (!openid || !text.trim() || tid('composer-send').disabled)
        return;
    input.value = '';
    await sendMessage(openid, {msgtype: 'text', text: {content: text}},
                      {msgtype: 'text', content: text});
}

// A media message refused before it was sent (its kind, its size, the
// upload): shown failed, with why.
export function failLocal(openid, local, err) {
    const m = insertMsg(conv(openid), Object.assign(
        {dir: 'out', key: 'local:' + (++S.localSeq), ts: Date.now(),
         local: true, by: S.me.account}, local));
    setMsgState(m, 'failed', err);
    if (S.active === openid)
        renderMessages(false);
}

// --- transfer and close ---------------------------------------------------------

function openTransfer() {
    const dlg = tid('transfer-dialog');
    setError(tid('transfer-error', dlg), '');
    tid('transfer-target', dlg).value = '';
    resetNote(dlg);
    dlg.showModal();
    openColleagues(dlg);            // the list to pick from (colleagues.js)
}

async function submitTransfer(ev) {
    ev.preventDefault();
    const dlg = tid('transfer-dialog');
    const openid = S.active;
    const kind = dlg.querySelector('input[name="kind"]:checked').value;
    const target = tid('transfer-target', dlg).value.trim();
    if (!openid || !target)
        return;
    const btn = tid('transfer-submit', dlg);
    btn.disabled = true;
    try {
        const r = await api.post('/api/v1/sessions/' + seg(openid) + '/transfer',
                                 withNote(dlg, {[kind]: target}));
        dlg.close();
        const said = transferResult(r && r.result);
        toast(said);
        await refreshSessions();
        if (!S.sessions.has(openid) && S.active === openid) {
            setNotice(said);
            enableComposer(false);
        }
    } catch (e) {
        showError(tid('transfer-error', dlg), e);
    } finally {
        btn.disabled = false;
    }
}

// The API's transfer result ("assigned:<account>", "queued:<position>")
// in words.
export function transferResult(result) {
    const s = String(result || '');
    const i = s.indexOf(':');
    const kind = i < 0 ? s : s.slice(0, i), arg = i < 0 ? '' : s.slice(i + 1);
    if (kind === 'assigned' && arg)
        return t('transfer.assigned', {who: agentName(arg)});
    if (kind === 'queued')
        return Number(arg) > 0 ? t('transfer.queued.pos', {n: Number(arg)})
                               : t('transfer.queued');
    return t('transfer.done');
}

async function closeSession() {
    const openid = S.active;
    if (!openid || !await wrapUp(openid))       // asks for the summary
        return;
    try {
        const i = info(openid);
        i.since = 0;
        i.unread = 0;
        toast(t('conv.closed'));
        await refreshSessions();
        if (S.active === openid) {
            setNotice(t('conv.closed'));
            enableComposer(false);
        }
    } catch (e) {
        toastError(e);
    }
}


// --- wiring ------------------------------------------------------------------

export function relabelConv() {
    for (const c of S.convs.values()) {
        for (const m of c.msgs) {
            if (m.el)
                fillMsgEl(m);
        }
    }
}

export function revokeConvUrls() {
    for (const c of S.convs.values()) {
        for (const m of c.msgs) {
            if (m.localUrl)
                URL.revokeObjectURL(m.localUrl);
        }
    }
}

export function wireConv() {
    wireTyping();
    tid('composer').addEventListener('submit', (ev) => {
        ev.preventDefault();
        sendText();
    });
    tid('composer-input').addEventListener('keydown', (ev) => {
        // Enter sends, except while an input method is composing (pinyin)
        if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing &&
            ev.keyCode !== 229) {
            ev.preventDefault();
            sendText();
        }
    });
    tid('composer-image').accept = PICK_ACCEPT;
    wireEmojiPicker();
    tid('composer-image').addEventListener('change', (ev) => {
        const f = ev.target.files && ev.target.files[0];
        ev.target.value = '';
        if (f)
            sendFile(f);
    });
    tid('messages').addEventListener('scroll', () => {
        const c = S.active && S.convs.get(S.active);
        if (c && c.historyLoaded && !c.atStart && !c.loading &&
            tid('messages').scrollTop < 40)
            loadHistory(c, false);
    });
    tid('load-older').addEventListener('click', () => {
        const c = S.active && S.convs.get(S.active);
        if (c)
            loadHistory(c, false);
    });
    tid('back').addEventListener('click', closeConvPane);
    tid('transfer-open').addEventListener('click', openTransfer);
    tid('transfer-form').addEventListener('submit', submitTransfer);
    tid('transfer-cancel').addEventListener('click', () =>
        tid('transfer-dialog').close());
    tid('close-session').addEventListener('click', closeSession);
}
