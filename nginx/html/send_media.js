// wxkf console — what an agent sends besides text: an image (JPEG, PNG,
// GIF, 2 MB), a voice (AMR or MP3, 2 MB, 60 s) or a video (MP4, 10 MB,
// sent with a thumbnail drawn from its first frame). WeChat's
// customer-service messages have no file type for Official Accounts: the
// picker takes these kinds only and says so. The server checks the same
// from the bytes (POST /api/v1/media, docs/api.md); these checks only
// spare the agent an upload that would be refused.

import {api, ApiError} from './api.js';
import {t} from './i18n.js';
import {errInfo, toast, tid} from './dom.js';
import {S} from './state.js';
import {failLocal, sendMessage} from './conv.js';

const MB = 1024 * 1024;
const KINDS = [
    {msgtype: 'image', types: {jpg: 'image/jpeg', jpeg: 'image/jpeg',
                               png: 'image/png', gif: 'image/gif'}, max: 2 * MB},
    {msgtype: 'voice', types: {amr: 'audio/amr', mp3: 'audio/mpeg'}, max: 2 * MB},
    {msgtype: 'video', types: {mp4: 'video/mp4'}, max: 10 * MB},
];
export const PICK_ACCEPT = KINDS.flatMap(k => Object.entries(k.types)
    .flatMap(([ext, type]) => ['.' + ext, type]))
    .filter((v, i, a) => a.indexOf(v) === i).join(',');

// {msgtype, type} of a picked file, or null: the type the browser gives,
// else the one of its extension (browsers give none for .amr).
export function kindOf(file) {
    const ext = (/\.([a-z0-9]+)$/i.exec(file.name || '') || [])[1];
    for (const k of KINDS) {
        const types = Object.values(k.types);
        const type = types.includes(file.type) ? file.type :
            !file.type && ext && k.types[ext.toLowerCase()];
        if (type)
            return {msgtype: k.msgtype, type, max: k.max};
    }
    return null;
}

async function upload(blob, type, query) {
    const r = await api.post('/api/v1/media', undefined,
                             {body: blob, type, query});
    if (!r || !r.media_id)
        throw new ApiError(502, 'bad_answer', 'no media_id');
    return r.media_id;
}

// A small JPEG of the video's first frame (WeChat wants a thumbnail of at
// most 64 KB with a video); a grey one when the browser cannot decode it.
async function thumbnail(url) {
    const canvas = document.createElement('canvas');
    canvas.width = 160;
    canvas.height = 90;
    const g = canvas.getContext('2d');
    g.fillStyle = '#8a8f98';
    g.fillRect(0, 0, canvas.width, canvas.height);
    try {
        const v = document.createElement('video');
        v.muted = true;
        v.preload = 'auto';
        v.src = url;
        await new Promise((ok, fail) => {
            v.addEventListener('loadeddata', ok, {once: true});
            v.addEventListener('error', fail, {once: true});
            setTimeout(fail, 3000);
        });
        g.drawImage(v, 0, 0, canvas.width, canvas.height);
    } catch (e) {
        /* the grey one */
    }
    return new Promise(ok => canvas.toBlob(ok, 'image/jpeg', 0.7));
}

// The message body to send once the file is at WeChat.
async function bodyFor(kind, file, localUrl) {
    const mediaId = await upload(file, kind.type);
    if (kind.msgtype !== 'video')
        return {msgtype: kind.msgtype, [kind.msgtype]: {media_id: mediaId}};
    const thumb = await upload(await thumbnail(localUrl), 'image/jpeg',
                               {type: 'thumb'});
    return {msgtype: 'video', video: {media_id: mediaId, thumb_media_id: thumb,
                                      title: file.name.replace(/\.[^.]*$/, '')}};
}

export async function sendFile(file) {
    const openid = S.active;
    if (!openid || !file)
        return;
    const kind = kindOf(file);
    if (!kind || file.size > kind.max) {     // shown by its name, not opened
        failLocal(openid, {msgtype: 'file', content: file.name},
                  {msg: t('media.bad', {name: file.name})});
        return;
    }
    const localUrl = URL.createObjectURL(file);
    const local = {msgtype: kind.msgtype, localUrl, localType: kind.type};
    toast(t('media.uploading'));
    let body;
    try {
        body = await bodyFor(kind, file, localUrl);
    } catch (e) {
        tid('toast').hidden = true;
        failLocal(openid, local, errInfo(e));
        return;
    }
    tid('toast').hidden = true;
    local.mediaId = body[kind.msgtype].media_id;
    if (kind.msgtype === 'video')    // as the feed's msg_out names it
        local.content = body.video.title;
    await sendMessage(openid, body, local);
}
