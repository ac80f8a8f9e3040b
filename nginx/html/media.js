// wxkf console — users' images, voice and video: fetched with the
// Authorization header (GET /api/v1/media/{id}) and shown from blob: URLs;
// retried while wxkf jobs has not stored them yet. A voice is played from
// its WAV copy (?format=wav, docs/media.md) with its duration; without one
// (an AMR or Speex file the decoder refused) the original is offered as a
// download.

import {api, ApiError, seg} from './api.js';
import {t} from './i18n.js';
import {detailsNode, errInfo, fmtDur, h, tid} from './dom.js';
import {S} from './state.js';
import {fillMsgEl, typeLabel} from './conv.js';

// An image in a message: a click (or Enter) opens it in the viewer.
function imageNode(src) {
    return h('img', {src, alt: t('msg.image'), class: 'media', tabindex: '0',
                     title: t('viewer.open'),
                     dataset: {testid: 'message-image'},
                     onclick: () => openViewer(src),
                     onkeydown: (ev) => {
                         if (ev.key === 'Enter')
                             openViewer(src);
                     }});
}

// The viewer: the image over the page; Esc, a click or the close button
// shut it (a modal <dialog>: Esc is the browser's own).
export function openViewer(src) {
    const dlg = tid('image-viewer');
    tid('viewer-image', dlg).src = src;
    if (!dlg.open)
        dlg.showModal();
}

export function wireViewer() {
    const dlg = tid('image-viewer');
    dlg.addEventListener('click', () => dlg.close());
    dlg.addEventListener('close', () => {
        tid('viewer-image', dlg).removeAttribute('src');
    });
}

export function mediaNode(m) {
    if (m.localUrl && m.msgtype === 'image')
        return imageNode(m.localUrl);
    if (m.localUrl && m.msgtype === 'video')
        return h('video', {src: m.localUrl, controls: true, class: 'media',
                           preload: 'metadata',
                           dataset: {testid: 'message-video'}});
    if (m.localUrl && m.msgtype === 'voice')    // AMR: no player of ours
        return m.localType === 'audio/mpeg' ?
            h('audio', {src: m.localUrl, controls: true,
                        dataset: {testid: 'message-audio'}}) :
            h('span', {class: 'text', dataset: {testid: 'message-text'}},
              typeLabel(m));
    const id = m.mediaId;
    if (!id)
        return h('span', {class: 'text'}, typeLabel(m));
    const rec = S.media.get(id);
    if (!rec) {
        loadMedia(id, m.dir === 'in', m.msgtype === 'voice');
        return h('span', {class: 'muted', dataset: {testid: 'media-pending'}},
                 typeLabel(m) + ' ' + t('msg.media.pending'));
    }
    if (rec.state === 'ready') {
        const type = rec.type || '';
        if (type.startsWith('image/'))
            return imageNode(rec.url);
        if (type.startsWith('video/'))
            return h('video', {src: rec.url, controls: true, class: 'media',
                               preload: 'metadata',
                               dataset: {testid: 'message-video'}});
        if (type === 'audio/wav')
            return voiceNode(rec);
        if (type === 'audio/mpeg' || type === 'audio/ogg')
            return h('audio', {src: rec.url, controls: true,
                               dataset: {testid: 'message-audio'}});
        // AMR and Speex without a copy: browsers cannot play them; offer
        // the file.
        return h('a', {href: rec.url, download: id + extOf(type),
                       dataset: {testid: 'media-download'}},
                 typeLabel(m) + ' ' + t('msg.media.download'));
    }
    if (rec.state === 'failed' || (m.dir === 'out' && rec.state === 'pending'))
        return h('span', {class: 'muted', dataset: {testid: 'media-failed'}},
                 m.dir === 'out' ? typeLabel(m) :
                     t('msg.media.failed', {why: rec.why || ''}),
                 m.dir !== 'out' && rec.details ? detailsNode(rec.details)
                                                : null);
    return h('span', {class: 'muted', dataset: {testid: 'media-pending'}},
             typeLabel(m) + ' ' + t('msg.media.pending'));
}

// A voice's WAV copy: the player and the duration (16-bit mono after a
// 44-byte header: 16000 bytes a second at 8 kHz (AMR), 32000 at 16 kHz
// (Speex), as its header's byte rate says).
function voiceNode(rec) {
    const ms = Math.max(0, rec.size - 44) / ((rec.byteRate || 16000) / 1000);
    return h('span', {class: 'voice', dataset: {testid: 'message-voice'}},
             h('audio', {src: rec.url, controls: true, preload: 'metadata',
                         dataset: {testid: 'message-audio'}}),
             h('span', {class: 'muted', dataset: {testid: 'voice-duration'}},
               t('media.voice.play', {d: fmtDur(Math.max(1000, ms))})));
}

function extOf(type) {
    return {'audio/amr': '.amr', 'audio/speex': '.speex', 'audio/mpeg': '.mp3',
            'video/mp4': '.mp4', 'image/jpeg': '.jpg', 'image/png': '.png',
            'image/gif': '.gif'}[type] || '';
}

// voice: ask for the playable copy first; no_playable falls back to the
// original (then offered as a download).
async function loadMedia(id, retry = true, voice = false) {
    let rec = S.media.get(id);
    if (rec && (rec.state === 'ready' || rec.state === 'loading' ||
                rec.state === 'failed'))
        return;
    if (!rec) {
        rec = {state: 'loading', tries: 0, wav: voice};
        S.media.set(id, rec);
    }
    rec.state = 'loading';
    rec.tries++;
    try {
        const blob = await api.get('/api/v1/media/' + seg(id), {
            blob: true, query: {format: rec.wav ? 'wav' : ''}});
        if (!S.me)
            return;
        rec.url = URL.createObjectURL(blob);
        rec.type = blob.type;
        rec.size = blob.size;
        if (blob.type === 'audio/wav' && blob.size >= 44)
            rec.byteRate = new DataView(await blob.slice(24, 32)
                                            .arrayBuffer()).getUint32(4, true);
        rec.state = 'ready';
    } catch (e) {
        if (rec.wav && e instanceof ApiError && e.code === 'no_playable') {
            rec.wav = false;
            rec.state = 'pending';
            rec.tries--;
            loadMedia(id, retry);
            return;
        }
        if (retry && e instanceof ApiError && e.status === 404 &&
            e.code === 'no_media' && rec.tries < 10) {
            rec.state = 'pending';     // wxkf jobs has not stored it yet
            setTimeout(() => {
                if (S.media.get(id) === rec && rec.state === 'pending')
                    loadMedia(id, retry, rec.wav);
            }, 3000);
        } else {
            rec.state = 'failed';
            const {msg, details} = errInfo(e);
            Object.assign(rec, {why: msg, details});
        }
    }
    refreshMediaEls(id);
}

export function mediaEvent(e) {
    const id = e.media_id;
    if (!id)
        return;
    const rec = S.media.get(id);
    if (e.type === 'media_failed') {
        S.media.set(id, {state: 'failed', tries: 99,
                         why: t('err.code.media_failed'),
                         details: [e.reason, e.errcode && e.errcode !== '0' ?
                                   'errcode ' + e.errcode : '', e.errmsg]
                             .filter(Boolean).join(' · ')});
        refreshMediaEls(id);
    } else if (rec && rec.state !== 'ready') {
        rec.state = 'pending';
        rec.tries = 0;
        loadMedia(id, true, rec.wav);
    }
}

function refreshMediaEls(id) {
    for (const c of S.convs.values()) {
        for (const m of c.msgs) {
            if (m.mediaId === id && m.el)
                fillMsgEl(m);
        }
    }
}


export function revokeMediaUrls() {
    for (const rec of S.media.values()) {
        if (rec.url)
            URL.revokeObjectURL(rec.url);
    }
}
