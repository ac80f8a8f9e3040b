// wxkf console — reopening a past conversation: in a past session's
// transcript (wrapup.js) an agent sees 重新打开会话, enabled while the
// user's WeChat window is open (GET …/reopen says who has the user now
// and when the window closes; the time left counts down every second),
// disabled with the reason otherwise. Clicking starts a new session with
// the user (POST …/reopen) and opens it in the workspace, the old
// transcript above the session break (conv.js). Admins only read: the
// button is an agent's.

import {ApiError, api, seg} from './api.js';
import {t} from './i18n.js';
import {fmtDur, setError, show, showError, tid, toast} from './dom.js';
import {openConv} from './conv.js';
import {S, agentName} from './state.js';
import {refreshSessions, renderSessions} from './workspace.js';

// The transcript shown: {s: the past session, peek: GET's answer or null,
// at: Date.now() when it came, failed, busy, timer}.
let view = null;

function isAgent() {
    return !!(S.me && S.me.role === 'agent');
}

// What the button can do now: {ok, mine, why}.
function verdict(v) {
    const p = v.peek;
    if (!p)
        return {ok: false, why: t(v.failed ? 'reopen.unknown' : 'reopen.checking')};
    const live = p.live;
    if (live && live.state === 'active' && live.agent === S.me.account)
        return {ok: true, mine: true, why: t('reopen.mine')};
    if (live && live.state === 'active')
        return {ok: false, why: t('reopen.taken', {agent: agentName(live.agent)})};
    const w = p.window;
    const left = w ? w.ends_ms - p.now_ms - (Date.now() - v.at) : 0;
    if (!w || left <= 0)
        return {ok: false, why: t('reopen.closed')};
    if (w.left <= 0)
        return {ok: false, why: t('reopen.spent')};
    return {ok: true, why: t('reopen.open', {t: fmtDur(left), n: w.left})};
}

function render() {
    if (!view)
        return;
    const btn = tid('reopen-button');
    const st = tid('reopen-status');
    const d = verdict(view);
    btn.textContent = t(d.mine ? 'reopen.goto' : 'reopen.button');
    btn.disabled = !d.ok || view.busy;
    btn.title = d.ok ? '' : d.why;
    st.textContent = d.why;
    st.dataset.state = d.ok ? 'open' : 'closed';
}

async function peek() {
    const v = view;
    try {
        const r = await api.get('/api/v1/sessions/' + seg(v.s.openid) + '/reopen',
                                {query: {session: v.s.id}});
        v.peek = r && typeof r === 'object' ? r : null;
        v.failed = !v.peek;
        v.at = Date.now();
    } catch (e) {
        v.peek = null;
        v.failed = true;
    }
    render();
}

// Shows the reopen box for past session s (an agent's; hidden for an
// admin) and checks the window.
export function showReopen(s) {
    hideReopen();
    show(tid('reopen-box'), isAgent());
    if (!isAgent())
        return;
    view = {s, peek: null, at: Date.now(), failed: false, busy: false,
            timer: setInterval(render, 1000)};
    render();
    peek();
}

export function hideReopen() {
    if (view)
        clearInterval(view.timer);
    view = null;
    show(tid('reopen-box'), false);
}

function enterConv(openid) {
    tid('past-dialog').close();
    openConv(openid);
}

async function reopen() {
    const v = view;
    if (!v || v.busy)
        return;
    const d = verdict(v);
    const openid = v.s.openid;
    if (d.mine) {
        enterConv(openid);
        return;
    }
    v.busy = true;
    setError(tid('past-view-error'), '');
    render();
    try {
        const r = await api.post('/api/v1/sessions/' + seg(openid) + '/reopen',
                                 {session: v.s.id});
        if (!S.sessions.has(openid)) {
            // shown at once; GET /api/v1/me/sessions (below) has the rest
            const now = Date.now();
            S.sessions.set(openid, {openid, state: 'active', agent: S.me.account,
                                    group: '_all', id: String(r.session),
                                    opened_ms: now, assigned_ms: now,
                                    reason: 'reopen', provisional: true,
                                    added: now});
        }
        renderSessions();
        enterConv(openid);
        toast(t('reopen.done'));
        refreshSessions();
    } catch (e) {
        if (e instanceof ApiError && e.code === 'user_taken')
            setError(tid('past-view-error'),
                     t('reopen.taken', {agent: agentName(String(e.body && e.body.agent || ''))}),
                     e.message);
        else
            showError(tid('past-view-error'), e);
        if (view === v) {
            v.busy = false;
            peek();
        }
    }
}

export function relabelReopen() {
    render();
}

export function wireReopen() {
    tid('reopen-button').addEventListener('click', reopen);
    tid('past-dialog').addEventListener('close', hideReopen);
}
