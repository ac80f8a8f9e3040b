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
//   supervise.js  supervisor/admin: a live conversation, whisper, take-over
//   users.js      admin: staff users and API tokens
//   signin.js     sign-in with a login and password (the session cookie)

import {api, ApiError, getToken, setToken, setUnauthorizedHandler}
    from './api.js';
import {t, applyI18n, setLang, getLang, LANGS} from './i18n.js';
import {errInfo, h, setError, show, showError, tid} from './dom.js';
import {S, reset} from './state.js';
import {enterAgent, leaveAgent, relabelAgent, wireAgent} from './workspace.js';
import {revokeMediaUrls} from './media.js';
import {enterAdmin, leaveAdmin, relabelAdmin, wireAdmin} from './admin.js';
import {endSignin, resumeSignin, showSigninForm, wireSignin}
    from './signin.js';
import {closeSupervise, enterSupervisor, relabelSupervise, wireSupervise}
    from './supervise.js';

// Who a token is: {"role":"admin"} or {"role":"agent","account",...}.
function whoami(token) {
    return api.get('/api/v1/me', {token});
}

function enter(me) {
    // a supervisor sees the admin's views (its writes are refused, but
    // whispers, take-overs and, as its agent, its own sessions' writes)
    if (me.role === 'supervisor')
        me = Object.assign({}, me, {role: 'admin', staffRole: 'supervisor'});
    S.me = me;
    show(tid('login-view'), false);
    show(tid('logout'), true);
    show(tid('whoami'), true);
    document.body.dataset.role = me.role;
    renderWho();
    if (me.role === 'admin') {
        enterAdmin();
        enterSupervisor();
    } else
        enterAgent();
}

function signOut(reason) {
    const wasIn = !!S.me, byToken = !!getToken();
    if (S.me && S.me.role === 'agent')
        leaveAgent();
    else if (S.me)
        leaveAdmin();
    closeSupervise();
    revokeMediaUrls();
    reset();
    setToken('');
    endSignin();
    for (const d of document.querySelectorAll('dialog[open]'))
        d.close();
    showLogin(wasIn ? reason : '', byToken);
}

// The sign-in page: the form of the way one signed in (password by
// default), msg (why one is back here) under it.
function showLogin(msg, byToken) {
    for (const id of ['agent-view', 'admin-view', 'whoami', 'status-switch',
                      'conn-state', 'logout'])
        show(tid(id), false);
    show(tid('login-view'), true);
    document.body.dataset.role = '';
    tid('login-token').value = '';
    showSigninForm(!byToken);
    setError(tid(byToken ? 'login-error' : 'password-error'), msg || '');
}

function renderWho() {
    const el = tid('whoami');
    if (!S.me)
        return;
    if (S.me.role === 'admin') {
        const role = t(S.me.staffRole === 'supervisor' ? 'role.supervisor'
                                                       : 'role.admin');
        el.textContent = S.me.name ? S.me.name + ' · ' + role : role;
        el.title = S.me.login || '';
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
    relabelSupervise();
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
    wireSignin(enter);
    tid('logout').addEventListener('click', () => signOut(''));
    setUnauthorizedHandler(() => {
        if (S.me)
            signOut(t(getToken() ? 'login.expired' : 'err.code.not_signed_in'));
    });
    wireAgent();
    wireAdmin();
    wireSupervise();
}

async function boot() {
    applyI18n(document);
    wire();
    const token = getToken();
    if (!token) {
        const me = await resumeSignin();
        if (me)
            enter(me);
        else
            showLogin('');
        return;
    }
    try {
        enter(await whoami(token));
    } catch (e) {
        setToken('');
        showLogin(e instanceof ApiError && e.status === 401 ?
                  t('login.expired') : errInfo(e).msg, true);
    }
}

boot();
