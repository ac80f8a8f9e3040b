// wxkf console — WeChat's customer-service limits for one conversation,
// computed from its messages as the server counts them (pure: no DOM, no
// strings; test/browser/units.test.mjs runs it in node).
//
// The rule (docs/wechat-protocol.md §8; lib/lua/ingest.lua opens the
// window, lib/lua/outbound.lua checks it before WeChat is called): a
// user's message opens 48 hours with 5 sends; a menu click, a subscribe or
// a QR scan opens 1 minute with 3 sends, unless a message's window is
// still open. A send WeChat refused is given back. The server's own count
// (`left` in the answer to a send, newer than the user's last message)
// lowers ours: sends the console never saw (another tab) count too.

export const WINDOW_MSG_MS = 48 * 3600 * 1000;
export const QUOTA_MSG = 5;
export const WINDOW_EVT_MS = 60 * 1000;
export const QUOTA_EVT = 3;

const MSG_TYPES = new Set(['text', 'image', 'voice', 'video', 'shortvideo',
                           'location', 'link', 'file']);
const EVT_OPENERS = new Set(['click', 'subscribe', 'scan']);

// 'msg', 'evt' or '' (opens nothing) for an inbound message
// {msgtype, event}.
export function opens(m) {
    if (m.msgtype === 'event')
        return EVT_OPENERS.has(String(m.event || '').toLowerCase()) ? 'evt' : '';
    return MSG_TYPES.has(m.msgtype) ? 'msg' : '';
}

// msgs: [{dir: 'in'|'out', ts (ms), msgtype, event, state}] in time order;
// reply: {left, at} from the newest send's answer, or null.
// → null when no user message is known, else {kind, endsAt, open, quota,
// left, blocked: '' | 'window' | 'budget'}.
export function windowState(msgs, now, reply) {
    let win = null;
    for (const m of msgs) {
        const ts = Number(m.ts) || 0;
        if (m.dir === 'in') {
            const k = opens(m);
            const msgOpen = win && win.kind === 'msg' &&
                ts - win.last <= WINDOW_MSG_MS;
            if (k === 'msg' || (k === 'evt' && !msgOpen))
                win = {kind: k, last: ts, sent: 0};
        } else if (win && m.state !== 'failed' && ts >= win.last) {
            win.sent++;
        }
    }
    if (!win)
        return null;
    const span = win.kind === 'msg' ? WINDOW_MSG_MS : WINDOW_EVT_MS;
    const quota = win.kind === 'msg' ? QUOTA_MSG : QUOTA_EVT;
    let left = Math.max(0, quota - win.sent);
    if (reply && Number.isFinite(reply.left) && reply.at >= win.last)
        left = Math.max(0, Math.min(left, reply.left));
    const endsAt = win.last + span;
    const open = now <= endsAt;
    return {kind: win.kind, endsAt, open, quota, left,
            blocked: !open ? 'window' : left <= 0 ? 'budget' : ''};
}
