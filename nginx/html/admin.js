// wxkf console — the admin view: live statistics, the agents (add, edit,
// new token, remove; a token is shown once), refreshed every 5 s; the
// live board with the waiting queue and every session is board.js's.
// Users and API tokens: users.js.

import {api, ApiError, seg} from './api.js';
import {t} from './i18n.js';
import {confirmDialog, errInfo, fmtDur, h, setError, show, showError, tid,
        toast, toastError} from './dom.js';
import {S, every} from './state.js';
import {renderLabels, wireLabels} from './labels.js';
import {enterCannedAdmin, leaveCanned, relabelCanned} from './canned.js';
import {enterReports, leaveReports, relabelReports} from './reports.js';
import {enterAudit, leaveAudit, relabelAudit} from './audit.js';
import {enterUsers, leaveUsers, relabelUsers} from './users.js';
import {enterBoard, leaveBoard, relabelBoard, wireBoard} from './board.js';

const ADMIN_REFRESH_MS = 5000;

export function enterAdmin() {
    show(tid('admin-view'), true);
    refreshAdmin();
    enterBoard();
    renderLabels();
    enterCannedAdmin();
    enterReports();
    enterAudit();
    enterUsers();
    every(ADMIN_REFRESH_MS, refreshAdmin);
}

let adminBusy = false;
export async function refreshAdmin() {
    if (adminBusy || !S.me || S.me.role !== 'admin')
        return;
    adminBusy = true;
    try {
        const [stats, agents] = await Promise.allSettled([
            api.get('/api/v1/stats'), api.get('/api/v1/agents')]);
        if (!S.me)
            return;
        panel('stats-error', stats, renderStats);
        const st = stats.status === 'fulfilled' ? stats.value : null;
        if (agents.status === 'fulfilled') {
            setError(tid('agents-error'), '');
            renderAgents(agents.value && agents.value.agents || [], st);
        } else {
            const {msg, details} = errInfo(agents.reason);
            setError(tid('agents-error'), t('agents.unavailable', {msg}),
                     details);
            renderAgents(null, st);    // what the stats know
        }
        tid('admin-refreshed').textContent =
            t('admin.refreshed', {t: new Date().toLocaleTimeString()});
    } finally {
        adminBusy = false;
    }
}

function panel(errId, res, render) {
    if (res.status === 'fulfilled') {
        setError(tid(errId), '');
        render(res.value || {});
    } else {
        if (res.reason instanceof ApiError && res.reason.status === 401)
            return;
        showError(tid(errId), res.reason);
    }
}

const STAT_KEYS = ['agents', 'online', 'paused', 'sessions_active', 'waiting',
                   'messages_today', 'first_response_median_ms', 'online_rate'];

function fmtStat(k, v) {
    if (v === undefined || v === null || v === '')
        return t('none');
    if (k === 'first_response_median_ms')
        return fmtDur(Number(v));
    if (k === 'online_rate') {
        const n = Number(v);
        return Number.isFinite(n) ? (n <= 1 ? Math.round(n * 1000) / 10 :
                                     Math.round(n * 10) / 10) + '%' : String(v);
    }
    return String(v);
}

function renderStats(s) {
    const box = tid('stats');
    box.replaceChildren(...STAT_KEYS.map(k => h('div', {
        class: 'stat', dataset: {testid: 'stat-' + k}},
        h('span', {class: 'value', dataset: {testid: 'stat-value'}},
          fmtStat(k, s[k])),
        h('span', {class: 'label'}, t('stat.' + k)))));
}

function statusBadge(st) {
    return h('span', {class: 'status-badge ' + (st || 'offline'),
                      dataset: {testid: 'agent-status', status: st || ''}},
             st ? t('status.' + st) : t('none'));
}

// agents: the list from GET /api/v1/agents, or null (then the stats' per
// agent view fills the table).
function renderAgents(agents, stats) {
    const per = stats && (stats.agent_stats || stats.per_agent) || {};
    const rows = new Map();
    if (agents) {
        for (const a of agents) {
            if (a && a.account)
                rows.set(a.account, Object.assign({}, a));
        }
    } else {
        for (const acct of Object.keys(per))
            rows.set(acct, {account: acct});
    }
    for (const [acct, a] of rows) {
        const p = per[acct] || {};
        for (const k of ['status', 'load', 'share', 'capacity']) {
            if (a[k] === undefined && p[k] !== undefined)
                a[k] = p[k];
        }
    }
    S.agents = rows;
    const tbody = tid('agents-table').tBodies[0];
    const keep = [];
    for (const a of [...rows.values()].sort((x, y) =>
        x.account < y.account ? -1 : 1)) {
        let tr = S.adminRows.get(a.account);
        if (!tr) {
            tr = agentRow(a.account);
            S.adminRows.set(a.account, tr);
        }
        fillAgentRow(tr, a, !!agents);
        keep.push(tr);
    }
    for (const [acct, tr] of S.adminRows) {
        if (!rows.has(acct)) {
            S.adminRows.delete(acct);
            tr.remove();
        }
    }
    if (!keep.length) {
        tbody.replaceChildren(h('tr', {}, h('td', {colspan: '8', class: 'muted'},
                                             t('agents.empty'))));
    } else {
        tbody.replaceChildren(...keep);
    }
}

function agentRow(account) {
    const tr = h('tr', {dataset: {testid: 'agent-row', account}});
    const cells = {};
    for (const k of ['account', 'nick', 'status', 'load', 'weight', 'groups',
                     'share', 'actions']) {
        cells[k] = h('td', {class: 'c-' + k,
                            dataset: {testid: 'agent-' + k, label: t('agents.' + k)}});
        tr.append(cells[k]);
    }
    cells.actions.append(
        h('button', {type: 'button', dataset: {testid: 'agent-edit'},
                     onclick: () => openEdit(account)}, t('agents.edit')),
        h('button', {type: 'button', dataset: {testid: 'agent-token'},
                     onclick: () => newToken(account)}, t('agents.token')),
        h('button', {type: 'button', class: 'danger',
                     dataset: {testid: 'agent-remove'},
                     onclick: () => removeAgent(account)}, t('agents.remove')));
    tr._cells = cells;
    return tr;
}

function fillAgentRow(tr, a, full) {
    const c = tr._cells;
    c.account.textContent = a.account;
    c.nick.textContent = a.nick || '';
    c.status.replaceChildren(statusBadge(a.status));
    const cap = a.capacity === null || a.capacity === undefined || a.capacity === '' ||
        Number(a.capacity) === 0 ? '' : String(a.capacity);
    c.load.textContent = (a.load === undefined ? t('none') : String(a.load)) +
        (cap ? ' / ' + cap : '');
    c.weight.textContent = a.weight === undefined ? '' : String(a.weight);
    c.groups.textContent = Array.isArray(a.groups) ? a.groups.join(', ') : '';
    c.share.textContent = a.share === undefined ? '' : String(a.share);
    for (const b of c.actions.querySelectorAll('button'))
        b.disabled = !full;
    tr.dataset.status = a.status || '';
}

function splitGroups(s) {
    return String(s || '').split(/[,\s，]+/).map(g => g.trim()).filter(Boolean);
}

async function addAgent(ev) {
    ev.preventDefault();
    const form = tid('agent-add-form');
    const err = tid('agent-add-error');
    const f = new FormData(form);
    const body = {account: String(f.get('account') || '').trim(),
                  nick: String(f.get('nick') || '').trim(),
                  groups: splitGroups(f.get('groups'))};
    if (f.get('weight'))
        body.weight = Number(f.get('weight'));
    if (f.get('capacity'))
        body.capacity = Number(f.get('capacity'));
    const btn = tid('agent-add-submit');
    btn.disabled = true;
    try {
        const r = await api.post('/api/v1/agents', body);
        setError(err, '');
        form.reset();
        const acct = r && r.agent && r.agent.account || body.account;
        showToken(t('token.heading', {account: acct}), r && r.token || '');
        refreshAdmin();
    } catch (e) {
        showError(err, e);
    } finally {
        btn.disabled = false;
    }
}

let editing = null;
function openEdit(account) {
    const a = S.agents.get(account);
    if (!a)
        return;
    editing = a;
    const dlg = tid('edit-dialog');
    tid('edit-heading', dlg).textContent = account;
    tid('edit-nick', dlg).value = a.nick || '';
    tid('edit-weight', dlg).value = a.weight === undefined ? '' : a.weight;
    tid('edit-capacity', dlg).value = a.capacity === undefined ||
        a.capacity === null ? '' : a.capacity;
    tid('edit-groups', dlg).value = Array.isArray(a.groups) ? a.groups.join(',') : '';
    setError(tid('edit-error', dlg), '');
    dlg.showModal();
}

async function saveEdit(ev) {
    ev.preventDefault();
    const dlg = tid('edit-dialog');
    const a = editing;
    if (!a)
        return;
    const body = {};
    const nick = tid('edit-nick', dlg).value.trim();
    if (nick !== (a.nick || ''))
        body.nick = nick;
    const w = tid('edit-weight', dlg).value;
    if (w !== '' && Number(w) !== Number(a.weight))
        body.weight = Number(w);
    const cap = tid('edit-capacity', dlg).value;
    const oldCap = a.capacity === undefined || a.capacity === null ? '' : String(a.capacity);
    if (cap !== oldCap)
        body.capacity = cap === '' ? 0 : Number(cap);
    const groups = splitGroups(tid('edit-groups', dlg).value);
    if (groups.join(',') !== (Array.isArray(a.groups) ? a.groups.join(',') : ''))
        body.groups = groups;
    if (!Object.keys(body).length) {
        dlg.close();
        return;
    }
    try {
        await api.patch('/api/v1/agents/' + seg(a.account), body);
        dlg.close();
        toast(t('agents.saved', {account: a.account}));
        refreshAdmin();
    } catch (e) {
        showError(tid('edit-error', dlg), e);
    }
}

async function newToken(account) {
    if (!await confirmDialog(t('agents.token.confirm', {account})))
        return;
    try {
        const r = await api.post('/api/v1/agents/' + seg(account) + '/token', {});
        showToken(t('token.heading', {account}), r && r.token || '');
    } catch (e) {
        toastError(e);
    }
}

async function removeAgent(account) {
    if (!await confirmDialog(t('agents.remove.confirm', {account})))
        return;
    try {
        await api.del('/api/v1/agents/' + seg(account));
        toast(t('agents.removed', {account}));
        refreshAdmin();
    } catch (e) {
        toastError(e);
    }
}

// A secret shown once (an agent's token, an API token) under heading,
// with a copy button.
export function showToken(heading, token) {
    const dlg = tid('token-dialog');
    tid('token-heading', dlg).textContent = heading;
    const input = tid('token-value', dlg);
    input.value = token;
    const copy = tid('token-copy', dlg);
    copy.textContent = t('token.copy');
    copy.onclick = async () => {
        let ok = false;
        try {
            await navigator.clipboard.writeText(input.value);
            ok = true;
        } catch (e) {
            input.select();
            try {
                ok = document.execCommand('copy');
            } catch (e2) {
                ok = false;
            }
        }
        if (ok)
            copy.textContent = t('token.copied');
    };
    dlg.addEventListener('close', () => { input.value = ''; }, {once: true});
    dlg.showModal();
    input.select();
}


export function leaveAdmin() {
    tid('agents-table').tBodies[0].replaceChildren();
    tid('stats').replaceChildren();
    leaveBoard();
    leaveCanned();
    leaveReports();
    leaveAudit();
    leaveUsers();
}

export function relabelAdmin() {
    for (const tr of S.adminRows.values())
        tr.remove();
    S.adminRows.clear();
    refreshAdmin();
    relabelBoard();
    renderLabels();
    relabelCanned();
    relabelReports();
    relabelAudit();
    relabelUsers();
}

export function wireAdmin() {
    wireLabels();
    wireBoard();
    tid('agent-add-form').addEventListener('submit', addAgent);
    tid('edit-form').addEventListener('submit', saveEdit);
    tid('edit-cancel').addEventListener('click', () => tid('edit-dialog').close());
}
