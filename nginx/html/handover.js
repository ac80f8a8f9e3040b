// wxkf console — where a conversation came from (docs/api.md, `handed` and
// `from_queue` of GET /api/v1/me/sessions): a badge on the conversation
// in the list (转接 / 来自排队) and a banner in the conversation pane
// ("由 小安 转接：<note>", "用户排队 3分0秒 后接入…") until the agent has
// answered (the session's `answered`, or a reply of ours since the
// session came) or dismissed it; and the note the giver writes in the
// transfer dialog.

import {t} from './i18n.js';
import {fmtDur, h, num, tid} from './dom.js';
import {S, agentName} from './state.js';

// Banners dismissed, by openid + when the session came (a later handover
// of the same user shows its own banner).
const dismissed = new Set();

function keyOf(s) {
    return s.openid + ':' + (s.handed ? num(s.handed.at_ms) : num(s.assigned_ms));
}

// Who passed it on, in words: the nickname the giver had, else its
// account as the colleagues list names it; an admin as such.
function giver(hd) {
    if (!hd.from)
        return t('handover.admin');
    return hd.from_nick || agentName(hd.from);
}

function waited(q) {
    return fmtDur((num(q.waited_s) || 0) * 1000);
}

// What an assignment event of the feed (docs/api.md: by, by_nick, note;
// waited_ms) says of where the session came from, as GET
// /api/v1/me/sessions will say it: {handed} and/or {from_queue}.
export function handoverOf(e) {
    const out = {};
    if (typeof e.note === 'string')
        out.handed = {from: e.by || '', from_nick: e.by_nick || '',
                      note: e.note, at_ms: num(e.ts_ms) || Date.now()};
    if (e.waited_ms !== undefined)
        out.from_queue = {waited_s: Math.floor((num(e.waited_ms) || 0) / 1000)};
    return out;
}

// The badge of a session handed over or taken from the queue, or null.
export function handoverBadge(s) {
    if (s.handed)
        return h('span', {class: 'handover', title: t('handover.badge.handed.title',
                                                      {who: giver(s.handed)}),
                          dataset: {testid: 'session-handover', kind: 'handed'}},
                 t('handover.badge.handed'));
    if (s.from_queue)
        return h('span', {class: 'handover queue',
                          title: t('handover.badge.queue.title', {d: waited(s.from_queue)}),
                          dataset: {testid: 'session-handover', kind: 'queue'}},
                 t('handover.badge.queue'));
    return null;
}

// Has the agent answered since the session came? The server's flag, or a
// reply of ours in the conversation after it came (the flag comes with
// the next session list).
function answered(s) {
    if (s.answered === true)
        return true;
    const since = num(s.assigned_ms) || 0;
    const c = S.convs.get(s.openid);
    return !!(c && c.msgs.some(m => m.dir === 'out' && m.by !== 'wxkf' &&
                                    (m.ts || 0) >= since));
}

// The open conversation's banner: shown, filled or hidden.
export function renderHandover() {
    const box = tid('handover-banner');
    const s = S.active && S.sessions.get(S.active);
    const on = !!(s && (s.handed || s.from_queue) && !answered(s) &&
                  !dismissed.has(keyOf(s)));
    box.hidden = !on;
    if (!on)
        return;
    const text = tid('handover-text', box);
    if (s.handed) {
        const who = giver(s.handed);
        text.textContent = s.handed.note
            ? t('handover.banner.handed', {who, note: s.handed.note})
            : t('handover.banner.handed.plain', {who});
        box.dataset.kind = 'handed';
    } else {
        text.textContent = num(s.from_queue.waited_s) >= 1
            ? t('handover.banner.queue', {d: waited(s.from_queue)})
            : t('handover.banner.queue.short');
        box.dataset.kind = 'queue';
    }
}

// The transfer dialog's note: empty when it opens, sent when written.
export function resetNote(dlg) {
    tid('transfer-note', dlg).value = '';
}

export function withNote(dlg, body) {
    const note = tid('transfer-note', dlg).value.trim();
    if (note)
        body.note = note;
    return body;
}

export function wireHandover() {
    tid('handover-dismiss').addEventListener('click', () => {
        const s = S.active && S.sessions.get(S.active);
        if (s)
            dismissed.add(keyOf(s));
        renderHandover();
    });
}
