// wxkf console — who the user is: the profile dialog of the open
// conversation (GET /api/v1/users/{openid}/profile). What WeChat's
// user/info said, the display name (wxkf only) and the remark (pushed to
// WeChat, at most 30 characters), the agents' notes (changed by their
// author or an admin) and the user's past sessions, each opening its
// transcript. Data goes into the page as text only (dom.js h()).

import {api, ApiError, seg} from './api.js';
import {t} from './i18n.js';
import {errInfo, fmtTime, h, setError, shortId, show, tid} from './dom.js';
import {S, agentName} from './state.js';
import {typeLabel} from './conv.js';
import {labelChip} from './labels.js';
import {tagChips} from './user_tags.js';

const REMARK_MAX = 30;      // WeChat's limit (characters)
const NAME_MAX = 64;
const NOTE_MAX = 2000;

let current = null;         // {openid, page} of the open dialog
const names = new Map();    // openid -> display name, for the title

const chars = (s) => Array.from(String(s || '')).length;
const when = (iso) => iso ? fmtTime(Date.parse(iso)) : t('none');

// The display name the agents gave openid, if the console has seen it.
export function displayName(openid) {
    return names.get(openid) || '';
}

// How a user is shown in lists and headers: the display name with the
// OpenID shortened, else the shortened OpenID.
export function userLabel(openid) {
    const n = displayName(openid);
    return n ? n + ' · ' + shortId(openid) : shortId(openid);
}

// Learns openid's display name once (the profile's first read), quietly:
// a user the agent may not read, or an unreachable server, just keeps
// its OpenID. Tells the page with a wxkf:profile event.
export async function learnName(openid) {
    if (!openid || names.has(openid))
        return;
    names.set(openid, '');
    try {
        const p = await api.get('/api/v1/users/' + seg(openid) + '/profile');
        if (p.display_name) {
            names.set(openid, p.display_name);
            document.dispatchEvent(new CustomEvent('wxkf:profile', {detail: openid}));
        }
    } catch (e) {
        names.delete(openid);
    }
}

// An error of these routes in the console's words: WeChat's refusals of
// the remark by errcode, the rest as everywhere (err.code.*).
function profileErr(e) {
    const out = errInfo(e);
    if (e instanceof ApiError && e.code === 'wechat_refused' && e.body) {
        const key = 'profile.wx.' + Number(e.body.errcode);
        const msg = t(key);
        if (msg !== key)
            out.msg = msg;
    }
    return out;
}

function showErr(el, e) {
    const {msg, details} = profileErr(e);
    setError(el, msg, details);
}

function row(label, value, id) {
    return h('div', {class: 'profile-row'},
             h('span', {class: 'muted'}, label),
             h('span', {dataset: {testid: id}}, value));
}

function infoRows(p) {
    const box = tid('profile-info');
    const i = p.info;
    const kids = [];
    if (p.fetch_error) {
        kids.push(h('p', {class: 'error', dataset: {testid: 'profile-fetch-error'}},
                    t('profile.fetch_failed', {errcode: p.fetch_error.errcode})));
    }
    if (!i) {
        if (!p.fetch_error)
            kids.push(h('p', {class: 'muted', dataset: {testid: 'profile-pending'}},
                        t('profile.pending')));
        box.replaceChildren(...kids);
        return;
    }
    kids.push(row(t('profile.subscribe'), i.subscribe ? t('profile.subscribed') :
                  t('profile.unsubscribed'), 'profile-subscribe'));
    if (i.subscribe_time)
        kids.push(row(t('profile.subscribe_time'), fmtTime(i.subscribe_time * 1000),
                      'profile-subscribe-time'));
    if (i.subscribe_scene) {
        const key = 'profile.scene.' + i.subscribe_scene;
        const s = t(key);
        kids.push(row(t('profile.scene'), s === key ? i.subscribe_scene : s,
                      'profile-scene'));
    }
    if (i.language) {
        const key = 'profile.lang.' + i.language;
        const l = t(key);
        kids.push(row(t('profile.language'), l === key ? i.language : l,
                      'profile-language'));
    }
    const tags = tagChips(p);
    if (tags)
        kids.push(h('div', {class: 'profile-row'},
                    h('span', {class: 'muted'}, t('profile.tags')), tags));
    if (i.unionid)
        kids.push(row('UnionID', i.unionid, 'profile-unionid'));
    if (i.qr_scene || i.qr_scene_str)
        kids.push(row(t('profile.qr_scene'), i.qr_scene_str || String(i.qr_scene),
                      'profile-qr'));
    kids.push(h('p', {class: 'muted small'},
                t('profile.fetched', {t: when(p.fetched_at)})));
    box.replaceChildren(...kids);
}

function mayChange(note) {
    return S.me && (S.me.role === 'admin' || note.author === S.me.account);
}

function noteItem(n) {
    const li = h('li', {dataset: {testid: 'profile-note', id: String(n.id)}},
                 h('div', {class: 'muted small'},
                   t('profile.note_by', {who: n.author === 'admin' ?
                                          t('role.admin') : agentName(n.author),
                                          t: when(n.created_at)})),
                 h('div', {class: 'note-body', dataset: {testid: 'profile-note-body'}},
                   n.body));
    if (mayChange(n)) {
        li.append(h('div', {class: 'buttons'},
            h('button', {type: 'button', class: 'link',
                         dataset: {testid: 'profile-note-edit'},
                         onclick: () => editNote(li, n)}, t('profile.note_edit')),
            h('button', {type: 'button', class: 'link danger',
                         dataset: {testid: 'profile-note-delete'},
                         onclick: () => deleteNote(n)}, t('profile.note_delete'))));
    }
    return li;
}

function editNote(li, n) {
    const area = h('textarea', {rows: 2, maxlength: NOTE_MAX,
                                dataset: {testid: 'profile-note-input-edit'}});
    area.value = n.body;
    const err = h('p', {class: 'error', hidden: true});
    const save = async () => {
        try {
            await api.patch(notePath(n.id), {body: area.value.trim()});
            await reload();
        } catch (e) {
            showErr(err, e);
        }
    };
    li.replaceChildren(area, err, h('div', {class: 'buttons'},
        h('button', {type: 'button', onclick: () => reload()}, t('cancel')),
        h('button', {type: 'button', class: 'primary',
                     dataset: {testid: 'profile-note-save'}, onclick: save},
          t('profile.save'))));
    area.focus();
}

async function deleteNote(n) {
    try {
        await api.del(notePath(n.id));
        await reload();
    } catch (e) {
        showErr(tid('profile-notes-error'), e);
    }
}

function notePath(id) {
    return '/api/v1/users/' + seg(current.openid) + '/notes' +
        (id ? '?id=' + encodeURIComponent(String(id)) : '');
}

function sessionItem(s) {
    const who = s.agent ? (s.agent_nick || agentName(s.agent)) : t('none');
    const li = h('li', {dataset: {testid: 'profile-session', id: String(s.id)}},
        h('div', {},
          h('span', {}, when(s.opened_at)),
          h('span', {class: 'muted'}, ' · ' + who + ' · ' +
            t('profile.messages', {n: s.messages})),
          s.closed_at ? null : h('span', {class: 'open-now'}, t('profile.open'))),
        // the wrap-up the session was closed with (i17-wrapup)
        s.summary ? h('p', {class: 'past-summary', dataset: {testid: 'profile-session-summary'}},
                      s.summary) : null,
        Array.isArray(s.labels) && s.labels.length ?
            h('span', {class: 'chips', dataset: {testid: 'profile-session-labels'}},
              ...s.labels.map(labelChip)) : null,
        h('button', {type: 'button', class: 'link',
                     dataset: {testid: 'profile-transcript-open'},
                     onclick: () => openTranscript(s, li)},
          t('profile.transcript')));
    return li;
}

async function openTranscript(s, li) {
    const old = li.querySelector('.transcript');
    if (old) {
        old.remove();
        return;
    }
    const box = h('ol', {class: 'transcript', dataset: {testid: 'profile-transcript'}});
    li.append(box);
    try {
        const r = await api.get('/api/v1/sessions/' + seg(current.openid) + '/transcript',
                                {query: {session: String(s.id), limit: '200'}});
        const rows = (r.messages || []).map(m => h('li',
            {class: m.direction === 'out' ? 'out' : 'in'},
            h('span', {class: 'muted small'}, fmtTime(Date.parse(m.created_at)) + ' ' +
              (m.direction === 'out' ? agentName(m.agent || '') : t('profile.user')) + '：'),
            typeLabel({msgtype: m.msgtype, content: m.content, payload: m.payload,
                       event: m.payload && m.payload.Event})));
        box.replaceChildren(...(rows.length ? rows :
            [h('li', {class: 'muted'}, t('profile.transcript_empty'))]));
    } catch (e) {
        const p = h('p', {class: 'error'});
        showErr(p, e);
        box.replaceChildren(p);
    }
}

function render(p) {
    current.page = p;
    names.set(current.openid, p.display_name || '');
    tid('profile-heading').textContent = p.display_name || t('profile.unnamed');
    tid('profile-openid').textContent = current.openid;
    infoRows(p);
    tid('profile-name').value = p.display_name || '';
    tid('profile-remark').value = p.remark || '';
    countRemark();
    tid('profile-notes').replaceChildren(...(p.notes || []).map(noteItem));
    show(tid('profile-notes-empty'), !(p.notes || []).length);
    tid('profile-sessions').replaceChildren(...(p.sessions || []).map(sessionItem));
    show(tid('profile-sessions-empty'), !(p.sessions || []).length);
    document.dispatchEvent(new CustomEvent('wxkf:profile', {detail: current.openid}));
}

async function reload() {
    if (!current)
        return;
    const openid = current.openid;
    try {
        const p = await api.get('/api/v1/users/' + seg(openid) + '/profile');
        if (current && current.openid === openid)
            render(p);
    } catch (e) {
        showErr(tid('profile-error'), e);
    }
}

function countRemark() {
    const n = chars(tid('profile-remark').value);
    const el = tid('profile-remark-count');
    el.textContent = t('profile.remark_count', {n, max: REMARK_MAX});
    el.classList.toggle('over', n > REMARK_MAX);
}

async function saveFields(ev) {
    ev.preventDefault();
    const err = tid('profile-save-error');
    setError(err, '');
    setError(tid('profile-saved'), '');
    const name = tid('profile-name').value.trim();
    const remark = tid('profile-remark').value.trim();
    if (chars(remark) > REMARK_MAX) {
        setError(err, t('profile.remark_long', {max: REMARK_MAX}));
        return;
    }
    if (chars(name) > NAME_MAX) {
        setError(err, t('profile.name_long', {max: NAME_MAX}));
        return;
    }
    const body = {};
    const p = current.page || {};
    if (name !== (p.display_name || ''))
        body.display_name = name;
    if (remark !== (p.remark || ''))
        body.remark = remark;
    if (!Object.keys(body).length)
        return;
    const btn = tid('profile-save');
    btn.disabled = true;
    try {
        const out = await api.patch('/api/v1/users/' + seg(current.openid) + '/profile', body);
        render(out);
        setError(tid('profile-saved'), t('profile.saved'));
    } catch (e) {
        showErr(err, e);
    } finally {
        btn.disabled = false;
    }
}

async function addNote() {
    const area = tid('profile-note-input');
    const body = area.value.trim();
    const err = tid('profile-notes-error');
    setError(err, '');
    if (!body)
        return;
    try {
        await api.post(notePath(null), {body});
        area.value = '';
        await reload();
    } catch (e) {
        showErr(err, e);
    }
}

export function openProfile(openid) {
    if (!openid)
        return;
    current = {openid, page: null};
    for (const id of ['profile-error', 'profile-save-error', 'profile-saved',
                      'profile-notes-error'])
        setError(tid(id), '');
    tid('profile-heading').textContent = t('profile.loading');
    tid('profile-openid').textContent = openid;
    tid('profile-info').replaceChildren();
    tid('profile-notes').replaceChildren();
    tid('profile-sessions').replaceChildren();
    const dlg = tid('profile-dialog');
    if (!dlg.open)
        dlg.showModal();
    reload();
}

export function wireProfile() {
    tid('profile-open').addEventListener('click', () => openProfile(S.active));
    tid('profile-close').addEventListener('click', () => {
        current = null;
        tid('profile-dialog').close();
    });
    tid('profile-dialog').addEventListener('close', () => { current = null; });
    tid('profile-form').addEventListener('submit', saveFields);
    tid('profile-remark').addEventListener('input', countRemark);
    tid('profile-note-add').addEventListener('click', addNote);
}
