// wxkf console — the wrap-up and past conversations:
//   closing a session asks for an optional summary (500 characters) and
//   up to 5 of the account's labels, sent with the close
//   (POST …/close {"summary", "labels"});
//   "历史会话" lists closed sessions with their summaries and labels — an
//   agent's own, every agent's for an admin (GET /api/v1/history/sessions,
//   searched by summary text and filtered by label) — and opens one's
//   transcript read-only (…/transcript?session=ID), with the button that
//   reopens it (reopen.js).

import {api, seg} from './api.js';
import {t} from './i18n.js';
import {fmtTime, h, setError, show, showError, shortId, tid} from './dom.js';
import {historyMsgEl} from './conv.js';
import {allLabels, labelChip, loadLabels} from './labels.js';
import {hideReopen, relabelReopen, showReopen, wireReopen} from './reopen.js';
import {S, agentName} from './state.js';

export const SUMMARY_MAX = 500;      // characters, as the API counts them
const LABELS_MAX = 5;               // per session
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

// The account's labels as checkboxes; at most LABELS_MAX ticked.
async function renderPicker() {
    const box = tid('wrapup-labels');
    box.replaceChildren();
    try {
        await loadLabels();
    } catch (e) {
        box.append(h('span', {class: 'muted'}, t('wrapup.labels.unavailable')));
        return;
    }
    const boxes = allLabels().map(l => h('input', {
        type: 'checkbox', value: l.id, dataset: {testid: 'wrapup-label'},
        onchange: limitPicks}));
    box.append(...allLabels().map((l, i) =>
        h('label', {class: 'label-pick'}, boxes[i], labelChip(l.name))));
    if (!boxes.length)
        box.append(h('span', {class: 'muted'}, t('wrapup.labels.none')));
}

function limitPicks() {
    const boxes = [...tid('wrapup-labels').querySelectorAll('input')];
    const full = boxes.filter(b => b.checked).length >= LABELS_MAX;
    for (const b of boxes)
        b.disabled = full && !b.checked;
    show(tid('wrapup-labels-max'), full);
}

function picked() {
    return [...tid('wrapup-labels').querySelectorAll('input:checked')]
        .map(b => Number(b.value));
}

// Asks for the summary and labels and closes openid's session with them.
// Resolves true once closed, false when the agent cancels.
export function wrapUp(openid) {
    const dlg = tid('wrapup-dialog');
    const form = tid('wrapup-form', dlg);
    const text = tid('wrapup-summary', dlg);
    const btn = tid('wrapup-submit', dlg);
    text.value = '';
    setError(tid('wrapup-error', dlg), '');
    show(tid('wrapup-labels-max', dlg), false);
    renderCount();
    renderPicker();
    return new Promise(resolve => {
        let closed = false;
        const onSubmit = async (ev) => {
            ev.preventDefault();
            const summary = text.value.trim();
            const labels = picked();
            const body = {};
            if (summary)
                body.summary = summary;
            if (labels.length)
                body.labels = labels;
            btn.disabled = true;
            try {
                await api.post('/api/v1/sessions/' + seg(openid) + '/close',
                               body);
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

const past = {q: '', label: '', next: null, rows: []};

function chips(names) {
    return h('span', {class: 'chips', dataset: {testid: 'past-labels'}},
             ...(Array.isArray(names) ? names : []).map(labelChip));
}

function pastItem(s) {
    const when = Date.parse(s.closed_at);
    const admin = S.me && S.me.role === 'admin';
    return h('li', {class: 'past-item', dataset: {testid: 'past-item',
                                                    session: s.id}},
             h('button', {type: 'button', class: 'past-open',
                          onclick: () => openPast(s)},
               h('span', {class: 'row1'},
                 h('span', {class: 'user', title: s.openid}, shortId(s.openid)),
                 admin && s.agent ?
                     h('span', {class: 'by', dataset: {testid: 'past-agent'}},
                       agentName(s.agent)) : null,
                 h('time', {class: 'muted'}, fmtTime(when))),
               chips(s.labels),
               s.summary ?
                   h('span', {class: 'summary', dataset: {testid: 'past-summary'}},
                     s.summary) :
                   h('span', {class: 'summary muted'}, t('wrapup.none'))));
}

// The label filter: every label of the account.
function renderFilter() {
    const sel = tid('past-label');
    sel.replaceChildren(h('option', {value: ''}, t('wrapup.label.all')),
                        ...allLabels().map(l => h('option', {value: l.name}, l.name)));
    sel.value = allLabels().some(l => l.name === past.label) ? past.label : '';
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
            q: past.q, label: past.label, limit: PAST_PAGE,
            before: more ? past.next : ''}});
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
    if (on)
        hideReopen();
}

async function openPast(s) {
    const dlg = tid('past-dialog');
    const ol = tid('past-messages', dlg);
    ol.replaceChildren();
    tid('past-title', dlg).textContent = t('wrapup.past.title', {
        user: shortId(s.openid), when: fmtTime(Date.parse(s.closed_at))});
    tid('past-view-summary', dlg).textContent = s.summary || t('wrapup.none');
    tid('past-view-labels', dlg).replaceChildren(chips(s.labels));
    setError(tid('past-view-error', dlg), '');
    showList(false);
    showReopen(s);
    try {
        const r = await api.get('/api/v1/sessions/' + seg(s.openid) +
                                '/transcript', {query: {session: s.id}});
        const rows = Array.isArray(r && r.messages) ? r.messages : [];
        ol.replaceChildren(...rows.map(historyMsgEl));
    } catch (e) {
        showError(tid('past-view-error', dlg), e);
    }
}

async function openPastDialog() {
    const dlg = tid('past-dialog');
    showList(true);
    dlg.showModal();
    try {
        await loadLabels();
    } catch (e) {
        /* the list still loads; chips are grey */
    }
    renderFilter();
    loadPast(false);
}

export function relabelWrapup() {
    if (tid('wrapup-dialog').open)
        renderCount();
    if (tid('past-dialog').open) {
        renderFilter();
        renderPast();
        relabelReopen();
    }
}

export function wireWrapup() {
    const dlg = tid('wrapup-dialog');
    tid('wrapup-summary', dlg).addEventListener('input', renderCount);
    tid('wrapup-cancel', dlg).addEventListener('click', () => dlg.close());
    const pd = tid('past-dialog');
    tid('past-open').addEventListener('click', openPastDialog);
    tid('past-open-admin').addEventListener('click', openPastDialog);
    tid('past-label', pd).addEventListener('change', () => {
        past.label = tid('past-label', pd).value;
        loadPast(false);
    });
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
    wireReopen();
}
