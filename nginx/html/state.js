// wxkf console — the signed-in state, shared by the views. reset() on
// sign out drops all of it.

export const S = {};

export function reset() {
    for (const id of S.timers || [])
        clearInterval(id);
    clearTimeout(S.refreshTimer);
    Object.assign(S, {
        me: null,             // GET /api/v1/me
        feed: null,           // the agent's Feed (feed.js)
        timers: [],           // intervals to clear on sign out
        refreshTimer: null,
        sessions: new Map(),  // openid -> session (GET /api/v1/me/sessions)
        queue: null,          // {total, groups: [{group, length}]} (the same)
        convs: new Map(),     // openid -> conversation (conv.js)
        active: null,         // openid shown in the conversation pane
        info: {},             // openid -> {unread, since, at, out}: persisted
        midIndex: new Map(),  // message id (m_...) -> message
        pendingDelivery: new Map(),  // message id -> delivery seen first
        media: new Map(),     // media_id -> {state, url, type, why, tries}
        adminRows: new Map(), // account -> <tr>
        agents: new Map(),    // account -> agent (admin.js; colleagues.js)
        localSeq: 0,
    });
}
reset();

// Per-user counters of the agent's workspace (unread, waiting since),
// kept in sessionStorage with the feed cursor so a reload resumes.
function infoKey() {
    return 'wxkf.info.' + (S.me && S.me.account);
}

export function loadInfo() {
    try {
        const j = JSON.parse(sessionStorage.getItem(infoKey()) || '{}');
        S.info = (j && typeof j === 'object') ? j : {};
    } catch (e) {
        S.info = {};
    }
}

let saveTimer = null;
export function saveInfoNow() {
    clearTimeout(saveTimer);
    if (!S.me || S.me.role !== 'agent')
        return;
    try {
        sessionStorage.setItem(infoKey(), JSON.stringify(S.info));
    } catch (e) {
        /* not persisted: a reload starts the counters again */
    }
}

export function saveInfo() {
    clearTimeout(saveTimer);
    saveTimer = setTimeout(saveInfoNow, 200);
}

export function info(openid) {
    let i = S.info[openid];
    if (!i) {
        i = {unread: 0, since: 0, at: 0};
        S.info[openid] = i;
    }
    return i;
}

// An agent by nickname when the console knows it (itself; an admin has
// the agent list, an agent its colleagues'), else by account.
export function agentName(account) {
    if (S.me && S.me.account === account && S.me.nick)
        return S.me.nick;
    const a = S.agents && S.agents.get(account);
    return a && a.nick ? a.nick : account;
}

// setInterval, cleared on sign out.
export function every(ms, fn) {
    const id = setInterval(fn, ms);
    S.timers.push(id);
    return id;
}
