// wxkf console — the REST client. The token lives in sessionStorage and
// travels only in the Authorization header, never in a URL. Without a
// token, a password sign-in's session cookie (HttpOnly: never seen here)
// goes instead, with the session's CSRF token in X-CSRF-Token on every
// request that changes something (docs/api.md, "Authentication").

const TOKEN_KEY = 'wxkf.token';

export class ApiError extends Error {
    constructor(status, code, message, body) {
        super(message || code || ('HTTP ' + status));
        this.status = status;      // 0 = network error
        this.code = code || '';
        this.body = body || null;  // the whole error object, e.g. errcode
    }
}

export function getToken() {
    try {
        return sessionStorage.getItem(TOKEN_KEY) || '';
    } catch (e) {
        return '';
    }
}

export function setToken(tok) {
    try {
        if (tok)
            sessionStorage.setItem(TOKEN_KEY, tok);
        else
            sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) {
        /* storage refused: the token is lost on reload */
    }
}

// The CSRF token of a password sign-in ('' none); kept in memory only
// (GET /api/v1/auth/me gives it again after a reload).
let csrf = '';
export function setCsrf(v) {
    csrf = v || '';
}
export function getCsrf() {
    return csrf;
}

// Called with the ApiError of every 401 (the app signs out).
let onUnauthorized = null;
export function setUnauthorizedHandler(fn) {
    onUnauthorized = fn;
}

// Called with false when a request could not reach the server (the
// network), with true when one got any answer.
let onNetwork = null;
export function setNetworkHandler(fn) {
    onNetwork = fn;
}

// request(method, path, {json, body, type, blob, query, token, signal})
// → parsed JSON (or a Blob with blob:true, or null for an empty body).
// Throws ApiError: status 0 for the network, else the server's
// {"error":{"code","message"}}.
export async function request(method, path, opts = {}) {
    const token = opts.token !== undefined ? opts.token : getToken();
    const headers = {};
    if (token)
        headers.Authorization = 'Bearer ' + token;
    else if (csrf && method !== 'GET' && method !== 'HEAD')
        headers['X-CSRF-Token'] = csrf;
    let body;
    if (opts.json !== undefined) {
        headers['Content-Type'] = 'application/json';
        body = JSON.stringify(opts.json);
    } else if (opts.body !== undefined) {
        body = opts.body;
        if (opts.type)
            headers['Content-Type'] = opts.type;
    }
    let url = path;
    if (opts.query) {
        const q = new URLSearchParams();
        for (const [k, v] of Object.entries(opts.query)) {
            if (v !== undefined && v !== null && v !== '')
                q.set(k, String(v));
        }
        const s = q.toString();
        if (s)
            url += (url.includes('?') ? '&' : '?') + s;
    }
    let resp;
    try {
        resp = await fetch(url, {method, headers, body, signal: opts.signal,
                                 cache: 'no-store',
                                 credentials: token ? 'omit' : 'same-origin'});
    } catch (e) {
        if (e && e.name === 'AbortError')
            throw e;
        if (onNetwork)
            onNetwork(false);
        throw new ApiError(0, 'network', '');
    }
    if (onNetwork)
        onNetwork(true);
    if (!resp.ok) {
        let err = {};
        try {
            const j = await resp.json();
            if (j && typeof j.error === 'object' && j.error)
                err = j.error;
        } catch (e) {
            err = {};
        }
        const ae = new ApiError(resp.status, err.code, err.message, err);
        ae.retryAfter = Number(resp.headers.get('Retry-After')) || 0;
        if (resp.status === 401 && onUnauthorized && (token || csrf))
            onUnauthorized(ae);
        throw ae;
    }
    if (opts.blob)
        return resp.blob();
    const text = await resp.text();
    if (!text)
        return null;
    try {
        return JSON.parse(text);
    } catch (e) {
        return text;
    }
}

export const api = {
    get: (path, opts) => request('GET', path, opts),
    post: (path, json, opts) => request('POST', path,
                                        Object.assign({json}, opts)),
    patch: (path, json, opts) => request('PATCH', path,
                                         Object.assign({json}, opts)),
    del: (path, opts) => request('DELETE', path, opts),
};

// Path segment from data (an openid, an account, a media id).
export function seg(s) {
    return encodeURIComponent(String(s));
}
