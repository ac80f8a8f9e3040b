// wxkf console — the composer's emoji picker: WeChat's classic faces
// (emoji.js FACES, WeChat's own order) as the Unicode emoji the console
// shows them as; a click inserts the emoji at the caret. WeChat shows
// Unicode emoji in a user's chat as they are, so nothing is translated
// back into WeChat's "/::)" codes.

import {FACES} from './emoji.js';
import {h, tid} from './dom.js';

// Each emoji once (some faces share one), with its first face's name.
export const PICKS = FACES.filter(([, , e], i) =>
    FACES.findIndex(f => f[2] === e) === i).map(([, name, emoji]) => ({name, emoji}));

// Inserts text at the textarea's caret (replacing a selection).
export function insertAt(input, text) {
    const {selectionStart: a, selectionEnd: b, value} = input;
    input.value = value.slice(0, a) + text + value.slice(b);
    input.selectionStart = input.selectionEnd = a + text.length;
    input.dispatchEvent(new Event('input', {bubbles: true}));
}

function close(panel, btn) {
    panel.hidden = true;
    btn.setAttribute('aria-expanded', 'false');
}

export function wireEmojiPicker() {
    const btn = tid('emoji-open');
    const panel = tid('emoji-panel');
    const input = tid('composer-input');
    panel.replaceChildren(...PICKS.map(({name, emoji}) =>
        h('button', {type: 'button', class: 'emoji-pick', title: name,
                     'aria-label': name, dataset: {testid: 'emoji-pick'},
                     onclick: () => {
                         insertAt(input, emoji);
                         close(panel, btn);
                         input.focus();
                     }}, emoji)));
    btn.addEventListener('click', () => {
        panel.hidden = !panel.hidden;
        btn.setAttribute('aria-expanded', String(!panel.hidden));
    });
    document.addEventListener('keydown', (ev) => {
        if (ev.key === 'Escape' && !panel.hidden)
            close(panel, btn);
    });
    document.addEventListener('click', (ev) => {
        if (!panel.hidden && !panel.contains(ev.target) && !btn.contains(ev.target))
            close(panel, btn);
    });
}
