// wxkf console — the account's wrap-up labels (售后, 退款, …):
//   the list every signed-in console reads (GET /api/v1/labels) and the
//   chip a label is shown as (its colour, its name as text);
//   admin: add, rename, recolour and remove them (POST, PATCH, DELETE).

import {api} from './api.js';
import {t} from './i18n.js';
import {confirmDialog, h, setError, show, showError, tid, toast, toastError}
    from './dom.js';

export const LABEL_NAME_MAX = 20;   // characters, as the API counts them
let labels = [];                    // [{id, name, color}]

const COLOR = /^#[0-9a-f]{6}$/;

export function allLabels() {
    return labels;
}

export async function loadLabels() {
    const r = await api.get('/api/v1/labels');
    labels = Array.isArray(r && r.labels) ? r.labels : [];
    return labels;
}

// A label as a chip: by name; the colour of the account's label of that
// name (sessions keep the name they were closed with), else grey.
export function labelChip(name) {
    const l = labels.find(x => x.name === name);
    const chip = h('span', {class: 'label-chip', dataset: {testid: 'label-chip'}},
                   name);
    if (l && COLOR.test(l.color))
        chip.style.setProperty('--label', l.color);
    return chip;
}

// --- admin -------------------------------------------------------------------

function labelRow(l) {
    const name = h('input', {value: l.name, maxlength: 40, 'aria-label': t('labels.name'),
                             dataset: {testid: 'label-name'}});
    const color = h('input', {type: 'color', value: l.color,
                              'aria-label': t('labels.color'),
                              dataset: {testid: 'label-color'}});
    const save = async () => {
        const body = {};
        if (name.value.trim() !== l.name)
            body.name = name.value.trim();
        if (color.value !== l.color)
            body.color = color.value;
        if (!Object.keys(body).length)
            return;
        try {
            await api.patch('/api/v1/labels/' + l.id, body);
            toast(t('labels.saved'));
            await renderLabels();
        } catch (e) {
            toastError(e);
        }
    };
    const remove = async () => {
        if (!await confirmDialog(t('labels.remove.confirm', {name: l.name})))
            return;
        try {
            await api.del('/api/v1/labels/' + l.id);
            await renderLabels();
        } catch (e) {
            toastError(e);
        }
    };
    return h('li', {class: 'label-row', dataset: {testid: 'label-row', id: l.id}},
             labelChip(l.name), name, color,
             h('button', {type: 'button', onclick: save,
                          dataset: {testid: 'label-save'}}, t('labels.save')),
             h('button', {type: 'button', class: 'danger', onclick: remove,
                          dataset: {testid: 'label-remove'}}, t('labels.remove')));
}

export async function renderLabels() {
    const err = tid('labels-error');
    try {
        await loadLabels();
        setError(err, '');
    } catch (e) {
        showError(err, e);
    }
    tid('labels-list').replaceChildren(...labels.map(labelRow));
    show(tid('labels-empty'), labels.length === 0);
}

async function addLabel(ev) {
    ev.preventDefault();
    const err = tid('label-add-error');
    const name = tid('label-add-name').value.trim();
    if (!name)
        return;
    try {
        await api.post('/api/v1/labels', {name, color: tid('label-add-color').value});
        tid('label-add-name').value = '';
        setError(err, '');
        toast(t('labels.added'));
        await renderLabels();
    } catch (e) {
        showError(err, e);
    }
}

export function wireLabels() {
    tid('label-add-form').addEventListener('submit', addLabel);
}
