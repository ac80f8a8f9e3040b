// wxkf console — what routing adds to a conversation: the typing
// indicator the user sees while the agent types (POST
// /api/v1/sessions/{openid}/typing, at most once every 10 s per user, only
// while the composer may send), the mark on wxkf's own messages (the
// greeting of [texts] greeting, the leave-a-message text), and the badge
// of a returning customer ([routing] returning: the session's `why`).

import {api, seg} from './api.js';
import {t} from './i18n.js';
import {h, tid} from './dom.js';
import {S} from './state.js';

export const TYPING_GAP_MS = 10000;     // the server's gap (lib/outbound.h)

const lastTyping = new Map();           // openid -> ms of the last call

// The composer's input: tell the server the agent is typing, no more
// often than the server would pass it on. Failures are not the agent's
// concern (the indicator is a courtesy): nothing is shown.
function onComposerInput() {
    const openid = S.active;
    const text = tid('composer-input').value;
    if (!openid || !text.trim() || tid('composer-send').disabled)
        return;
    const now = Date.now();
    if (now - (lastTyping.get(openid) || 0) < TYPING_GAP_MS)
        return;
    lastTyping.set(openid, now);
    api.post('/api/v1/sessions/' + seg(openid) + '/typing', null)
        .catch(() => {});
}

export function wireTyping() {
    tid('composer-input').addEventListener('input', onComposerInput);
}

// A message wxkf sent by itself (by = "wxkf"), marked: the greeting, or
// another automatic text. null for anyone else's.
export function autoMark(m) {
    if (m.by !== 'wxkf')
        return null;
    const greeting = m.marker === 'greeting';
    return h('span', {class: 'auto', dataset: {testid: 'message-auto',
                                               marker: m.marker || ''}},
             t(greeting ? 'routing.greeting' : 'routing.auto'));
}

// Does a feed event concern the user still waiting for an answer? wxkf's
// own texts are no answer: they leave the unread count and the wait.
export function isAutomatic(e) {
    return e.by === 'wxkf';
}

// The badge of a session routed back to its agent, or null.
export function returningBadge(s) {
    const reason = (s.why && s.why.reason) || s.reason || '';
    if (reason !== 'returning')
        return null;
    return h('span', {class: 'returning', title: t('routing.returning.title'),
                      dataset: {testid: 'session-returning'}},
             t('routing.returning'));
}
