// wxkf console — the wrap-up and past conversations (agent):
//   closing a session asks for an optional summary (500 characters) and
//   sends it with the close (POST …/close {"summary"});
//   "历史会话" lists the agent's own closed sessions with their summaries
//   (GET /api/v1/history/sessions, searchable by summary text) and opens
//   one's transcript read-only (…/transcript?session=ID).

import {api, seg} from './api.js';
import {t} from './i18n.js';
import {fmtTime, h, setError, show, showError, shortId, tid} from './dom.js';
import {historyMsgEl} from './conv.js';

export const SUMMARY_MAX = 500;      // characters, as the API counts them
const PAST_PAGE = 20;

// Characters as the server counts them (code points, not UTF-16 units).
function chars(s) {
    return Array.from(s).length;
}

// --- the wrap-up -------------------------------------------------------------

function renderCount() {
    const dlg = tid('wrapup-dialog');
    const n = chars(tid('wrapup-summary', dlg).value);
    const el = tid('wrapup-count', dlg);
    el.textContent = t('wrapup.count', {n, max: SUMMARY_MAX});
    el.dataset.over = n > SUMMARY_MAX ? 'true' : 'false';
    tid('wrapup-submit', dlg).disabled = n > SUMMARY_MAX;
}

// Asks for the summary and closes openid's session with it. Resolves
// true once closed, false when the agent cancels.
export function wrapUp(openid) {
    const dlg = tid('wrapup-dialog');
    const form = tid('wrapup-form', dlg);
    const text = tid('wrapup-summary', dlg);
    const btn = tid('wrapup-submit', dlg);
    text.value = '';
    setError(tid('wrapup-error', dlg), '');
    renderCount();
    return new Promise(resolve => {
        let closed = false;
        const onSubmit = async (ev) => {
            ev.preventDefault();
            const summary = text.value.trim();
            btn.disabled = true;
            try {
                await api.post('/api/v1/sessions/' + seg(openid) + '/close',
                               summary ? {summary} : {});
                closed = true;
                dlg.close();
            } catch (e) {
                showError(tid('wrapup-error', dlg), e);
            } finally {
                btn.disabled = false;
            }
        };
        const onClose = () => {
            form.removeEventListener('submit', onSubmit);
            dlg.removeEventListener('close', onClose);
            resolve(closed);
        };
        form.addEventListener('submit', onSubmit);
        dlg.addEventListener('close', onClose);
        dlg.showModal();
        text.focus();
    });
}

// --- past conversations ------------------------------------------------------

const past = {q: '', next: null, rows: []};

function pastItem(s) {
    const when = Date.parse(s.closed_at);
    return h('li', {class: 'past-item', dataset: {testid: 'past-item',
                                                    session: s.id}},
             h('button', {type: 'button', class: 'past-open',
                          onclick: () => openPast(s)},
               h('span', {class: 'row1'},
                 h('span', {class: 'user', title: s.openid}, shortId(s.openid)),
                 h('time', {class: 'muted'}, fmtTime(when))),
               s.summary ?
                   h('span', {class: 'summary', dataset: {testid: 'past-summary'}},
                     s.summary) :
                   h('span', {class: 'summary muted'}, t('wrapup.none'))));
}

function renderPast() {
    const dlg = tid('past-dialog');
    tid('past-list', dlg).replaceChildren(...past.rows.map(pastItem));
    show(tid('past-empty', dlg), past.rows.length === 0);
    show(tid('past-more', dlg), !!past.next);
}

async function loadPast(more) {
    const dlg = tid('past-dialog');
    setError(tid('past-error', dlg), '');
    try {
        const r = await api.get('/api/v1/history/sessions', {query: {
            q: past.q, limit: PAST_PAGE, before: more ? past.next : ''}});
        const rows = Array.isArray(r && r.sessions) ? r.sessions : [];
        past.rows = more ? past.rows.concat(rows) : rows;
        past.next = r && r.next || null;
        renderPast();
    } catch (e) {
        showError(tid('past-error', dlg), e);
    }
}

function showList(on) {
    const dlg = tid('past-dialog');
    show(tid('past-browse', dlg), on);
    show(tid('past-view', dlg), !on);
}

async function openPast(s) {
    const dlg = tid('past-dialog');
    const ol = tid('past-messages', dlg);
    ol.replaceChildren();
    tid('past-title', dlg).textContent = t('wrapup.past.title', {
        user: shortId(s.openid), when: fmtTime(Date.parse(s.closed_at))});
    tid('past-view-summary', dlg).textContent = s.summary || t('wrapup.none');
    setError(tid('past-view-error', dlg), '');
    showList(false);
    try {
        const r = await api.get('/api/v1/sessions/' + seg(s.openid) +
                                '/transcript', {query: {session: s.id}});
        const rows = Array.isArray(r && r.messages) ? r.messages : [];
        ol.replaceChildren(...rows.map(historyMsgEl));
    } catch (e) {
        showError(tid('past-view-error', dlg), e);
    }
}

function openPastDialog() {
    const dlg = tid('past-dialog');
    showList(true);
    dlg.showModal();
    loadPast(false);
}

export function relabelWrapup() {
    if (tid('wrapup-dialog').open)
        renderCount();
    if (tid('past-dialog').open)
        renderPast();
}

export function wireWrapup() {
    const dlg = tid('wrapup-dialog');
    tid('wrapup-summary', dlg).addEventListener('input', renderCount);
    tid('wrapup-cancel', dlg).addEventListener('click', () => dlg.close());
    const pd = tid('past-dialog');
    tid('past-open').addEventListener('click', openPastDialog);
    tid('past-search', pd).addEventListener('submit', (ev) => {
        ev.preventDefault();
        const q = tid('past-q', pd).value.trim();
        if (chars(q) === 1) {
            setError(tid('past-error', pd), t('wrapup.search.short'));
            return;
        }
        past.q = q;
        loadPast(false);
    });
    tid('past-more', pd).addEventListener('click', () => loadPast(true));
    tid('past-back', pd).addEventListener('click', () => showList(true));
    tid('past-close', pd).addEventListener('click', () => pd.close());
}
