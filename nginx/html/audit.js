// wxkf console — the audit log panel of the admin view (admins only): who
// did what, on what, from where; filtered by actor, action (a prefix),
// target and dates (the account's days), a page of 50 at a time with the
// total (GET /api/v1/audit; docs/api.md). Actions are shown by name from
// the i18n table (audit.action.<code>), an unknown one as its code.

import {request} from './api.js';
import {hasKey, t} from './i18n.js';
import {errInfo, h, setError, show, tid} from './dom.js';
import {S} from './state.js';

const PAGE = 50;
// The action filter's choices: every action, or those of one object.
const OBJECTS = ['session', 'agent', 'staff', 'label', 'canned', 'user',
                 'user_note', 'token'];

let form = null;
let offset = 0;

// A supervisor is shown the admin's views (app.js: staffRole), not this.
function isAdmin() {
    return Boolean(S.me && S.me.role === 'admin' &&
                   S.me.staffRole !== 'supervisor');
}

export function enterAudit(keep) {
    const root = tid('audit-admin');
    if (!root || form)
        return;
    show(tid('audit-section'), isAdmin());
    if (!isAdmin())
        return;
    const q = keep || {actor: '', action: '', target: '', from: '', to: ''};
    const text = (name, hint) => h('input', {
        value: q[name], maxlength: 128, autocomplete: 'off',
        'data-testid': 'audit-' + name, placeholder: t(hint),
        'aria-label': t('audit.' + name)});
    form = {
        actor: text('actor', 'audit.actor.hint'),
        action: h('select', {'data-testid': 'audit-action',
                             'aria-label': t('audit.action')},
                  h('option', {value: ''}, t('audit.action.all')),
                  ...OBJECTS.map((o) => h('option', {value: o + '.',
                                                     selected: q.action === o + '.'},
                                          t('audit.object.' + o)))),
        target: text('target', 'audit.target.hint'),
        from: h('input', {type: 'date', value: q.from, 'data-testid': 'audit-from',
                          'aria-label': t('audit.from')}),
        to: h('input', {type: 'date', value: q.to, 'data-testid': 'audit-to',
                        'aria-label': t('audit.to')}),
    };
    const submit = (ev) => {
        ev.preventDefault();
        offset = 0;
        load();
    };
    root.replaceChildren(
        h('form', {class: 'audit-bar', 'data-testid': 'audit-form', onsubmit: submit},
          h('label', {}, t('audit.actor'), ' ', form.actor),
          h('label', {}, t('audit.action'), ' ', form.action),
          h('label', {}, t('audit.target'), ' ', form.target),
          h('label', {}, t('audit.from'), ' ', form.from),
          h('label', {}, t('audit.to'), ' ', form.to),
          h('button', {type: 'submit', class: 'primary',
                       'data-testid': 'audit-search'}, t('audit.search')),
          h('button', {type: 'button', class: 'link', 'data-testid': 'audit-clear',
                       onclick: clear}, t('audit.clear'))),
        h('p', {class: 'error', 'data-testid': 'audit-error', hidden: true}),
        h('div', {class: 'audit-pager'},
          h('span', {class: 'muted', 'data-testid': 'audit-total'}),
          h('button', {type: 'button', 'data-testid': 'audit-prev', disabled: true,
                       onclick: () => turn(-1)}, t('audit.prev')),
          h('button', {type: 'button', 'data-testid': 'audit-next', disabled: true,
                       onclick: () => turn(1)}, t('audit.next'))),
        h('div', {class: 'table-wrap'},
          h('table', {class: 'grid audit-table', 'data-testid': 'audit-table'})));
    load();
}

export function leaveAudit() {
    form = null;
    offset = 0;
}

// The language changed: drawn again with the same filters and page.
export function relabelAudit() {
    if (!form)
        return;
    const q = query();
    const at = offset;
    form = null;
    enterAudit(q);
    if (at) {
        offset = at;
        load();
    }
}

function query() {
    const q = {};
    for (const k of ['actor', 'action', 'target', 'from', 'to']) {
        const v = form[k].value.trim();
        if (v)
            q[k] = v;
    }
    return q;
}

function clear() {
    for (const k of ['actor', 'action', 'target', 'from', 'to'])
        form[k].value = '';
    offset = 0;
    load();
}

function turn(dir) {
    offset = Math.max(0, offset + dir * PAGE);
    load();
}

// The action's name in the console's language, else its code.
export function actionName(code) {
    const key = 'audit.action.' + code;
    return hasKey(key) ? t(key) : code;
}

function roleName(role) {
    return role ? (hasKey('audit.role.' + role) ? t('audit.role.' + role) : role) : '';
}

function fmtAt(iso) {
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString();
}

function detailText(d) {
    const keys = d && typeof d === 'object' ? Object.keys(d) : [];
    return keys.length ? JSON.stringify(d) : '';
}

const COLUMNS = [
    ['at', (r) => fmtAt(r.at)],
    ['actor', (r) => r.actor],
    ['role', (r) => roleName(r.role)],
    ['action', (r) => actionName(r.action)],
    ['target', (r) => r.target || ''],
    ['ip', (r) => r.ip || ''],
    ['request_id', (r) => r.request_id || ''],
    ['detail', (r) => detailText(r.detail)],
];

function render(body) {
    const table = tid('audit-table');
    const head = h('tr', {}, ...COLUMNS.map(([k]) => h('th', {}, t('audit.col.' + k))));
    const rows = body.rows.map((r) => h(
        'tr', {'data-testid': 'audit-row', 'data-action': r.action},
        ...COLUMNS.map(([k, f]) => h('td', {class: 'c-' + k,
                                            dataset: {label: t('audit.col.' + k)},
                                            title: k === 'action' ? r.action : null},
                                     f(r)))));
    if (!rows.length)
        rows.push(h('tr', {}, h('td', {colspan: COLUMNS.length, class: 'muted',
                                       'data-testid': 'audit-empty'},
                                    t('audit.empty'))));
    table.replaceChildren(h('thead', {}, head), h('tbody', {}, ...rows));
    const first = body.rows.length ? body.offset + 1 : 0;
    tid('audit-total').textContent = t('audit.total', {
        n: body.total, a: first, b: body.offset + body.rows.length});
    tid('audit-prev').disabled = body.offset === 0;
    tid('audit-next').disabled = body.offset + body.rows.length >= body.total;
}

async function load() {
    const err = tid('audit-error');
    const q = {...query(), limit: PAGE, offset};
    setError(err, '');
    try {
        const body = await request('GET', '/api/v1/audit', {query: q});
        if (form)
            render(body);
    } catch (e) {
        const {msg, details} = errInfo(e);
        setError(err, msg, details);
        if (form) {         // no rows of an earlier question under it
            tid('audit-table').replaceChildren();
            tid('audit-total').textContent = '';
            tid('audit-prev').disabled = tid('audit-next').disabled = true;
        }
    }
}
