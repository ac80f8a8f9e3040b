// wxkf console — the admin's people and machines: the staff users (list,
// add with a role and an initial password, an agent user linked to its
// agent account, change the role, disable and enable, reset a password)
// and the API tokens of machine clients (list with the last use, create
// with its secret shown once, revoke after a confirmation). Admins only: a
// supervisor does not see these panels. GET/POST /api/v1/staff, PATCH
// /api/v1/staff/{login}, POST /api/v1/staff/{login}/password,
// GET/POST /api/v1/tokens, DELETE /api/v1/tokens/{id} (docs/api.md).

import {api, seg} from './api.js';
import {t} from './i18n.js';
import {confirmDialog, h, setError, show, showError, tid, toast,
        toastError} from './dom.js';
import {S} from './state.js';
import {showToken} from './admin.js';

const ROLES = ['agent', 'supervisor', 'admin'];
const SCOPES = ['read', 'agents', 'reports', 'history'];

let live = false;

function isAdmin() {
    return !!S.me && S.me.role === 'admin' && S.me.staffRole !== 'supervisor';
}

export function enterUsers() {
    const on = isAdmin();
    show(tid('users-panel'), on);
    show(tid('tokens-panel'), on);
    live = on;
    if (!on)
        return;
    renderUserForm();
    renderTokenForm();
    refreshUsers();
    refreshTokens();
}

export function leaveUsers() {
    live = false;
    for (const id of ['users-table', 'tokens-table'])
        tid(id).replaceChildren();
}

export function relabelUsers() {
    if (live)
        enterUsers();
}

// A time of the API (ISO 8601, UTC) in the browser's time, or "–".
function when(iso) {
    return iso ? new Date(iso).toLocaleString() : '–';
}

function cell(label, ...kids) {
    return h('td', {dataset: {label}}, ...kids);
}

// --- users -----------------------------------------------------------------

// A panel's list from path (its member key) drawn by render; a failure
// in the panel's error line.
async function load(path, key, errId, render) {
    try {
        const r = await api.get(path);
        if (live)
            render(r[key] || []);
        setError(tid(errId), '');
    } catch (e) {
        showError(tid(errId), e);
    }
}

const refreshUsers = () => load('/api/v1/staff', 'users', 'users-error',
                                renderUsers);

async function change(login, body, done) {
    try {
        await api.patch('/api/v1/staff/' + seg(login), body);
        toast(done);
    } catch (e) {
        toastError(e);
    }
    refreshUsers();
}

function roleSelect(u) {
    const self = S.me && u.login === S.me.login;
    const sel = h('select', {'data-testid': 'user-role',
                             'aria-label': t('users.role'), disabled: self},
                  ...ROLES.filter((r) => r !== 'agent' || u.role === 'agent')
                      .map((r) => h('option', {value: r,
                                               selected: r === u.role},
                                    t('role.' + r))));
    sel.addEventListener('change', async () => {
        const role = sel.value;
        if (!await confirmDialog(t('users.role.confirm',
                                   {login: u.login, role: t('role.' + role)}))) {
            sel.value = u.role;
            return;
        }
        change(u.login, {role}, t('users.saved', {login: u.login}));
    });
    return sel;
}

// The row's password reset: an input and a button in place of the
// actions until done or cancelled.
function resetInline(u, td) {
    const input = h('input', {type: 'password', autocomplete: 'new-password',
                              'data-testid': 'user-reset-password',
                              'aria-label': t('users.reset.prompt',
                                              {login: u.login}),
                              placeholder: t('users.reset.prompt',
                                             {login: u.login})});
    const save = h('button', {type: 'button', class: 'primary',
                              'data-testid': 'user-reset-save'},
                   t('users.reset'));
    const cancel = h('button', {type: 'button', class: 'link'},
                     t('cancel'));
    const old = [...td.childNodes];
    cancel.onclick = () => td.replaceChildren(...old);
    save.onclick = async () => {
        try {
            await api.post('/api/v1/staff/' + seg(u.login) + '/password',
                           {new_password: input.value});
            toast(t('users.reset.done', {login: u.login}));
            td.replaceChildren(...old);
        } catch (e) {
            toastError(e);
        }
    };
    td.replaceChildren(input, save, cancel);
    input.focus();
}

function userRow(u) {
    const self = S.me && u.login === S.me.login;
    const actions = h('td', {class: 'c-actions',
                             dataset: {label: t('users.actions')}});
    actions.append(
        h('button', {type: 'button', 'data-testid': 'user-toggle',
                     hidden: self,
                     onclick: async () => {
                         if (!u.disabled &&
                             !await confirmDialog(t('users.disable.confirm',
                                                    {login: u.login})))
                             return;
                         change(u.login, {disabled: !u.disabled},
                                t('users.saved', {login: u.login}));
                     }},
          t(u.disabled ? 'users.enable' : 'users.disable')),
        h('button', {type: 'button', 'data-testid': 'user-reset',
                     onclick: () => resetInline(u, actions)},
          t('users.reset')));
    return h('tr', {'data-testid': 'user-row', 'data-login': u.login,
                    class: u.disabled ? 'disabled' : ''},
             cell(t('users.login'), u.login, self ? ' ' + t('users.you') : ''),
             cell(t('users.name'), u.name),
             cell(t('users.role'), roleSelect(u)),
             cell(t('users.agent'), u.agent || '–'),
             cell(t('users.state'),
                  h('span', {'data-testid': 'user-state'},
                    t(u.disabled ? 'users.disabled' : 'users.active'))),
             actions);
}

function renderUsers(users) {
    const head = h('tr', {}, ...['login', 'name', 'role', 'agent', 'state',
                                 'actions'].map((k) => h('th', {},
                                                         t('users.' + k))));
    tid('users-table').replaceChildren(
        h('thead', {}, head),
        h('tbody', {}, ...users.map(userRow)));
    show(tid('users-empty'), users.length === 0);
}

function field(label, input) {
    return h('label', {}, h('span', {}, label), input);
}

async function agentOptions(sel) {
    try {
        const r = await api.get('/api/v1/agents');
        sel.replaceChildren(...(r.agents || []).map((a) =>
            h('option', {value: a.account},
              a.nick ? `${a.nick} (${a.account})` : a.account)));
    } catch (e) {
        toastError(e);
    }
}

function renderUserForm() {
    const f = {
        login: h('input', {autocomplete: 'off', 'data-testid': 'user-add-login',
                           maxlength: 32, placeholder: 'lead01'}),
        name: h('input', {autocomplete: 'off', maxlength: 64,
                          'data-testid': 'user-add-name'}),
        role: h('select', {'data-testid': 'user-add-role'},
                ...ROLES.map((r) => h('option', {value: r,
                                                 selected: r === 'supervisor'},
                                      t('role.' + r)))),
        agent: h('select', {'data-testid': 'user-add-agent'}),
        password: h('input', {type: 'password', autocomplete: 'new-password',
                              'data-testid': 'user-add-password'}),
    };
    const agentLabel = field(t('users.agent'), f.agent);
    const err = h('p', {class: 'error', 'data-testid': 'user-add-error',
                        hidden: true});
    const sync = () => {
        show(agentLabel, f.role.value === 'agent');
        if (f.role.value === 'agent' && !f.agent.options.length)
            agentOptions(f.agent);
    };
    f.role.addEventListener('change', sync);
    const form = h('form', {'data-testid': 'user-add-form', novalidate: true},
                   field(t('users.login'), f.login),
                   field(t('users.name'), f.name),
                   field(t('users.role'), f.role), agentLabel,
                   field(t('users.password'), f.password), err,
                   h('button', {type: 'submit', class: 'primary',
                                'data-testid': 'user-add-submit'},
                     t('users.add.submit')));
    form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        const body = {login: f.login.value.trim(), name: f.name.value.trim(),
                      role: f.role.value, password: f.password.value};
        if (body.role === 'agent')
            body.agent = f.agent.value;
        try {
            await api.post('/api/v1/staff', body);
            setError(err, '');
            toast(t('users.added', {login: body.login}));
            form.reset();
            sync();
            refreshUsers();
        } catch (e) {
            showError(err, e);
        }
    });
    tid('user-add').replaceChildren(
        h('summary', {}, t('users.add')), form);
    sync();
}

// --- API tokens --------------------------------------------------------------

const refreshTokens = () => load('/api/v1/tokens', 'tokens', 'tokens-error',
                                 renderTokens);

async function revoke(tk) {
    if (!await confirmDialog(t('tokens.revoke.confirm', {name: tk.name})))
        return;
    try {
        await api.del('/api/v1/tokens/' + tk.id);
        toast(t('tokens.revoke.done', {name: tk.name}));
    } catch (e) {
        toastError(e);
    }
    refreshTokens();
}

function tokenRow(tk) {
    return h('tr', {'data-testid': 'token-row', 'data-name': tk.name,
                    class: tk.revoked_at ? 'disabled' : ''},
             cell(t('tokens.name'), tk.name),
             cell(t('tokens.scopes'),
                  (tk.scopes || []).map((s) => t('tokens.scope.' + s))
                      .join('、')),
             cell(t('tokens.created'), when(tk.created_at)),
             cell(t('tokens.by'), tk.created_by),
             cell(t('tokens.last_used'),
                  h('span', {'data-testid': 'token-last-used'},
                    tk.last_used_at ? when(tk.last_used_at)
                                    : t('tokens.never'))),
             cell(t('tokens.state'),
                  h('span', {'data-testid': 'token-state'},
                    tk.revoked_at ? t('tokens.revoked') + ' ' +
                                    when(tk.revoked_at)
                                  : t('tokens.live'))),
             h('td', {class: 'c-actions', dataset: {label: ''}},
               tk.revoked_at ? '' :
                   h('button', {type: 'button', 'data-testid': 'token-revoke',
                                onclick: () => revoke(tk)},
                     t('tokens.revoke'))));
}

function renderTokens(tokens) {
    const head = h('tr', {}, ...['name', 'scopes', 'created', 'by',
                                 'last_used', 'state'].map(
        (k) => h('th', {}, t('tokens.' + k))), h('th', {}));
    tid('tokens-table').replaceChildren(
        h('thead', {}, head), h('tbody', {}, ...tokens.map(tokenRow)));
    show(tid('tokens-empty'), tokens.length === 0);
}

function renderTokenForm() {
    const name = h('input', {autocomplete: 'off', maxlength: 64,
                             'data-testid': 'token-add-name'});
    const boxes = SCOPES.map((s) => h('input', {type: 'checkbox', value: s,
                                                'data-testid': 'token-scope-' + s}));
    const err = h('p', {class: 'error', 'data-testid': 'token-add-error',
                        hidden: true});
    const form = h('form', {'data-testid': 'token-add-form', novalidate: true},
                   field(t('tokens.name'), name),
                   h('fieldset', {class: 'scopes'},
                     h('legend', {}, t('tokens.scopes')),
                     ...boxes.map((b) => h('label', {class: 'check'}, b, ' ',
                                           t('tokens.scope.' + b.value)))),
                   err,
                   h('button', {type: 'submit', class: 'primary',
                                'data-testid': 'token-add-submit'},
                     t('tokens.add.submit')));
    form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        const scopes = boxes.filter((b) => b.checked).map((b) => b.value);
        if (!scopes.length) {
            setError(err, t('tokens.pick_scope'));
            return;
        }
        try {
            const r = await api.post('/api/v1/tokens',
                                     {name: name.value.trim(), scopes});
            setError(err, '');
            form.reset();
            showToken(t('tokens.secret.heading', {name: r.name}), r.token);
            refreshTokens();
        } catch (e) {
            showError(err, e);
        }
    });
    tid('token-add').replaceChildren(h('summary', {}, t('tokens.add')), form);
}
