// wxkf console — the agent workspace: presence (status, heartbeat), the
// feed, and the list of the agent's sessions with unread counts and how
// long each user has waited for an answer.

import {api, setNetworkHandler} from './api.js';
import {Feed} from './feed.js';
import {t} from './i18n.js';
import {fmtDur, h, num, show, tickWaiting, tid, toastError}
    from './dom.js';
import {S, every, info, loadInfo, saveInfo, saveInfoNow} from './state.js';
import {budgetText, limitsOf, onFeedEvents, openConv, preloadConv,
        previewText, renderConvHead, relabelConv, tickLimits, wireConv, windowText,
        revokeConvUrls} from './conv.js';
import {wireViewer} from './media.js';
import {askPermissionOnce, renderTitle} from './notify.js';
import {userLabel, wireProfile} from './profile.js';
import {relabelWrapup, wireWrapup} from './wrapup.js';
import {leaveCanned, relabelCanned, wireCanned} from './canned.js';
import {returningBadge} from './routing.js';
import {loadColleagues, wireColleagues} from './colleagues.js';
import {handoverBadge, renderHandover, wireHandover} from './handover.js';
import {showForced} from './board.js';

const HEARTBEAT_MS = 30000;
const SESSIONS_REFRESH_MS = 10000;
const PRELOAD_MAX = 10;         // conversations preloaded per refresh

export function enterAgent() {
    netDown = false;
    loadInfo();
    show(tid('agent-view'), true);
    show(tid('status-switch'), true);
    show(tid('conn-state'), true);
    renderStatus();
    showForced(S.me.status, S.me.status_by || '');
    S.feed = new Feed({
        account: S.me.account,
        onEvents: onFeedEvents,
        onState: renderConn,
    });
    S.feed.start();
    refreshSessions();
    loadColleagues().catch(() => {});   // nicknames; accounts meanwhile
    every(HEARTBEAT_MS, heartbeat);
    every(SESSIONS_REFRESH_MS, refreshSessions);
    every(1000, () => {
        tickWaiting();
        tickLimits();
    });
}

export function renderStatus() {
    const st = S.me && S.me.status || 'offline';
    for (const b of tid('status-switch').querySelectorAll('button')) {
        const on = b.dataset.status === st;
        b.setAttribute('aria-pressed', on ? 'true' : 'false');
        b.classList.toggle('on', on);
    }
    tid('status-switch').dataset.status = st;
    renderLoad();
}

// How many users wait in the queue (GET /api/v1/me/sessions' queue): a
// paused or full agent sees that someone is waiting; per group on hover.
function renderQueueLen() {
    const el = tid('agent-queue');
    const q = S.queue;
    const n = q && Number.isFinite(q.total) ? q.total : 0;
    show(el, n > 0);
    el.textContent = t('sessions.queue', {n});
    el.title = q && Array.isArray(q.groups) ? q.groups
        .filter(g => g && g.length > 0)
        .map(g => t('queue.group', {group: g.group === '_all' ? t('group.all') : g.group,
                                    n: g.length}))
        .join('\n') : '';
}

function renderLoad() {
    const el = tid('agent-load');
    if (!S.me || S.me.role !== 'agent')
        return;
    const load = S.sessions.size;
    const cap = S.me.capacity;
    el.textContent = cap ? t('load', {load, capacity: cap}) : String(load);
}

// The indicator: the feed's state, unless the last request of any kind
// (a send, the heartbeat) could not reach the server: then 'down' until
// one gets through again.
let netDown = false;

function onNetwork(ok) {
    if (ok === !netDown)
        return;
    netDown = !ok;
    if (ok && S.feed)
        S.feed.kick();
    renderConn();
}

export function renderConn() {
    const el = tid('conn-state');
    const state = netDown ? 'down' : (S.feed && S.feed.state || 'connecting');
    el.dataset.state = state;
    el.textContent = t('conn.' + state);
}

async function setStatus(st) {
    try {
        const r = await api.post('/api/v1/me/status', {status: st});
        S.me.status = r && r.status || st;
        showForced(S.me.status, '');        // the agent's own choice now
        renderStatus();
        refreshSessions();
    } catch (e) {
        toastError(e);
    }
}

async function heartbeat() {
    if (!S.me || !['online', 'paused'].includes(S.me.status))
        return;
    try {
        const r = await api.post('/api/v1/me/heartbeat', {});
        if (r && r.status && r.status !== S.me.status) {
            S.me.status = r.status;
            renderStatus();
        }
    } catch (e) {
        /* the network: the indicator shows it (onNetwork) */
    }
}

export function refreshSessionsSoon() {
    clearTimeout(S.refreshTimer);
    S.refreshTimer = setTimeout(refreshSessions, 50);
}

let refreshSeq = 0, appliedSeq = 0;

export async function refreshSessions() {
    if (!S.me || S.me.role !== 'agent')
        return;
    const started = Date.now();
    const seq = ++refreshSeq;
    let r;
    try {
        r = await api.get('/api/v1/me/sessions');
    } catch (e) {
        toastError(e);
        return;
    }
    if (!S.me || seq < appliedSeq)
        return;             // signed out, or a later answer is already in
    appliedSeq = seq;
    if (r.status && r.status !== S.me.status) {
        S.me.status = r.status;
        renderStatus();
    }
    const list = Array.isArray(r.sessions) ? r.sessions : [];
    const next = new Map();
    for (const s of list) {
        if (s && typeof s.openid === 'string')
            next.set(s.openid, s);
    }
    // sessions the feed announced while this request was on its way
    for (const [openid, s] of S.sessions) {
        if (s.provisional && s.added >= started && !next.has(openid))
            next.set(openid, s);
    }
    S.sessions = next;
    S.queue = r.queue && typeof r.queue === 'object' ? r.queue : null;
    renderQueueLen();
    for (const [openid, s] of next) {
        const i = info(openid);
        // A user nobody answered yet waits since the session opened
        // (unless the feed told us better).
        if (!i.since && !i.out && s.answered === false)
            i.since = num(s.opened_ms) || num(s.assigned_ms) || 0;
    }
    for (const openid of Object.keys(S.info)) {
        if (!next.has(openid) && (S.info[openid].at || 0) < started)
            delete S.info[openid];
    }
    saveInfo();
    renderSessions();
    if (S.active)
        renderConvHead();
    // the previews of conversations that came with messages from before
    for (const s of [...next.values()].filter(x => x.handed || x.from_queue)
                                          .slice(0, PRELOAD_MAX))
        preloadConv(s.openid);
}

function sessionOrder(a, b) {
    const ia = S.info[a.openid] || {}, ib = S.info[b.openid] || {};
    const wa = ia.since || Infinity, wb = ib.since || Infinity;
    if (wa !== wb)
        return wa - wb;             // the longest waiting first
    return (num(b.last_ms) || 0) - (num(a.last_ms) || 0);
}

export function renderSessions() {
    const ul = tid('session-list');
    const items = [...S.sessions.values()].sort(sessionOrder);
    const els = items.map(s => {
        const i = S.info[s.openid] || {};
        const c = S.convs.get(s.openid);
        const last = c && c.msgs.length ? c.msgs[c.msgs.length - 1] : null;
        // WeChat's window, once the console knows the user's messages
        const w = limitsOf(s.openid);
        const li = h('li', {
            class: 'session-item' + (s.openid === S.active ? ' active' : ''),
            dataset: {testid: 'session-item', openid: s.openid},
            tabindex: '0', role: 'button',
            onclick: () => openConv(s.openid),
            onkeydown: (ev) => {
                if (ev.key === 'Enter' || ev.key === ' ') {
                    ev.preventDefault();
                    openConv(s.openid);
                }
            },
        },
        h('div', {class: 'row1'},
          h('span', {class: 'user', title: s.openid,
                     dataset: {testid: 'session-user'}}, userLabel(s.openid)),
          returningBadge(s),
          handoverBadge(s),
          h('span', {class: 'badge', dataset: {testid: 'session-unread'},
                     hidden: !i.unread,
                     'aria-label': t('sessions.unread', {n: i.unread || 0})},
            String(i.unread || 0))),
        h('div', {class: 'row2'},
          h('span', {class: 'preview', dataset: {testid: 'session-preview'}},
            last ? previewText(last) : (s.group && s.group !== '_all' ?
                                        s.group : '')),
          h('span', {class: 'wait', dataset: {testid: 'session-wait',
                                               since: String(i.since || '')},
                     hidden: !i.since},
            i.since ? t('sessions.waiting', {t: fmtDur(Date.now() - i.since)})
                    : '')),
        w ? h('div', {class: 'limits', dataset: {testid: 'session-limits',
                                                 openid: s.openid,
                                                 blocked: w.blocked}},
              windowText(w) + ' · ' + budgetText(w)) : null);
        return li;
    });
    ul.replaceChildren(...els);
    show(tid('sessions-empty'), items.length === 0);
    renderHandover();
    renderLoad();
    renderTitle();
}



// Sign out: the feed stops and the counters are saved for this account.
export function leaveAgent() {
    if (S.feed)
        S.feed.stop();
    saveInfoNow();
    revokeConvUrls();
    leaveCanned();
    tid('session-list').replaceChildren();
    tid('message-list').replaceChildren();
    document.body.classList.remove('conv-open');
    document.title = t('app.title');
}

export function relabelAgent() {
    renderStatus();
    renderQueueLen();
    renderConn();
    renderSessions();       // and the title
    relabelConv();
    renderConvHead();
    relabelCanned();
    relabelWrapup();
}

export function wireAgent() {
    for (const b of tid('status-switch').querySelectorAll('button'))
        b.addEventListener('click', () => setStatus(b.dataset.status));
    setNetworkHandler(onNetwork);
    wireViewer();
    // the first click after signing in may ask for notifications
    document.addEventListener('click', askPermissionOnce, true);
    window.addEventListener('online', () => onNetwork(true));
    window.addEventListener('offline', () => onNetwork(false));
    document.addEventListener('visibilitychange', () => {
        if (!document.hidden && S.active && S.me) {
            info(S.active).unread = 0;
            saveInfo();
            renderSessions();
        }
    });
    wireCanned();       // its keys before the composer's own
    wireConv();
    wireProfile();
    // a display name learnt or changed: the list and the header show it
    document.addEventListener('wxkf:profile', () => {
        renderSessions();
        renderConvHead();
    });
    wireWrapup();
    wireColleagues();
    wireHandover();
    // colleagues' nicknames known: shown instead of their accounts
    document.addEventListener('wxkf:colleagues', () => {
        renderSessions();
        renderConvHead();
        relabelConv();      // who wrote each message
    });
}
