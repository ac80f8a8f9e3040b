// wxkf console — the agent's attention: the unread count in the page
// title, and while the tab is hidden a sound and a desktop notification
// (Notification API) for a new user and for a new message. Permission is
// asked once, on the agent's first click after signing in (browsers
// refuse to ask without a user gesture), and never again if declined.

import {t} from './i18n.js';
import {S} from './state.js';
import {shortId} from './dom.js';

const ASKED_KEY = 'wxkf.notify.asked';

export function askPermissionOnce() {
    if (!S.me || S.me.role !== 'agent' || !('Notification' in window) ||
        Notification.permission !== 'default')
        return;
    try {
        if (localStorage.getItem(ASKED_KEY))
            return;
        localStorage.setItem(ASKED_KEY, '1');
    } catch (e) {
        /* no storage: asked once per page */
    }
    Promise.resolve(Notification.requestPermission()).catch(() => {});
}

// kind 'user' (a new user is ours) or 'message'; text: what the user
// wrote (may be ''); onOpen: a click on the notification.
export function alertAgent(kind, openid, text, onOpen) {
    if (!document.hidden)
        return;
    beep();
    if (!('Notification' in window) || Notification.permission !== 'granted')
        return;
    try {
        const n = new Notification(t(kind === 'user' ? 'notify.user' : 'notify.message'), {
            body: shortId(openid) + (text ? '：' + text.slice(0, 120) : ''),
            tag: 'wxkf-' + openid});
        n.onclick = () => {
            window.focus();
            onOpen(openid);
            n.close();
        };
    } catch (e) {
        /* a browser without page notifications (Android): the sound only */
    }
}

// (3) 多客服工作台: unread messages of the agent's users.
export function renderTitle() {
    let n = 0;
    if (S.me && S.me.role === 'agent') {
        for (const openid of S.sessions.keys())
            n += (S.info[openid] && S.info[openid].unread) || 0;
    }
    document.title = (n ? '(' + n + ') ' : '') + t('app.title');
}

// A short tone made here (the page's CSP allows blob: media): 0.25 s of
// 880 Hz, 8-bit mono WAV at 8 kHz, faded in and out.
let beepUrl = null;
function beep() {
    if (!beepUrl)
        beepUrl = URL.createObjectURL(new Blob([tone()], {type: 'audio/wav'}));
    try {
        const p = new Audio(beepUrl).play();
        if (p && p.catch)
            p.catch(() => {});      // autoplay refused: the notification stays
    } catch (e) {
        /* no audio */
    }
}

function tone() {
    const rate = 8000, n = rate / 4;
    const b = new DataView(new ArrayBuffer(44 + n));
    const str = (o, s) => [...s].forEach((c, i) => b.setUint8(o + i, c.charCodeAt(0)));
    str(0, 'RIFF'); b.setUint32(4, 36 + n, true); str(8, 'WAVE');
    str(12, 'fmt '); b.setUint32(16, 16, true); b.setUint16(20, 1, true);
    b.setUint16(22, 1, true); b.setUint32(24, rate, true);
    b.setUint32(28, rate, true); b.setUint16(32, 1, true);
    b.setUint16(34, 8, true); str(36, 'data'); b.setUint32(40, n, true);
    for (let i = 0; i < n; i++) {
        const fade = Math.min(1, i / 200, (n - i) / 200);
        b.setUint8(44 + i, 128 + Math.round(60 * fade *
                                             Math.sin(2 * Math.PI * 880 * i / rate)));
    }
    return b.buffer;
}
