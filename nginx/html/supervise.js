// wxkf console — supervisors (and admins) inside a conversation: any live
// session opened from the admin's session table, read as it happens
// (re-read every 2 s while open), a whisper (an internal note for staff,
// never sent to the user), and a supervisor's take-over, after which it
// answers here like an agent. Also the whisper's bubble and the
// "taken over" notice, which the agent's view (conv.js) uses.

import {api, ApiError, seg} from './api.js';
import {t} from './i18n.js';
import {errInfo, fmtTime, h, setError, show, shortId, tid, toast}
    from './dom.js';
import {S, agentName, every} from './state.js';
import {historyMsgEl} from './conv.js';

const WATCH_MS = 2000;
const WHISPER_MAX = 500;
const PAGE = 100;

let watching = null;        // {openid, session, timer, busy, sig}

// --- the whisper as a message (both views) ---------------------------------

// A whisper from a feed entry ({type: whisper}) or a history row
// (direction whisper) as conv.js keeps messages.
export function whisperMsg(payload, ts, session) {
    const p = payload && typeof payload === 'object' ? payload : {};
    return {key: 'w:' + (p.id || ts + ':' + (p.author || '')), dir: 'whisper',
            ts, msgtype: 'text', content: p.content || '', payload: p,
            author: p.author_name || (p.author_role === 'agent'
                                      ? agentName(p.author) : p.author) || '',
            session};
}

// The bubble of a whisper: marked as staff's own, never like a message
// sent to the user. In the agent's view of a session it serves, someone
// else's whisper can be answered with one (whisper-reply-dialog).
export function fillWhisperEl(m, li) {
    li.classList.add('whisper');
    li.dataset.testid = 'whisper';
    const meta = h('div', {class: 'meta'}, h('time', {}, fmtTime(m.ts)),
                   m.author ? h('span', {class: 'by'}, m.author) : '');
    if (S.me && S.me.role === 'agent' && S.sessions.has(m.openid) &&
        m.payload.author !== S.me.account)
        meta.append(h('button', {type: 'button', class: 'link',
                                 dataset: {testid: 'whisper-answer'},
                                 onclick: () => openWhisperReply(m.openid)},
                      t('super.whisper.reply')));
    li.replaceChildren(
        h('div', {class: 'bubble'},
          h('div', {class: 'whisper-tag'}, t('super.whisper.tag')),
          h('div', {class: 'text', dataset: {testid: 'whisper-text'}},
            m.content)),
        meta);
}

let replyTo = '';

function openWhisperReply(openid) {
    const d = tid('whisper-reply-dialog');
    replyTo = openid;
    tid('whisper-reply-text', d).value = '';
    setError(tid('whisper-reply-error', d), '');
    d.showModal();
}

// The agent's whisper arrives in its own feed (it serves the session).
async function sendWhisperReply(ev) {
    ev.preventDefault();
    const d = tid('whisper-reply-dialog');
    const text = tid('whisper-reply-text', d).value;
    if (!replyTo || !text.trim())
        return;
    const btn = tid('whisper-reply-send', d);
    btn.disabled = true;
    try {
        await api.post('/api/v1/sessions/' + seg(replyTo) + '/whisper', {text});
        d.close();
        toast(t('super.whisper.sent'));
    } catch (e) {
        const {msg, details} = errInfo(e);
        setError(tid('whisper-reply-error', d), msg, details);
    } finally {
        btn.disabled = false;
    }
}

// The agent's notice that a supervisor took one of its sessions.
export function takenOverNotice(e) {
    toast(t('super.taken', {who: e.by_name || e.by_login || '',
                            user: shortId(e.openid || '')}), 'info');
}

// --- the supervisor's conversation dialog ----------------------------------

function dlg() {
    return tid('supervise-dialog');
}

export function openSupervise(openid) {
    closeSupervise();
    watching = {openid, session: null, busy: false, sig: ''};
    const d = dlg();
    tid('supervise-title', d).textContent = t('super.title',
                                              {user: shortId(openid)});
    tid('supervise-title', d).title = openid;
    tid('supervise-messages', d).replaceChildren();
    tid('whisper-text', d).value = '';
    tid('supervise-reply-text', d).value = '';
    setError(tid('supervise-error', d), '');
    renderCount();
    renderState();
    if (!d.open)
        d.showModal();
    watching.timer = every(WATCH_MS, refresh);
    refresh();
}

export function closeSupervise() {
    if (watching && watching.timer)
        clearInterval(watching.timer);
    watching = null;
    const d = dlg();
    if (d && d.open)
        d.close();
}

function mine() {
    const s = watching && watching.session;
    return !!(s && S.me && S.me.account && s.state === 'active' &&
              s.agent === S.me.account);
}

function renderState() {
    const d = dlg(), s = watching && watching.session;
    let text = t('super.state.none');
    if (s && s.state === 'active')
        text = mine() ? t('super.state.mine')
                      : t('super.state.active', {agent: agentName(s.agent)});
    else if (s && s.state === 'waiting')
        text = t('super.state.waiting');
    tid('supervise-state', d).textContent = text;
    const canTake = !!(s && s.state === 'active' && !mine());
    show(tid('takeover-button', d), canTake);
    tid('takeover-button', d).disabled = !(S.me && S.me.account);
    show(tid('takeover-hint', d), canTake && !(S.me && S.me.account));
    show(tid('supervise-reply', d), mine());
    show(tid('whisper-form', d), !!(s && (s.state === 'active' ||
                                          s.state === 'waiting')));
}

// The session (GET /api/v1/sessions/{openid}) and its newest messages
// (including whispers), re-read while the dialog is open.
async function refresh() {
    const w = watching;
    if (!w || w.busy || !S.me)
        return;
    w.busy = true;
    try {
        const [s, m] = await Promise.allSettled([
            api.get('/api/v1/sessions/' + seg(w.openid)),
            api.get('/api/v1/users/' + seg(w.openid) + '/messages',
                    {query: {limit: PAGE}})]);
        if (watching !== w)
            return;
        if (s.status === 'fulfilled')
            w.session = s.value || null;
        else if (s.reason instanceof ApiError && s.reason.status === 404)
            w.session = null;
        renderState();
        if (m.status === 'fulfilled')
            renderMessages(Array.isArray(m.value && m.value.messages)
                           ? m.value.messages : []);
        else
            setError(tid('supervise-error', dlg()),
                     errInfo(m.reason).msg);
    } finally {
        w.busy = false;
    }
}

function renderMessages(rows) {
    const sig = rows.map(r => r.id + ':' + (r.status || '')).join(',');
    if (sig === watching.sig)
        return;
    watching.sig = sig;
    const box = tid('supervise-messages', dlg());
    const stick = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    // newest first from the API: oldest at the top here
    box.replaceChildren(...rows.slice().reverse().map(historyMsgEl));
    if (stick)
        box.scrollTop = box.scrollHeight;
}

function chars(s) {
    return Array.from(s).length;
}

function renderCount() {
    const d = dlg(), n = chars(tid('whisper-text', d).value);
    const el = tid('whisper-count', d);
    el.textContent = n + ' / ' + WHISPER_MAX;
    el.dataset.over = String(n > WHISPER_MAX);
}

// Posts body to the watched session's route (whisper, messages,
// takeover): the text field (textId, '' none) emptied when done, the
// button held meanwhile, a refusal shown in the dialog. 1 when it went
// through.
async function postFrom(btnId, textId, route, body) {
    const w = watching, d = dlg();
    const btn = tid(btnId, d);
    btn.disabled = true;
    try {
        await api.post('/api/v1/sessions/' + seg(w.openid) + '/' + route, body);
        if (textId)
            tid(textId, d).value = '';
        setError(tid('supervise-error', d), '');
        setTimeout(refresh, 1200);      // once the archiver has it
        return 1;
    } catch (e) {
        const {msg, details} = errInfo(e);
        setError(tid('supervise-error', d), msg, details);
        return 0;
    } finally {
        btn.disabled = false;
    }
}

async function submitWhisper(ev) {
    ev.preventDefault();
    const text = tid('whisper-text', dlg()).value;
    if (!watching || !text.trim())
        return;
    if (await postFrom('whisper-send', 'whisper-text', 'whisper', {text}))
        toast(t('super.whisper.sent'));
    renderCount();
}

async function takeOver() {
    const w = watching;
    if (!w || !await postFrom('takeover-button', '', 'takeover', {}))
        return;
    toast(t('super.takeover.done', {user: shortId(w.openid)}));
    startHeartbeat();
    await refresh();
}

async function submitReply(ev) {
    ev.preventDefault();
    const text = tid('supervise-reply-text', dlg()).value;
    if (!watching || !text.trim())
        return;
    await postFrom('supervise-reply-send', 'supervise-reply-text', 'messages',
                   {msgtype: 'text', text: {content: text}});
}

// A supervisor serving users as its agent keeps that agent's heartbeat
// (the take-over set it paused: it holds the session, gets no new users)
// while signed in, as an agent's workspace does.
const HEARTBEAT_MS = 30000;
let beating = false;

function startHeartbeat() {
    if (beating || !S.me || !S.me.account)
        return;
    beating = true;
    every(HEARTBEAT_MS, () => {
        if (S.me && S.me.account)
            api.post('/api/v1/me/heartbeat', {}).catch(() => {});
    });
}

// On entering the admin's view as a supervisor linked to an agent that
// serves users (a take-over before a reload).
export function enterSupervisor() {
    beating = false;
    if (S.me && S.me.account && (S.me.status === 'online' ||
                                 S.me.status === 'paused'))
        startHeartbeat();
}

export function relabelSupervise() {
    if (watching) {
        tid('supervise-title', dlg()).textContent =
            t('super.title', {user: shortId(watching.openid)});
        watching.sig = '';
        renderState();
        refresh();
    }
}

export function wireSupervise() {
    const r = tid('whisper-reply-dialog');
    tid('whisper-reply-form', r).addEventListener('submit', sendWhisperReply);
    tid('whisper-reply-cancel', r).addEventListener('click', () => r.close());
    const d = dlg();
    tid('whisper-form', d).addEventListener('submit', submitWhisper);
    tid('whisper-text', d).addEventListener('input', renderCount);
    tid('takeover-button', d).addEventListener('click', takeOver);
    tid('supervise-reply', d).addEventListener('submit', submitReply);
    tid('supervise-close', d).addEventListener('click', closeSupervise);
    d.addEventListener('close', () => {
        if (watching)
            closeSupervise();
    });
}
