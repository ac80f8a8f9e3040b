// The console's pure modules (nginx/html: no DOM, no imports) checked in
// node on their own: WeChat's reply window and send budget (limits.js),
// WeChat's emoji codes and links in a message's text (emoji.js).
// test/it/test_console_strings.py runs it; the last line is "N passed".
//
// nginx/html has no package.json, so node would read its .js files as
// CommonJS: each module is loaded from its source as a data: URL instead.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

const HTML = path.join(path.dirname(fileURLToPath(import.meta.url)),
                       '..', '..', 'nginx', 'html');

async function load(name) {
    const src = fs.readFileSync(path.join(HTML, name), 'utf8');
    assert.ok(!/^import /m.test(src), name + ' must stay free of imports');
    return import('data:text/javascript;charset=utf-8,' +
                  encodeURIComponent(src));
}

let passed = 0;
async function check(name, fn) {
    try {
        await fn();
        passed++;
        console.log('ok   ' + name);
    } catch (e) {
        console.log('FAIL ' + name + '\n' + (e && e.stack || e));
        process.exitCode = 1;
    }
}

const H = 3600 * 1000;
const T0 = 1795792958000;
const inMsg = (ts, msgtype = 'text', event = '') => ({dir: 'in', ts, msgtype, event});
const out = (ts, state = 'sent') => ({dir: 'out', ts, msgtype: 'text', state});

const L = await load('limits.js');

await check('no user message: nothing known', () => {
    assert.equal(L.windowState([], T0, null), null);
    assert.equal(L.windowState([out(T0)], T0, null), null);
});

await check('a message opens 48 h with 5 sends', () => {
    const w = L.windowState([inMsg(T0)], T0 + H, null);
    assert.equal(w.kind, 'msg');
    assert.equal(w.endsAt, T0 + 48 * H);
    assert.equal(w.open, true);
    assert.deepEqual([w.quota, w.left, w.blocked], [5, 5, '']);
});

await check('sends count, refused ones do not, the 5th blocks', () => {
    const msgs = [inMsg(T0), out(T0 + 1), out(T0 + 2, 'failed'), out(T0 + 3),
                  out(T0 + 4, 'queued'), out(T0 + 5, 'sending')];
    let w = L.windowState(msgs, T0 + 10, null);
    assert.equal(w.left, 1);
    msgs.push(out(T0 + 6));
    w = L.windowState(msgs, T0 + 10, null);
    assert.deepEqual([w.left, w.blocked], [0, 'budget']);
});

await check('a new user message starts the count again', () => {
    const msgs = [inMsg(T0), out(T0 + 1), out(T0 + 2), out(T0 + 3),
                  out(T0 + 4), out(T0 + 5), inMsg(T0 + 6), out(T0 + 7)];
    const w = L.windowState(msgs, T0 + 10, null);
    assert.deepEqual([w.left, w.endsAt, w.blocked], [4, T0 + 6 + 48 * H, '']);
});

await check('after 48 h the window is closed', () => {
    const w = L.windowState([inMsg(T0)], T0 + 48 * H + 1, null);
    assert.deepEqual([w.open, w.blocked], [false, 'window']);
    assert.equal(L.windowState([inMsg(T0)], T0 + 48 * H, null).open, true);
});

await check('a menu click opens 1 min with 3 sends; not inside a message\'s window', () => {
    let w = L.windowState([inMsg(T0, 'event', 'CLICK')], T0 + 1000, null);
    assert.deepEqual([w.kind, w.quota, w.endsAt], ['evt', 3, T0 + 60000]);
    assert.equal(L.windowState([inMsg(T0, 'event', 'subscribe')], T0 + 60001,
                               null).blocked, 'window');
    // a message's window is not shortened by a later click
    w = L.windowState([inMsg(T0), out(T0 + 1), inMsg(T0 + 2, 'event', 'CLICK')],
                      T0 + 3, null);
    assert.deepEqual([w.kind, w.left, w.endsAt], ['msg', 4, T0 + 48 * H]);
    // events that open nothing (unsubscribe, LOCATION) change nothing
    assert.equal(L.windowState([inMsg(T0, 'event', 'LOCATION')], T0, null), null);
});

await check('the server\'s "left" lowers the count, if newer than the message', () => {
    const msgs = [inMsg(T0), out(T0 + 1)];
    assert.equal(L.windowState(msgs, T0 + 5, {left: 2, at: T0 + 2}).left, 2);
    // an answer from before the user's newest message says nothing
    assert.equal(L.windowState(msgs, T0 + 5, {left: 0, at: T0 - 1}).left, 4);
    // never raises it
    assert.equal(L.windowState(msgs, T0 + 5, {left: 5, at: T0 + 2}).left, 4);
});

const E = await load('emoji.js');

await check('the table is WeChat\'s 105 classic faces, each code once', () => {
    assert.equal(E.FACES.length, 105);
    assert.equal(new Set(E.FACES.map(f => f[0])).size, 105);
    assert.deepEqual(E.FACES[0], ['/::)', '微笑', '🙂']);
    assert.equal(E.FACES[104][0], '/:&>');
});

await check('codes and [names] become emoji, the longest code first', () => {
    assert.equal(E.plain('好的/::)谢谢[再见]'), '好的🙂谢谢👋');
    // "/::'(" (大哭) is not "/::'" + "("; "/::-O" is not "/::-" + "O"
    assert.deepEqual(E.pieces("/::'(").map(p => p.name), ['大哭']);
    assert.deepEqual(E.pieces('/::-O').map(p => p.name), ['哈欠']);
    assert.deepEqual(E.pieces('a/:kotowb'), [
        {kind: 'text', text: 'a'},
        {kind: 'emoji', text: '🙇', code: '/:kotow', name: '磕头'},
        {kind: 'text', text: 'b'}]);
    // not a code: left as it is
    assert.equal(E.plain('1/2 /:zzz [不是表情] <b>'), '1/2 /:zzz [不是表情] <b>');
});

await check('http(s) links only, without trailing punctuation', () => {
    const ps = E.pieces('看 https://shop.test/a?b=1&c=2，或 http://x.test/p. 别点 ' +
                        'javascript:alert(1) data:text/html,x ftp://x.test/');
    const links = ps.filter(p => p.kind === 'link');
    assert.deepEqual(links.map(p => p.href),
                     ['https://shop.test/a?b=1&c=2', 'http://x.test/p']);
    // nothing is lost: the pieces put together are the text
    assert.equal(ps.map(p => p.text).join(''),
                 '看 https://shop.test/a?b=1&c=2，或 http://x.test/p. 别点 ' +
                 'javascript:alert(1) data:text/html,x ftp://x.test/');
    assert.equal(E.safeHref('javascript:alert(1)'), '');
    assert.equal(E.safeHref('HTTPS://Shop.test/x'), 'https://shop.test/x');
    assert.equal(E.safeHref('/relative'), '');
});

console.log(`${passed} passed`);
