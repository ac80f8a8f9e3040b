// wxkf console — DOM, formatting and dialog helpers. Data goes into the
// page as text (textContent, text nodes, attribute values), never markup.

import {ApiError} from './api.js';
import {t, getLang, hasKey} from './i18n.js';


export const $ = (sel, root = document) => root.querySelector(sel);
export const tid = (id, root = document) => root.querySelector(`[data-testid="${id}"]`);

// h('div', {class: 'x', dataset: {testid: 'y'}}, 'text', child): strings
// become text nodes; never markup.
export function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
        if (v === undefined || v === null || v === false)
            continue;
        if (k === 'class')
            el.className = v;
        else if (k === 'dataset')
            Object.assign(el.dataset, v);
        else if (k === 'text')
            el.textContent = v;
        else if (k.startsWith('on'))
            el.addEventListener(k.slice(2), v);
        else if (k === 'hidden' || k === 'disabled')
            el[k] = !!v;
        else
            el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const kid of kids) {
        if (kid === undefined || kid === null || kid === false)
            continue;
        el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
}

export function show(el, on) {
    if (el)
        el.hidden = !on;
}

// msg in the console's language; details (the server's own text) on a
// line of its own under it, never as the message.
export function setError(el, msg, details) {
    if (!el)
        return;
    el.replaceChildren(msg || '');
    if (msg && details)
        el.append(detailsNode(details));
    el.hidden = !msg;
}

export function showError(el, e) {
    const {msg, details} = errInfo(e);
    setError(el, msg, details);
}

export function detailsNode(details) {
    return h('span', {class: 'details', dataset: {testid: 'error-details'}},
             t('err.details', {text: details}));
}

// --- formatting ------------------------------------------------------------

// Saves blob as a file called name (a download the browser asks about or
// keeps, as it does for a link's).
export function saveBlob(blob, name) {
    const url = URL.createObjectURL(blob);
    const a = h('a', {href: url, download: name, hidden: true});
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
}

export function fmtDur(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60)
        return t('dur.s', {n: s});
    if (s < 3600)
        return t('dur.m', {m: Math.floor(s / 60), s: s % 60});
    return t('dur.h', {h: Math.floor(s / 3600), m: Math.floor(s / 60) % 60});
}

export function fmtTime(ms) {
    if (!Number.isFinite(ms))
        return '';
    const d = new Date(ms);
    const today = new Date();
    const opts = d.toDateString() === today.toDateString() ?
        {hour: '2-digit', minute: '2-digit'} :
        {month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit'};
    return d.toLocaleString(getLang() === 'zh' ? 'zh-CN' : 'en-GB', opts);
}

export function num(v) {
    const n = Number(v);
    return Number.isFinite(n) ? n : NaN;
}

export function shortId(openid) {
    const s = String(openid || '');
    return s.length > 14 ? s.slice(0, 6) + '…' + s.slice(-6) : s;
}

// What to show for an error: {msg, details}. msg is the console's own
// text for the API's error code (i18n err.code.*), else for the HTTP
// status; details is what the server said (its message, WeChat's errcode
// and errmsg), for a details line only.
export function errInfo(e) {
    if (!(e instanceof ApiError))
        return {msg: String(e && e.message || e), details: ''};
    if (e.status === 0)
        return {msg: t('err.network'), details: ''};
    const b = e.body || {};
    const errcode = b.errcode !== undefined && b.errcode !== null &&
        Number(b.errcode) !== 0 ? b.errcode : null;
    const raw = [e.code, b.message || '',
                 errcode !== null ? 'errcode ' + errcode : '']
        .filter(Boolean).join(' · ');
    let msg;
    if (e.code && hasKey('err.code.' + e.code))
        msg = t('err.code.' + e.code, {errcode: errcode === null ? '' : errcode});
    else if (errcode !== null)
        msg = t('err.wechat.code', {errcode});
    else if (e.status === 429)
        msg = t('err.429');
    else
        msg = t('err.generic', {status: e.status});
    return {msg, details: raw};
}

export function errText(e) {
    return errInfo(e).msg;
}

let toastTimer = null;
export function toast(msg, kind = 'info', details = '') {
    const el = tid('toast');
    el.replaceChildren(msg);
    if (details)
        el.append(detailsNode(details));
    el.dataset.kind = kind;
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { el.hidden = true; }, 6000);
}

export function toastError(e) {
    if (e instanceof ApiError && e.status === 401)
        return;         // signed out already
    const {msg, details} = errInfo(e);
    toast(msg, 'error', details);
}

// Every waiting time on the page (.wait[data-since], ms) ticks.
export function tickWaiting() {
    const now = Date.now();
    for (const el of document.querySelectorAll('.wait[data-since]')) {
        const since = Number(el.dataset.since);
        if (since)
            el.textContent = t('sessions.waiting', {t: fmtDur(now - since)});
    }
}

// --- dialogs -----------------------------------------------------------------

export function confirmDialog(text) {
    const dlg = tid('confirm-dialog');
    tid('confirm-text', dlg).textContent = text;
    return new Promise(resolve => {
        const done = (v) => {
            dlg.removeEventListener('close', onClose);
            resolve(v);
        };
        const onClose = () => done(dlg.returnValue === 'ok');
        dlg.addEventListener('close', onClose);
        tid('confirm-cancel', dlg).onclick = () => dlg.close('cancel');
        dlg.returnValue = '';
        dlg.showModal();
    });
}

