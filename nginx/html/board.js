// wxkf console — the team lead's live board (supervisors and admins):
// the team (status, who forced it, load/capacity, each conversation with
// how long its user has waited for an answer; pause or set offline), the
// waiting queue and every session as paged, filtered tables with totals
// (GET /api/v1/queue, /api/v1/sessions: docs/api.md, "Team lead
// routes"; today's figures are the stats above it, admin.js), the waiting time and the 48-hour window's countdown of each
// waiting user, and moving a waiting user to an agent or a group. A
// queue row opens the user (profile.js: who the user is, their sessions
// and each one's transcript, read only); a session row or a conversation
// on an agent's card opens the live conversation (supervise.js: watch,
// whisper, take over). Refreshed every BOARD_REFRESH_MS while
// the page is shown. Also the agent's side: a status a supervisor forced
// (its feed's presence event, GET /api/v1/me's status_by) is shown.

import {api, seg} from './api.js';
import {t} from './i18n.js';
import {confirmDialog, fmtDur, h, setError, shortId, show, showError, tid,
        toast, toastError} from './dom.js';
import {S, agentName, every} from './state.js';
import {openProfile} from './profile.js';
import {openSupervise} from './supervise.js';

const BOARD_REFRESH_MS = 5000;
const PAGE = 50;

// The tables' filters and offsets; the last answers.
const view = {
    queue: {offset: 0, group: '', q: ''},
    sessions: {offset: 0, state: '', agent: '', group: '', q: ''},
    board: null, skew: 0,
};

const now = () => Date.now() + view.skew;       // the server's clock

function groupName(g) {
    return g === '_all' ? t('group.all') : (g || '');
}

function statusBadge(st) {
    return h('span', {class: 'status-badge ' + (st || 'offline'),
                      dataset: {testid: 'board-agent-status', status: st || ''}},
             t('status.' + (st || 'offline')));
}

// A ticking span: the time since `since` (ms), or until `until`.
function since(ms) {
    return h('span', {class: 'tick', dataset: {since: String(ms)}},
             fmtDur(now() - ms));
}

function countdown(ms) {
    const left = ms - now();
    return h('span', {class: 'tick' + (left < 3600000 ? ' urgent' : ''),
                      dataset: {until: String(ms), testid: 'board-window'}},
             left > 0 ? t('board.window_left', {t: fmtDur(left)}) :
                 t('board.window_closed'));
}

// Every timer of the board, once a second.
function tick() {
    const n = now();
    for (const el of document.querySelectorAll('.board .tick[data-since]'))
        el.textContent = fmtDur(n - Number(el.dataset.since));
    for (const el of document.querySelectorAll('.board .tick[data-until]')) {
        const left = Number(el.dataset.until) - n;
        el.textContent = left > 0 ? t('board.window_left', {t: fmtDur(left)})
            : t('board.window_closed');
        el.classList.toggle('urgent', left < 3600000);
    }
}

// --- the team ----------------------------------------------------------------

function renderTeam(b) {
    const agents = Array.isArray(b.agents) ? b.agents : [];
    const box = tid('board-team');
    if (!agents.length) {
        box.replaceChildren(h('p', {class: 'muted'}, t('agents.empty')));
        return;
    }
    box.replaceChildren(...agents.map(a => {
        const sessions = Array.isArray(a.sessions) ? a.sessions : [];
        const atWork = a.status === 'online' || a.status === 'paused';
        return h('div', {class: 'board-agent', dataset: {
            testid: 'board-agent', account: a.account, status: a.status}},
            h('div', {class: 'board-agent-head'},
              h('strong', {title: a.account}, a.nick || a.account),
              statusBadge(a.status),
              a.status_by ? h('span', {class: 'muted small', dataset: {
                  testid: 'board-agent-by'}},
                  t('board.set_by', {who: a.status_by})) : null,
              h('span', {class: 'board-load', dataset: {testid: 'board-agent-load'}},
                t('board.load', {n: a.load, cap: a.capacity}))),
            h('meter', {min: '0', max: String(a.capacity || 1),
                        value: String(Math.min(a.load, a.capacity || 1))}),
            sessions.length ? h('ul', {class: 'board-convs'}, ...sessions.map(s => {
                const waiting = s.user_ms > s.reply_ms;
                return h('li', {dataset: {testid: 'board-conv', openid: s.openid}},
                    h('button', {type: 'button', class: 'link',
                                 dataset: {testid: 'session-open'},
                                 title: s.openid, onclick: () => openSupervise(s.openid)},
                      shortId(s.openid)),
                    waiting ? h('span', {class: 'muted small'}, t('board.awaiting'), ' ',
                                since(s.user_ms))
                        : h('span', {class: 'muted small'}, t('board.answered')));
            })) : null,
            h('div', {class: 'buttons'},
              h('button', {type: 'button', disabled: a.status !== 'online',
                           dataset: {testid: 'board-pause'},
                           onclick: () => force(a, 'paused')}, t('board.pause')),
              h('button', {type: 'button', class: 'danger', disabled: !atWork,
                           dataset: {testid: 'board-offline'},
                           onclick: () => force(a, 'offline')}, t('board.offline'))));
    }));
}

async function force(a, status) {
    const name = a.nick || a.account;
    if (!await confirmDialog(t(status === 'paused' ? 'board.pause.confirm' :
                               'board.offline.confirm', {name})))
        return;
    try {
        const r = await api.post('/api/v1/agents/' + seg(a.account) + '/status',
                                 {status});
        toast(t('board.forced', {name, status: t('status.' + r.status),
                                 n: r.moved}));
        refreshBoard();
    } catch (e) {
        toastError(e);
    }
}

// --- the two tables ----------------------------------------------------------

function pager(name, r, reload) {
    const v = view[name];
    const from = r.total ? r.offset + 1 : 0;
    const to = r.offset + (r.items || []).length;
    return h('div', {class: 'pager'},
        h('span', {dataset: {testid: 'board-' + name + '-total'}},
          r.total ? t('board.range', {from, to, total: r.total}) :
              t('board.range0')),
        r.capped ? h('span', {class: 'muted small'}, t('board.capped')) : null,
        h('button', {type: 'button', disabled: r.offset === 0,
                     dataset: {testid: 'board-' + name + '-prev'},
                     onclick: () => { v.offset = Math.max(0, v.offset - PAGE); reload(); }},
          t('board.prev')),
        h('button', {type: 'button', disabled: r.next === null,
                     dataset: {testid: 'board-' + name + '-next'},
                     onclick: () => { v.offset = r.next; reload(); }},
          t('board.next')));
}

function query(name) {
    const v = view[name];
    const q = {limit: String(PAGE), offset: String(v.offset)};
    for (const k of ['state', 'agent', 'group', 'q'])
        if (v[k])
            q[k] = v[k];
    return q;
}

function cell(label, ...kids) {
    return h('td', {dataset: {label}}, ...kids);
}

function renderQueue(r) {
    const items = Array.isArray(r.items) ? r.items : [];
    const rows = items.map(s => h('tr', {
        class: 'clickable', dataset: {testid: 'board-queue-row', openid: s.openid},
        onclick: (ev) => { if (!ev.target.closest('button')) openProfile(s.openid); }},
        cell(t('board.col.position'), String(s.position || '')),
        cell(t('col.openid'), h('span', {title: s.openid}, shortId(s.openid))),
        cell(t('col.group'), groupName(s.group)),
        cell(t('board.col.waited'), s.queued_ms ? since(s.queued_ms) : ''),
        cell(t('board.col.window'), s.window_end_ms ? countdown(s.window_end_ms) :
             t('none')),
        cell(t('agents.actions'), h('button', {type: 'button',
            dataset: {testid: 'board-move'}, onclick: () => openMove(s)},
            t('board.move')))));
    tid('board-queue-table').tBodies[0].replaceChildren(...(rows.length ? rows :
        [h('tr', {}, h('td', {colspan: '6', class: 'muted',
                              dataset: {testid: 'board-queue-empty'}},
                       t('queue.empty')))]));
    tid('board-queue-pager').replaceChildren(pager('queue', r, loadQueue));
}

function renderSessions(r) {
    const items = Array.isArray(r.items) ? r.items : [];
    const rows = items.map(s => h('tr', {
        class: 'clickable', dataset: {testid: 'board-session-row', openid: s.openid},
        onclick: () => openSupervise(s.openid)},
        cell(t('col.openid'), h('span', {title: s.openid}, shortId(s.openid))),
        cell(t('col.state'), s.state ? t('state.' + s.state) : ''),
        cell(t('col.agent'), s.agent ? agentName(s.agent) : ''),
        cell(t('col.group'), groupName(s.group)),
        cell(t('board.col.waited'), s.state === 'waiting' && s.queued_ms ?
             since(s.queued_ms) : s.user_ms > (s.reply_ms || 0) ?
             since(s.user_ms) : t('board.answered')),
        cell(t('board.col.window'), s.window_end_ms ? countdown(s.window_end_ms) :
             t('none'))));
    tid('board-sessions-table').tBodies[0].replaceChildren(...(rows.length ? rows :
        [h('tr', {}, h('td', {colspan: '6', class: 'muted'},
                       t('sessions.all.empty')))]));
    tid('board-sessions-pager').replaceChildren(pager('sessions', r, loadSessions));
}

// One page of a table (name: 'queue' or 'sessions', the route's name).
async function load(name, render) {
    const err = tid('board-' + name + '-error');
    try {
        const r = await api.get('/api/v1/' + name, {query: query(name)});
        setError(err, '');
        render(r);
    } catch (e) {
        showError(err, e);
    }
}

const loadQueue = () => load('queue', renderQueue);
const loadSessions = () => load('sessions', renderSessions);

// The filters' choices: the groups and agents the board knows.
function fillChoices(b) {
    const groups = ['_all', ...(b.groups || []).map(g => g.group)];
    const agents = (b.agents || []).map(a => a.account);
    for (const [id, list, name] of [['board-queue-group', groups, groupName],
                                    ['board-sessions-group', groups, groupName],
                                    ['board-sessions-agent', agents, agentName]]) {
        const sel = tid(id);
        const keep = sel.value;
        sel.replaceChildren(h('option', {value: ''}, t('board.any')),
                            ...list.map(v => h('option', {value: v}, name(v))));
        sel.value = list.includes(keep) ? keep : '';
    }
}

// --- moving a waiting user ---------------------------------------------------

let moving = null;

function openMove(s) {
    const b = view.board || {agents: [], groups: []};
    moving = s;
    const dlg = tid('board-move-dialog');
    tid('board-move-heading', dlg).textContent =
        t('board.move.heading', {user: shortId(s.openid)});
    const sel = tid('board-move-target', dlg);
    const agents = (b.agents || []).filter(a => (a.status === 'online' ||
        a.status === 'paused') && a.load < a.capacity);
    sel.replaceChildren(
        h('optgroup', {label: t('board.move.agents')}, ...agents.map(a =>
            h('option', {value: 'agent:' + a.account},
              t('board.move.agent', {name: a.nick || a.account, n: a.load,
                                     cap: a.capacity})))),
        h('optgroup', {label: t('board.move.groups')},
          ...['_all', ...(b.groups || []).map(g => g.group)]
              .filter(g => g !== s.group).map(g =>
                  h('option', {value: 'group:' + g}, groupName(g)))));
    setError(tid('board-move-error', dlg), '');
    dlg.showModal();
}

async function submitMove(ev) {
    ev.preventDefault();
    const dlg = tid('board-move-dialog');
    const v = tid('board-move-target', dlg).value;
    if (!moving || !v)
        return;
    const i = v.indexOf(':');
    const body = {[v.slice(0, i)]: v.slice(i + 1)};
    try {
        const r = await api.post('/api/v1/queue/' + seg(moving.openid) + '/assign',
                                 body);
        dlg.close();
        toast(r.result === 'assigned' ?
              t('board.moved.agent', {name: agentName(r.agent)}) :
              t('board.moved.group', {group: groupName(r.group), n: r.position}));
        refreshBoard();
    } catch (e) {
        showError(tid('board-move-error', dlg), e);
    }
}

// --- the page ----------------------------------------------------------------

let busy = false;
export async function refreshBoard() {
    if (busy || !S.me || S.me.role !== 'admin')
        return;
    busy = true;
    try {
        const b = await api.get('/api/v1/board');
        view.board = b;
        if (Number.isFinite(b.now_ms))
            view.skew = b.now_ms - Date.now();
        setError(tid('board-error'), '');
        renderTeam(b);
        fillChoices(b);
        await Promise.all([loadQueue(), loadSessions()]);
        tid('board-refreshed').textContent =
            t('admin.refreshed', {t: new Date().toLocaleTimeString()});
    } catch (e) {
        showError(tid('board-error'), e);
    } finally {
        busy = false;
    }
}

export function enterBoard() {
    show(tid('board'), true);
    refreshBoard();
    every(BOARD_REFRESH_MS, () => {
        if (document.visibilityState !== 'hidden')
            refreshBoard();
    });
    every(1000, tick);
}

export function leaveBoard() {
    view.board = null;
    for (const id of ['board-team', 'board-queue-pager',
                      'board-sessions-pager'])
        tid(id).replaceChildren();
    tid('board-queue-table').tBodies[0].replaceChildren();
    tid('board-sessions-table').tBodies[0].replaceChildren();
}

export function relabelBoard() {
    if (view.board)
        refreshBoard();
}

function onFilter(name, key, id, ev) {
    view[name][key] = String(tid(id).value || '').trim();
    view[name].offset = 0;
    if (ev)
        ev.preventDefault();
    (name === 'queue' ? loadQueue : loadSessions)();
}

export function wireBoard() {
    tid('board-queue-group').addEventListener('change', () =>
        onFilter('queue', 'group', 'board-queue-group'));
    tid('board-queue-search').addEventListener('submit', (ev) =>
        onFilter('queue', 'q', 'board-queue-q', ev));
    for (const [key, id] of [['state', 'board-sessions-state'],
                             ['agent', 'board-sessions-agent'],
                             ['group', 'board-sessions-group']])
        tid(id).addEventListener('change', () => onFilter('sessions', key, id));
    tid('board-sessions-search').addEventListener('submit', (ev) =>
        onFilter('sessions', 'q', 'board-sessions-q', ev));
    tid('board-move-form').addEventListener('submit', submitMove);
    tid('board-move-cancel').addEventListener('click', () =>
        tid('board-move-dialog').close());
}

// --- the agent's side --------------------------------------------------------

// A status a supervisor or an admin forced on this agent (its feed's
// presence event with reason forced, or GET /api/v1/me's status_by):
// shown until the agent sets a status itself. by '' hides it.
export function showForced(status, by) {
    const el = tid('agent-forced');
    if (!el)
        return;
    show(el, !!by);
    el.textContent = by ? t('board.forced.agent', {status: t('status.' + status),
                                                   who: by}) : '';
}

// The feed's presence event: a recent one (not a replay after a
// reconnect) sets the status at once; *changed tells the caller to
// refresh what the status shows.
export function onForcedPresence(e) {
    if (!S.me || e.reason !== 'forced' || e.agent !== S.me.account ||
        Number(e.ts_ms) < Date.now() - 60000)
        return false;
    S.me.status = e.status;
    showForced(e.status, e.by);
    toast(t('board.forced.agent', {status: t('status.' + e.status),
                                   who: e.by}), 'error');
    return true;
}
