// wxkf console — signing in with a login and a password (the default;
// a token stays available behind "使用令牌登录"), finding that sign-in
// again after a reload, and ending it. The session is an HttpOnly cookie
// the page never sees; what it keeps is the CSRF token (api.js).

import {api, ApiError, setCsrf, getCsrf} from './api.js';
import {t} from './i18n.js';
import {setError, show, showError, tid} from './dom.js';

// Which form the sign-in page shows: the password one (the default) or
// the token one.
export function showSigninForm(password) {
    show(tid('password-form'), password);
    show(tid('login-form'), !password);
    setError(tid('password-error'), '');
    setError(tid('login-error'), '');
    const first = password ? tid('login-name') : tid('login-token');
    first.focus();
}

// The words for a refused sign-in.
function refusal(e) {
    if (!(e instanceof ApiError))
        return '';
    if (e.code === 'wrong_credentials')
        return t('signin.wrong');
    if (e.code === 'account_locked')
        return t('signin.locked', {n: e.retryAfter || 1});
    if (e.code === 'account_disabled')
        return t('signin.disabled');
    return '';
}

// Who the session cookie is, as GET /api/v1/me says it.
function whoamiByCookie() {
    return api.get('/api/v1/me', {token: ''});
}

// enter(me) is the app's: it shows the workspace of me.
export function wireSignin(enter) {
    tid('login-use-token').addEventListener('click',
                                            () => showSigninForm(false));
    tid('login-use-password').addEventListener('click',
                                               () => showSigninForm(true));
    tid('password-form').addEventListener('submit', async (ev) => {
        ev.preventDefault();
        const login = tid('login-name').value.trim();
        const pw = tid('login-password');
        const err = tid('password-error');
        if (!login || !pw.value) {
            setError(err, t('signin.empty'));
            return;
        }
        const btn = tid('password-submit');
        btn.disabled = true;
        setError(err, '');
        btn.textContent = t('login.checking');
        try {
            const s = await api.post('/api/v1/auth/login',
                                     {login, password: pw.value},
                                     {token: ''});
            pw.value = '';
            setCsrf(s.csrf_token);
            enter(await whoamiByCookie());
        } catch (e) {
            pw.value = '';
            const words = refusal(e);
            if (words)
                setError(err, words);
            else
                showError(err, e);
        } finally {
            btn.disabled = false;
            btn.textContent = t('login.submit');
        }
    });
}

// After a reload: the signed-in user of a session cookie, or null.
export async function resumeSignin() {
    try {
        const s = await api.get('/api/v1/auth/me', {token: ''});
        setCsrf(s.csrf_token);
        return await whoamiByCookie();
    } catch (e) {
        setCsrf('');
        return null;
    }
}

// Ends the password sign-in, if there is one (errors do not matter: the
// page forgets the token either way, and the session expires).
export async function endSignin() {
    if (!getCsrf())
        return;
    // the request takes the token now; forgetting it at once leaves a
    // sign-in made while this is under way alone
    const done = api.post('/api/v1/auth/logout', {}, {token: ''});
    setCsrf('');
    try {
        await done;
    } catch (e) {
        /* already over */
    }
}
