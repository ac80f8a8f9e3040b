// wxkf console — start-up, sign in and out, the language switch.
//
// Plain ES modules, no framework, no build step:
//   api.js        the REST client (the token: sessionStorage + header only)
//   feed.js       the agent's live feed (push with catch-up, or polling)
//   i18n.js       every string, zh and en
//   dom.js        DOM, formatting and dialog helpers (text only, no markup)
//   state.js      the signed-in state
//   workspace.js  agent: presence, the feed, the session list
//   conv.js       agent: one conversation (history, live, send, transfer)
//   media.js      agent: users' images and voice from blob: URLs
//   colleagues.js agent: whom to transfer to (list, status, load), nicknames
//   reopen.js     agent: reopening a past conversation (wrapup.js's view)
//   admin.js      admin: stats, agents, queue, sessions

import {api, ApiError, getToken, setToken, setUnauthorizedHandler}
    from './api.js';
import {t, applyI18n, setLang, getLang, LANGS} from './i18n.js';
import {errInfo, h, setError, show, showError, tid} from './dom.js';
import {S, reset} from './state.js';
import {enterAgent, leaveAgent, relabelAgent, wireAgent} from './workspace.js';
import {revokeMediaUrls} from './media.js';
import {enterAdmin, leaveAdmin, relabelAdmin, wireAdmin} from './admin.js';

// Who a token is: {"role":"admin"} or {"role":"agent","account",...}.
function whoami(token) {
    return api.get('/api/v1/me', {token});
}

function enter(me) {
    S.me = me;
    show(tid('login-view'), false);
    show(tid('logout'), true);
    show(tid('whoami'), true);
    document.body.dataset.role = me.role;
    renderWho();
    if (me.role === 'admin')
        enterAdmin();
    else
        enterAgent();
}

function signOut(reason) {
    const wasIn = !!S.me;
    if (S.me && S.me.role === 'agent')
        leaveAgent();
    else if (S.me)
        leaveAdmin();
    revokeMediaUrls();
    reset();
    setToken('');
    for (const d of document.querySelectorAll('dialog[open]'))
        d.close();
    showLogin(wasIn ? reason : '');
}

function showLogin(msg) {
    for (const id of ['agent-view', 'admin-view', 'whoami', 'status-switch',
                      'conn-state', 'logout'])
        show(tid(id), false);
    show(tid('login-view'), true);
    document.body.dataset.role = '';
    setError(tid('login-error'), msg || '');
    tid('login-token').value = '';
    tid('login-token').focus();
}

function renderWho() {
    const el = tid('whoami');
    if (!S.me)
        return;
    if (S.me.role === 'admin') {
        el.textContent = t('role.admin');
        el.title = '';
        return;
    }
    el.replaceChildren(
        h('span', {class: 'nick', dataset: {testid: 'whoami-nick'}},
          S.me.nick || S.me.account),
        h('span', {class: 'account', dataset: {testid: 'whoami-account'}},
          S.me.account));
    el.title = S.me.account;
}

async function submitLogin(ev) {
    ev.preventDefault();
    const token = tid('login-token').value.trim();
    const err = tid('login-error');
    if (!token) {
        setError(err, t('login.empty'));
        return;
    }
    const btn = tid('login-submit');
    btn.disabled = true;
    setError(err, '');
    btn.textContent = t('login.checking');
    try {
        const me = await whoami(token);
        setToken(token);
        enter(me);
    } catch (e) {
        if (e instanceof ApiError && e.status === 401)
            setError(err, t('login.expired'));
        else
            showError(err, e);
    } finally {
        btn.disabled = false;
        btn.textContent = t('login.submit');
    }
}

function relabel() {
    applyI18n(document);
    renderWho();
    if (S.me && S.me.role === 'agent')
        relabelAgent();
    else if (S.me)
        relabelAdmin();
}

function wire() {
    const sel = tid('lang-switch');
    sel.replaceChildren(...LANGS.map(([code, name]) =>
        h('option', {value: code}, name)));
    sel.value = getLang();
    sel.addEventListener('change', () => {
        setLang(sel.value);
        relabel();
    });
    tid('login-form').addEventListener('submit', submitLogin);
    tid('logout').addEventListener('click', () => signOut(''));
    setUnauthorizedHandler(() => {
        if (S.me)
            signOut(t('login.expired'));
    });
    wireAgent();
    wireAdmin();
}

async function boot() {
    applyI18n(document);
    wire();
    const token = getToken();
    if (!token) {
        showLogin('');
        return;
    }
    try {
        enter(await whoami(token));
    } catch (e) {
        setToken('');
        showLogin(e instanceof ApiError && e.status === 401 ?
                  t('login.expired') : errInfo(e).msg);
    }
}

boot();
