// wxkf console — canned replies (常用语): the `/` search in the composer
// (a substring of a reply's title or text, Chinese as typed, no pinyin;
// arrow keys choose, Enter or a click inserts the reply with its variables
// filled by the server for the open user, Esc closes) and the list a
// signed-in person manages: an agent its own replies (the shared ones
// shown read-only), an admin the account's shared ones, grouped in
// folders; both import and export CSV (GET/POST /api/v1/canned…).

import {api, request} from './api.js';
import {t} from './i18n.js';
import {confirmDialog, errInfo, h, saveBlob, setError, showError, tid, toast,
        toastError} from './dom.js';
import {S} from './state.js';

const PICK_MAX = 8;             // replies shown under a keyword
const CACHE_MS = 60000;         // a user's filled list is reused this long
const KEYWORD_MAX = 20;         // characters after '/'

// --- the search in the composer -------------------------------------------

// The replies matching keyword (any case), in list order: shared first,
// each list by folder and sort (as the API returns them).
export function matchCanned(list, keyword) {
    const k = String(keyword || '').toLowerCase();
    return list.filter(r => !k || (r.title + '\n' + r.text).toLowerCase()
        .includes(k)).slice(0, PICK_MAX);
}

// The '/keyword' the caret ends, at the start of the text or after a
// space or line break: {start, keyword}, else null.
export function slashAt(text, caret) {
    const before = text.slice(0, caret);
    const m = /(^|\s)\/([^\s/]*)$/.exec(before);
    if (!m || [...m[2]].length > KEYWORD_MAX)
        return null;
    return {start: caret - m[2].length - 1, keyword: m[2]};
}

const pick = {
    openid: null, list: null, at: 0, loading: null,
    open: false, start: 0, items: [], sel: 0,
};

// Drops what was loaded (after a change of the lists or a sign-out).
function forget() {
    pick.openid = null;
    pick.list = null;
    pick.loading = null;
}

async function listFor(openid) {
    if (pick.openid === openid && pick.list &&
        Date.now() - pick.at < CACHE_MS)
        return pick.list;
    if (pick.openid === openid && pick.loading)
        return pick.loading;
    pick.openid = openid;
    pick.list = null;
    const p = api.get('/api/v1/canned', {query: {openid}}).then((r) => {
        if (pick.loading !== p)
            return [];
        pick.loading = null;
        pick.list = (r && r.replies) || [];
        pick.at = Date.now();
        return pick.list;
    }, (e) => {
        if (pick.loading === p)
            pick.loading = null;
        throw e;
    });
    pick.loading = p;
    return p;
}

function closePicker() {
    pick.open = false;
    pick.items = [];
    const el = tid('canned-picker');
    el.hidden = true;
    el.replaceChildren();
    tid('composer-input').removeAttribute('aria-activedescendant');
}

function renderPicker(keyword) {
    const el = tid('canned-picker');
    el.replaceChildren();
    if (!pick.items.length) {
        el.append(h('li', {class: 'canned-none', dataset: {testid: 'canned-none'}},
                    t(pick.list && pick.list.length ? 'canned.nomatch'
                                                    : 'canned.empty')));
    }
    pick.items.forEach((r, i) => {
        const li = h('li', {
            role: 'option', id: 'canned-opt-' + i,
            'aria-selected': i === pick.sel ? 'true' : 'false',
            class: i === pick.sel ? 'sel' : '',
            dataset: {testid: 'canned-option', id: String(r.id)},
            onmousedown: (ev) => {
                ev.preventDefault();        // the composer keeps the focus
                pick.sel = i;
                insertChosen();
            }},
            h('span', {class: 'canned-title'}, r.title),
            r.folder ? h('span', {class: 'canned-folder'}, r.folder) : null,
            r.scope === 'shared' ? null :
                h('span', {class: 'canned-mine'}, t('canned.mine')),
            h('span', {class: 'canned-text'}, r.rendered || r.text));
        el.append(li);
    });
    el.dataset.keyword = keyword;
    el.hidden = false;
    const input = tid('composer-input');
    if (pick.items.length)
        input.setAttribute('aria-activedescendant', 'canned-opt-' + pick.sel);
    const cur = el.querySelector('.sel');
    if (cur)
        cur.scrollIntoView({block: 'nearest'});
}

async function onComposerInput() {
    const input = tid('composer-input');
    const openid = S.active;
    const at = openid && !input.disabled &&
        slashAt(input.value, input.selectionStart);
    if (!at) {
        if (pick.open)
            closePicker();
        return;
    }
    let list;
    try {
        list = await listFor(openid);
    } catch (e) {
        closePicker();
        toastError(e);
        return;
    }
    // the text may have changed while the list loaded
    const now = S.active === openid &&
        slashAt(input.value, input.selectionStart);
    if (!now) {
        closePicker();
        return;
    }
    const before = pick.open ? pick.items[pick.sel] : null;
    pick.open = true;
    pick.start = now.start;
    pick.items = matchCanned(list, now.keyword);
    pick.sel = Math.max(0, before ? pick.items.indexOf(before) : 0);
    renderPicker(now.keyword);
}

function insertChosen() {
    const r = pick.items[pick.sel];
    const input = tid('composer-input');
    if (!r)
        return;
    const text = r.rendered || r.text;
    const end = input.selectionStart;
    input.value = input.value.slice(0, pick.start) + text +
        input.value.slice(end);
    const caret = pick.start + text.length;
    closePicker();
    input.focus();
    input.setSelectionRange(caret, caret);
}

// Runs before the composer's own keys (capture on the form): while the
// list is open, arrows move, Enter and Tab insert, Esc closes.
function onComposerKey(ev) {
    if (!pick.open || ev.target !== tid('composer-input') || ev.isComposing ||
        ev.keyCode === 229)
        return;
    const n = pick.items.length;
    if (ev.key === 'Escape') {
        closePicker();
    } else if (!n) {
        if (ev.key === 'Enter')
            closePicker();      // nothing to insert: Enter sends as usual
        return;
    } else if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
        pick.sel = (pick.sel + (ev.key === 'ArrowDown' ? 1 : n - 1)) % n;
        renderPicker(tid('canned-picker').dataset.keyword || '');
    } else if ((ev.key === 'Enter' || ev.key === 'Tab') && !ev.shiftKey) {
        insertChosen();
    } else {
        return;
    }
    ev.preventDefault();
    ev.stopPropagation();
}

// --- the lists: an agent's own (and the shared, read-only), the admin's
// shared ------------------------------------------------------------------

let rows = [];              // GET /api/v1/canned
let editing = null;         // the row in the form, or {} for a new one
let root = null;            // where the manager is drawn

function writable(r) {
    return S.me && (S.me.role === 'admin' ? r.scope === 'shared'
                                          : r.scope === 'personal');
}

async function reload() {
    const err = tid('canned-error', root);
    try {
        const r = await api.get('/api/v1/canned');
        rows = (r && r.replies) || [];
        setError(err, '');
    } catch (e) {
        showError(err, e);
    }
    renderList();
}

function folderName(f) {
    return f || t('canned.nofolder');
}

function renderList() {
    if (!root)
        return;
    const box = tid('canned-list', root);
    const groups = [];
    const mineFirst = S.me && S.me.role === 'agent';
    const parts = mineFirst ?
        [['canned.part.mine', rows.filter(writable)],
         ['canned.part.shared', rows.filter(r => !writable(r))]] :
        [['canned.part.shared', rows]];
    for (const [label, list] of parts) {
        const folders = new Map();
        for (const r of list) {
            if (!folders.has(r.folder))
                folders.set(r.folder, []);
            folders.get(r.folder).push(r);
        }
        const sec = h('section', {class: 'canned-part',
                                  dataset: {testid: 'canned-part'}},
                      h('h3', {}, t(label, {n: list.length})));
        if (!list.length)
            sec.append(h('p', {class: 'muted'}, t('canned.none')));
        for (const [folder, items] of folders) {
            sec.append(h('h4', {class: 'canned-folder-head',
                                dataset: {testid: 'canned-folder'}},
                         folderName(folder)));
            const ul = h('ul', {class: 'canned-rows'});
            for (const r of items)
                ul.append(rowNode(r));
            sec.append(ul);
        }
        groups.push(sec);
    }
    box.replaceChildren(...groups);
    const dl = tid('canned-folders', root);
    dl.replaceChildren(...[...new Set(rows.filter(writable)
        .map(r => r.folder).filter(Boolean))]
        .map(f => h('option', {value: f})));
}

function rowNode(r) {
    const li = h('li', {class: 'canned-row',
                        dataset: {testid: 'canned-row', id: String(r.id),
                                  scope: r.scope}},
                 h('div', {class: 'canned-row-head'},
                   h('span', {class: 'canned-title',
                              dataset: {testid: 'canned-row-title'}}, r.title),
                   h('span', {class: 'muted'}, t('canned.sort', {n: r.sort}))),
                 h('div', {class: 'canned-text',
                           dataset: {testid: 'canned-row-text'}}, r.text));
    if (writable(r)) {
        li.append(h('div', {class: 'canned-actions'},
            h('button', {type: 'button', dataset: {testid: 'canned-edit'},
                         onclick: () => openForm(r)}, t('canned.edit')),
            h('button', {type: 'button', class: 'danger',
                         dataset: {testid: 'canned-remove'},
                         onclick: () => removeRow(r)}, t('canned.remove'))));
    }
    return li;
}

function openForm(r) {
    editing = r || {};
    const f = tid('canned-form', root);
    f.elements.folder.value = editing.folder || '';
    f.elements.title.value = editing.title || '';
    f.elements.text.value = editing.text || '';
    f.elements.sort.value = editing.sort !== undefined ? editing.sort : 0;
    tid('canned-form-heading', root).textContent =
        t(editing.id ? 'canned.form.edit' : 'canned.form.new');
    setError(tid('canned-form-error', root), '');
    f.hidden = false;
    f.elements.title.focus();
}

function closeForm() {
    editing = null;
    tid('canned-form', root).hidden = true;
}

async function saveForm(ev) {
    ev.preventDefault();
    const f = ev.target;
    const body = {
        folder: f.elements.folder.value.trim(),
        title: f.elements.title.value.trim(),
        text: f.elements.text.value,
        sort: Number(f.elements.sort.value || 0),
    };
    const err = tid('canned-form-error', root);
    if (!body.title || !body.text.trim()) {
        setError(err, t('canned.form.required'));
        return;
    }
    if (!Number.isInteger(body.sort) || body.sort < 0 || body.sort > 1000000) {
        setError(err, t('canned.form.sort'));
        return;
    }
    try {
        if (editing && editing.id)
            await api.patch('/api/v1/canned/' + editing.id, body);
        else
            await api.post('/api/v1/canned', body);
    } catch (e) {
        showError(err, e);
        return;
    }
    toast(t('canned.saved', {title: body.title}));
    closeForm();
    forget();
    reload();
}

async function removeRow(r) {
    if (!await confirmDialog(t('canned.remove.confirm', {title: r.title})))
        return;
    try {
        await api.del('/api/v1/canned/' + r.id);
    } catch (e) {
        toastError(e);
        return;
    }
    toast(t('canned.removed', {title: r.title}));
    forget();
    reload();
}

async function importFile(file) {
    const err = tid('canned-error', root);
    const list = tid('canned-import-rows', root);
    list.replaceChildren();
    setError(err, '');
    const replace = tid('canned-replace', root).checked;
    if (replace && !await confirmDialog(t('canned.replace.confirm')))
        return;
    let r;
    try {
        r = await request('POST', '/api/v1/canned/import', {
            body: file, type: 'text/csv',
            query: {replace: replace ? '1' : ''}});
    } catch (e) {
        const {msg, details} = errInfo(e);
        const b = e && e.body || {};
        setError(err, msg, b.detail || details);
        for (const row of Array.isArray(b.rows) ? b.rows : []) {
            list.append(h('li', {dataset: {testid: 'canned-import-row'}},
                          t('canned.import.row', {row: row.row,
                                                  msg: row.message})));
        }
        if (b.more_rows)
            list.append(h('li', {}, t('canned.import.more', {n: b.more_rows})));
        return;
    }
    toast(t('canned.imported', {n: r.imported}));
    forget();
    reload();
}

async function exportFile() {
    const scope = S.me.role === 'admin' ? 'shared' : 'personal';
    try {
        const blob = await request('GET', '/api/v1/canned/export',
                                   {query: {scope}, blob: true});
        saveBlob(blob, 'canned-' + scope + '.csv');
    } catch (e) {
        toastError(e);
    }
}

// The manager's markup, drawn into el (the admin's section, the agent's
// dialog).
function draw(el) {
    root = el;
    const file = h('input', {type: 'file', accept: '.csv,text/csv',
                             dataset: {testid: 'canned-import'},
                             onchange: (ev) => {
                                 const f = ev.target.files && ev.target.files[0];
                                 ev.target.value = '';
                                 if (f)
                                     importFile(f);
                             }});
    el.replaceChildren(
        h('p', {class: 'muted'}, t(S.me.role === 'admin' ? 'canned.intro.admin'
                                                          : 'canned.intro.agent')),
        h('div', {class: 'canned-tools'},
          h('button', {type: 'button', class: 'primary',
                       dataset: {testid: 'canned-new'},
                       onclick: () => openForm(null)}, t('canned.new')),
          h('label', {class: 'file-btn'}, h('span', {}, t('canned.import')), file),
          h('label', {class: 'check'},
            h('input', {type: 'checkbox', dataset: {testid: 'canned-replace'}}),
            t('canned.replace')),
          h('button', {type: 'button', dataset: {testid: 'canned-export'},
                       onclick: exportFile}, t('canned.export'))),
        h('p', {class: 'error', dataset: {testid: 'canned-error'},
                role: 'alert', hidden: true}),
        h('ul', {class: 'canned-import-rows',
                 dataset: {testid: 'canned-import-rows'}}),
        h('form', {class: 'canned-form card', dataset: {testid: 'canned-form'},
                   novalidate: true, hidden: true, onsubmit: saveForm},
          h('h3', {dataset: {testid: 'canned-form-heading'}}),
          h('label', {}, h('span', {}, t('canned.folder')),
            h('input', {name: 'folder', maxlength: '32', list: 'canned-folders',
                        autocomplete: 'off', dataset: {testid: 'canned-folder-input'},
                        placeholder: t('canned.folder.hint')})),
          h('datalist', {id: 'canned-folders', dataset: {testid: 'canned-folders'}}),
          h('label', {}, h('span', {}, t('canned.title')),
            h('input', {name: 'title', maxlength: '64', autocomplete: 'off',
                        dataset: {testid: 'canned-title-input'}})),
          h('label', {}, h('span', {}, t('canned.text')),
            h('textarea', {name: 'text', rows: '4', maxlength: '1000',
                           dataset: {testid: 'canned-text-input'},
                           placeholder: t('canned.text.hint')})),
          h('label', {}, h('span', {}, t('canned.sortlabel')),
            h('input', {name: 'sort', type: 'number', min: '0', max: '1000000',
                        dataset: {testid: 'canned-sort-input'}})),
          h('p', {class: 'error', dataset: {testid: 'canned-form-error'},
                  hidden: true}),
          h('div', {class: 'buttons'},
            h('button', {type: 'button', dataset: {testid: 'canned-cancel'},
                         onclick: closeForm}, t('cancel')),
            h('button', {type: 'submit', class: 'primary',
                         dataset: {testid: 'canned-save'}}, t('canned.save')))),
        h('div', {class: 'canned-list', dataset: {testid: 'canned-list'}}));
    editing = null;
    reload();
}

// --- hooks for admin.js and workspace.js -----------------------------------

export function enterCannedAdmin() {
    draw(tid('canned-admin'));
}

export function leaveCanned() {
    forget();
    rows = [];
    editing = null;
    if (root)
        root.replaceChildren();
    root = null;
    if (pick.open)
        closePicker();
}

// After a change of language: drawn again in it.
export function relabelCanned() {
    if (root && S.me)
        draw(root);
}

export function wireCanned() {
    tid('composer').addEventListener('keydown', onComposerKey, true);
    tid('composer-input').addEventListener('input', onComposerInput);
    tid('composer-input').addEventListener('blur', () => {
        if (pick.open)
            closePicker();
    });
    tid('composer').addEventListener('submit', () => {
        if (pick.open)
            closePicker();
    });
    const dlg = tid('canned-dialog');
    tid('canned-open').addEventListener('click', () => {
        draw(tid('canned-manage'));
        dlg.showModal();
    });
    tid('canned-close').addEventListener('click', () => dlg.close());
    dlg.addEventListener('close', () => {
        if (root === tid('canned-manage'))
            leaveCanned();
    });
}
