// wxkf console — colleagues: who an agent can hand a conversation to.
// GET /api/v1/me/colleagues feeds the transfer dialog's list (nickname,
// status in words, load/capacity; groups with how many are online; an
// offline or full colleague shown but not offered, with the reason) and
// the nicknames agentName() shows instead of accounts. The typed account
// is offered only when the list cannot be loaded.

import {api} from './api.js';
import {t} from './i18n.js';
import {h, tid} from './dom.js';
import {S} from './state.js';

let groups = [];            // [{group, online, waiting}], the last list
let loaded = false;         // the dialog has a list to pick from

// The list into S.agents (account -> agent: agentName's nicknames) for
// an agent; an admin keeps admin.js's table. Throws what the API threw.
export async function loadColleagues() {
    const r = await api.get('/api/v1/me/colleagues');
    const agents = new Map();
    for (const a of (r && r.agents) || [])
        agents.set(a.account, a);
    if (S.me && S.me.role === 'agent')
        S.agents = agents;
    groups = (r && r.groups) || [];
    document.dispatchEvent(new CustomEvent('wxkf:colleagues'));
    return agents;
}

// Why an agent cannot take a transfer now ('' = it can).
function refusal(a) {
    if (a.status !== 'online' && a.status !== 'paused')
        return t('colleagues.why.offline');
    if (a.capacity > 0 && a.load >= a.capacity)
        return t('colleagues.why.full');
    return '';
}

function kindOf(dlg) {
    return dlg.querySelector('input[name="kind"]:checked').value;
}

function pick(dlg, btn) {
    for (const b of tid('transfer-list', dlg).querySelectorAll('button'))
        b.setAttribute('aria-pressed', String(b === btn));
    tid('transfer-target', dlg).value = btn.dataset.target;
}

function agentRow(dlg, a) {
    const why = refusal(a);
    const status = t('status.' + a.status);
    return h('li', {},
        h('button', {type: 'button', class: 'pick', disabled: !!why,
                     'aria-pressed': 'false', title: a.account,
                     dataset: {testid: 'transfer-pick', target: a.account,
                               status: a.status},
                     onclick: (ev) => pick(dlg, ev.currentTarget)},
          h('span', {class: 'pick-name', dataset: {testid: 'pick-name'}},
            a.nick || a.account),
          h('span', {class: 'pick-status', dataset: {testid: 'pick-status',
                                                     status: a.status}},
            status),
          h('span', {class: 'pick-load', title: t('colleagues.load.title'),
                     dataset: {testid: 'pick-load'}},
            `${a.load}/${a.capacity}`),
          why ? h('span', {class: 'pick-why', dataset: {testid: 'pick-why'}},
                  why) : null));
}

function groupRow(dlg, g) {
    return h('li', {},
        h('button', {type: 'button', class: 'pick', 'aria-pressed': 'false',
                     title: g.group,
                     dataset: {testid: 'transfer-pick', target: g.group},
                     onclick: (ev) => pick(dlg, ev.currentTarget)},
          h('span', {class: 'pick-name', dataset: {testid: 'pick-name'}},
            g.group),
          h('span', {class: 'pick-status', dataset: {testid: 'pick-online'}},
            t('colleagues.group.online', {n: g.online})),
          g.waiting > 0
              ? h('span', {class: 'pick-load'},
                  t('colleagues.group.waiting', {n: g.waiting})) : null));
}

// The list for the kind chosen (agents: the others, by account).
function render(dlg) {
    const list = tid('transfer-list', dlg);
    tid('transfer-target', dlg).value = '';
    if (!loaded)
        return;
    const rows = kindOf(dlg) === 'to_agent'
        ? [...S.agents.values()]
            .filter(a => !S.me || a.account !== S.me.account)
            .map(a => agentRow(dlg, a))
        : groups.map(g => groupRow(dlg, g));
    list.replaceChildren(...rows);
    if (!rows.length)
        list.append(h('li', {class: 'muted', dataset: {testid: 'transfer-none'}},
                      t(kindOf(dlg) === 'to_agent' ? 'colleagues.none'
                                                   : 'colleagues.no_groups')));
}

// Called as the dialog opens: a fresh list, or the typed account when it
// cannot be had.
export async function openColleagues(dlg) {
    const list = tid('transfer-list', dlg), input = tid('transfer-target', dlg);
    list.replaceChildren(h('li', {class: 'muted'}, t('colleagues.loading')));
    list.hidden = false;
    input.hidden = true;
    tid('transfer-list-error', dlg).hidden = true;
    try {
        await loadColleagues();
        loaded = S.me && S.me.role === 'agent';
    } catch (e) {
        loaded = false;
    }
    if (!dlg.open)
        return;
    list.hidden = !loaded;
    input.hidden = loaded;
    tid('transfer-list-error', dlg).hidden = loaded;
    render(dlg);
    if (!loaded)
        input.focus();
}

export function wireColleagues() {
    const dlg = tid('transfer-dialog');
    for (const r of dlg.querySelectorAll('input[name="kind"]'))
        r.addEventListener('change', () => render(dlg));
}
