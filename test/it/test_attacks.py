"""Attacks at the edge, each a test against the real stack: oversized
headers, a client that stalls in its headers, path traversal on the
console and the API, and Redis-protocol strings in stored fields. Nothing
is stored, no worker dies, nothing outside the console's folder is
served.

Then hostile strings (SQL, Redis protocol, Lua, COPY markers, format
strings, very long, NUL, invalid UTF-8, control characters, emoji and
Chinese) in every field that comes from outside: each element of a
callback, each query parameter of /wechat, each REST API field, path
segment, query parameter and header. Each value is stored and read back
byte for byte, or refused with a 4xx and a JSON error; nothing is
damaged."""

import json
import os
import socket
import time
import urllib.parse

import pytest
import requests

from conftest import ORIGINAL_ID, assert_error, run_sim_stack, sim_server, \
    wait_until, wc
from test_archive import next_msgid, query as pg_query, wait_archived
from test_routing import Agent, add_agent


def raw(stack, request, timeout=5):
    """Sends bytes as they are (no client-side path normalisation); returns
    what came back."""
    s = socket.create_connection(('127.0.0.1', stack.port), timeout=timeout)
    try:
        s.sendall(request)
        out = b''
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk
    except socket.timeout:
        return out
    finally:
        s.close()


def status_of(resp):
    line = resp.split(b'\r\n', 1)[0]
    return int(line.split()[1]) if line.startswith(b'HTTP/') else None


def test_oversized_headers_are_refused_by_nginx(stack, wx, nothing_stored):
    r = requests.post(stack.url, data=b'<xml/>', timeout=10,
                      headers={'X-Big': 'a' * 20000})
    assert r.status_code in (400, 431, 494), r.status_code
    r = requests.get(stack.base + '/api/v1/me', timeout=10,
                     headers={'Authorization': 'Bearer ' + 'x' * 20000})
    assert r.status_code in (400, 431, 494), r.status_code


def test_a_client_stalling_in_its_headers_is_dropped(stack, nothing_stored):
    s = socket.create_connection(('127.0.0.1', stack.port), timeout=20)
    try:
        s.sendall(b'POST /wechat?signature=x HTTP/1.1\r\nHost: x\r\n')
        t0 = time.monotonic()
        try:
            data = s.recv(4096)     # nginx gives up after 10 s
        except ConnectionResetError:
            data = b''              # reset_timedout_connection on
        waited = time.monotonic() - t0
    finally:
        s.close()
    assert 8 <= waited <= 15, waited
    assert data == b'' or status_of(data) == 408


def test_path_traversal_reaches_nothing_outside(stack, nothing_stored):
    for path in (b'/../../../../etc/passwd', b'/%2e%2e/%2e%2e/etc/passwd',
                 b'/..%2f..%2f..%2fetc%2fpasswd', b'/.git/config',
                 b'/index.html/../../../etc/passwd',
                 b'/api/v1/media/..%2f..%2f..%2fetc%2fpasswd',
                 b'/api/v1/sessions/..%2f..%2fx'):
        resp = raw(stack, b'GET ' + path + b' HTTP/1.1\r\nHost: x\r\n'
                   b'Connection: close\r\n\r\n')
        assert b'root:' not in resp, path
        assert status_of(resp) in (400, 401, 403, 404), (path, resp[:200])


def test_redis_protocol_strings_are_only_data(stack, wx):
    keys_before = stack.redis.dbsize()
    evil = '*1\r\n$8\r\nFLUSHALL\r\n\r\nSET pwned 1\r\n'
    r = wx.send_text(evil)
    assert r.status_code == 200
    entry = [f for _id, f in stack.entries()
             if f.get('openid') == wx.openid][-1]
    # stored as sent (XML turns CR LF into LF, as the XML spec says)
    assert json.loads(entry['payload'])['Content'] == \
        evil.replace('\r\n', '\n')
    assert stack.redis.get('pwned') is None
    assert stack.redis.dbsize() >= keys_before
    # and as a token: refused like any other bad token, no command run
    r = requests.get(stack.base + '/api/v1/me', timeout=10,
                     headers={'Authorization': 'Bearer *1 $8 FLUSHALL'})
    assert r.status_code in (400, 401)
    assert stack.redis.dbsize() >= keys_before
    stack.redis.delete('wxkf:{%s}:authfail:127.0.0.1' % stack.app_id)


def test_sql_strings_in_an_agent_field_are_refused_or_stored_as_text(stack):
    h = {'Authorization': 'Bearer ' + stack.admin_token}
    nick = "Robert'); DROP TABLE agents;--"
    r = requests.post(stack.base + '/api/v1/agents', headers=h, timeout=10,
                      json={'account': 'sqli1', 'nick': nick})
    assert r.status_code == 201, r.text
    r = requests.get(stack.base + '/api/v1/agents/sqli1', headers=h,
                     timeout=10)
    assert r.json()['agent']['nick'] == nick
    assert requests.get(stack.base + '/api/v1/agents', headers=h,
                        timeout=10).status_code == 200
    assert_error(requests.post(stack.base + '/api/v1/agents', headers=h,
                               timeout=10,
                               json={'account': "a' OR '1'='1", 'nick': 'x'}),
                 400, 'invalid_field')
    requests.delete(stack.base + '/api/v1/agents/sqli1', headers=h,
                    timeout=10)


# --- hostile strings in every field that comes from outside ------------------
#
# Each table below is a list of fields; each field gets every string of
# HOSTILE. A value is either stored and read back byte for byte (Redis
# stream, PostgreSQL, the history API, what "WeChat" was sent) or refused
# with a 4xx and a JSON error ({"error":{"code","message"}}; a request
# nginx refuses before any worker sees it gets nginx's own 4xx page), and
# afterwards nothing is damaged: every PostgreSQL table is there with no
# row lost and none in archive_rejects, a sentinel key set in Redis before
# is still there, no key "x" or "pwned" appeared, the workers and
# `wxkf jobs` are the same processes, no sanitizer spoke.

SQLI = "'; DROP TABLE messages; --"
HOSTILE = [
    ('sql_drop', SQLI),
    ('sql_or', "' OR '1'='1"),
    ('sql_dollar', '$$; DROP TABLE agents; $$'),
    ('backslashes', "\\ \\\\ \\' \\\" C:\\new\\table \\x41 \\u0041"),
    # COPY text format: tab, newline, end-of-data marker, NULL marker
    ('copy_markers', 'a\tb\nc\n\\.\nd\\N'),
    ('resp_flushall', '*1\r\n$8\r\nFLUSHALL\r\n'),
    ('resp_set', '\r\nSET x 1\r\n'),
    ('lua', "]]..redis.call('FLUSHALL')..[[ '); redis.call('SET','x','1') --"),
    ('json_xml', '"},"x":{"y":"</Content><![CDATA[ ]]> &amp; <b>'),
    ('format', '%s%s%n%x%d {n} %99999999d'),
    ('emoji_cjk', '你好，订单 👋🏽 𠀋 \u200d e\u0301 \U0001F4A9'),
    ('long', 'A' * 20000 + SQLI),
    ('nul', 'a\x00b' + SQLI),
    ('bad_utf8', b'\xff\xfe\xc0\xaf\xed\xa0\x80 ' + SQLI.encode()),
    ('control', 'bell\x07 esc\x1b[0m del\x7f'),
]
NGINX_REFUSALS = (400, 413, 414, 431, 494)
SENTINEL = 'wxkf-it:attacks:sentinel'
FIELD_SECRET = 'simSecretAttacks0123456789ab'


def is_xml_text(v):
    """Whether v can be the text of an XML 1.0 element at all."""
    if isinstance(v, bytes):
        return False
    return all(c in '\t\n\r' or 0x20 <= ord(c) <= 0xd7ff or
               0xe000 <= ord(c) <= 0xfffd or 0x10000 <= ord(c) <= 0x10ffff
               for c in v)


def is_json_text(v):
    """Whether v can be a JSON string the API reads (jansson refuses
    \\u0000 and invalid UTF-8)."""
    return isinstance(v, str) and '\x00' not in v


def utf8(v):
    return v if isinstance(v, bytes) else v.encode('utf-8')


def pct(v):
    return urllib.parse.quote_from_bytes(utf8(v), safe='')


class Findings:
    """Failures collected over a whole table, reported together."""

    def __init__(self):
        self.items = []
        self.by_nginx = self.by_worker = 0

    def add(self, where, what):
        self.items.append('%s: %s' % (where, what[:300]))

    def check(self, cond, where, what):
        if not cond:
            self.add(where, what)
        return cond

    def refused(self, where, resp, statuses=(400,), codes=None,
                nginx=False):
        """A 4xx with the worker's JSON error, or (nginx=True) nginx's own
        refusal before any worker (no X-Request-Id)."""
        status, headers, body = resp
        if nginx and 'x-request-id' not in headers and \
                status in NGINX_REFUSALS:
            self.by_nginx += 1
            return True
        self.by_worker += 1
        if not self.check(status in statuses, where, 'expected %s, got %s %r'
                          % (statuses, status, body[:200])):
            return False
        try:
            err = json.loads(body)['error']
            ok = isinstance(err['code'], str) and err['code'] and \
                isinstance(err['message'], str) and err['message']
        except (ValueError, KeyError, TypeError):
            ok = False
        if not self.check(ok and headers.get('content-type', '').startswith(
                'application/json') and 'x-request-id' in headers, where,
                'not a JSON error: %s %r' % (headers.get('content-type'),
                                             body[:200])):
            return False
        return self.check(codes is None or err['code'] in codes, where,
                          'error code %r not in %s' % (err['code'], codes))

    def assert_none(self):
        assert not self.items, '%d findings:\n' % len(self.items) + \
            '\n'.join(self.items[:60])


def resp3(r):
    """(status, lower-cased headers, body bytes) of a requests response."""
    return (r.status_code, {k.lower(): v for k, v in r.headers.items()},
            r.content)


def raw_http(stack, method, target, headers=(), body=b''):
    """One request with bytes exactly as given (header values may hold CR,
    LF, NUL or invalid UTF-8); (status, headers, body)."""
    req = b'%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n' % (
        method.encode(), target.encode())
    for k, v in headers:
        req += k.encode() + b': ' + utf8(v) + b'\r\n'
    if body or method in ('POST', 'PATCH'):
        req += b'Content-Length: %d\r\n' % len(body)
    out = raw(stack, req + b'\r\n' + body, timeout=10)
    head, _, rest = out.partition(b'\r\n\r\n')
    lines = head.split(b'\r\n')
    status = status_of(out)
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(b':')
        hdrs[k.strip().lower().decode('latin-1')] = v.strip().decode(
            'latin-1')
    if hdrs.get('transfer-encoding') == 'chunked':
        data, rest = b'', rest
        for _ in range(10000):
            size, _, rest = rest.partition(b'\r\n')
            n = int(size.split(b';')[0] or b'0', 16)
            if n == 0:
                break
            data, rest = data + rest[:n], rest[n + 2:]
        rest = data
    return status, hdrs, rest


# --- the stack, and what "damaged" means ----------------------------------------

def table_counts(stack):
    names = [r[0] for r in pg_query(
        stack, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        " ORDER BY 1")]
    out = {}
    for n in names:
        out[n] = pg_query(stack, 'SELECT count(*) FROM "%s"' % n)[0][0]
    return out


def jobs_pid_of(stack):
    with open(os.path.join(stack.dir, 'run', 'jobs.pid')) as f:
        return int(f.read().strip())


@pytest.fixture(scope='module')
def fsim():
    yield from sim_server(FIELD_SECRET)


@pytest.fixture(scope='module')
def hstack(fsim):
    yield from run_sim_stack('attacks-fields', fsim, FIELD_SECRET, workers=2,
                             extra={'api': {'auth_failures_per_min':
                                            '100000'},
                                    'routing': {'default_capacity': '1000'}})


@pytest.fixture
def undamaged(hstack):
    """Checks, after the test, that the hostile strings did no harm."""
    st = hstack
    st.redis.set(SENTINEL, 'still here')
    before = {'tables': table_counts(st), 'dbsize': st.redis.dbsize(),
              'workers': st.worker_pids(), 'jobs': jobs_pid_of(st)}
    state = {'new_messages': None}
    yield state
    wait_archived(st, 60)
    after = table_counts(st)
    assert sorted(after) == sorted(before['tables']), \
        'tables changed: %s -> %s' % (sorted(before['tables']), sorted(after))
    shrunk = {t: (before['tables'][t], after[t]) for t in after
              if after[t] < before['tables'][t]}
    assert not shrunk, 'rows lost: %r' % shrunk
    assert after['archive_rejects'] == before['tables']['archive_rejects'], \
        'PostgreSQL refused archived entries'
    if state['new_messages'] is not None:
        assert after['messages'] - before['tables']['messages'] == \
            state['new_messages'], (before['tables']['messages'],
                                    after['messages'], state['new_messages'])
    assert st.redis.get(SENTINEL) == 'still here', 'Redis was flushed'
    assert st.redis.exists('x', 'pwned') == 0, 'a command from data ran'
    assert st.redis.dbsize() >= before['dbsize'], 'Redis lost keys'
    assert st.worker_pids() == before['workers'], 'a worker died'
    assert jobs_pid_of(st) == before['jobs'] and \
        os.path.exists('/proc/%d' % before['jobs']), 'wxkf jobs died'
    hits = st.sanitizer_reports()
    assert not hits, hits[:10]


# --- 1. every element of a callback -----------------------------------------------

# The message types the worker reads, each with its usual elements (the
# common ToUserName, FromUserName, CreateTime come first).
CARRIERS = {
    'text': [('MsgType', 'text'), ('Content', 'hello'), ('MsgId', None)],
    'text_menu': [('MsgType', 'text'), ('Content', 'menu pick'),
                  ('bizmsgmenuid', '101'), ('MsgId', None)],
    'image': [('MsgType', 'image'), ('PicUrl', 'http://mmbiz.qpic.cn/x'),
              ('MediaId', 'img_media_1'), ('MsgId', None)],
    'voice': [('MsgType', 'voice'), ('MediaId', 'voice_media_1'),
              ('Format', 'amr'), ('Recognition', '你好'), ('MsgId', None)],
    'video': [('MsgType', 'video'), ('MediaId', 'video_media_1'),
              ('ThumbMediaId', 'thumb_1'), ('MsgId', None)],
    'shortvideo': [('MsgType', 'shortvideo'), ('MediaId', 'sv_media_1'),
                   ('ThumbMediaId', 'thumb_2'), ('MsgId', None)],
    'location': [('MsgType', 'location'), ('Location_X', '23.134521'),
                 ('Location_Y', '113.358803'), ('Scale', '20'),
                 ('Label', '广州市天河区'), ('MsgId', None)],
    'link': [('MsgType', 'link'), ('Title', 'title'),
             ('Description', 'description'), ('Url', 'http://example.com/'),
             ('MsgId', None)],
    'subscribe': [('MsgType', 'event'), ('Event', 'subscribe'),
                  ('EventKey', 'qrscene_123'), ('Ticket', 'gQH47joAAAAA')],
    'SCAN': [('MsgType', 'event'), ('Event', 'SCAN'), ('EventKey', '123'),
             ('Ticket', 'gQH47joAAAAA')],
    'LOCATION': [('MsgType', 'event'), ('Event', 'LOCATION'),
                 ('Latitude', '23.137466'), ('Longitude', '113.352425'),
                 ('Precision', '119.385040')],
    'CLICK': [('MsgType', 'event'), ('Event', 'CLICK'),
              ('EventKey', 'V1001_HELP')],
    'VIEW': [('MsgType', 'event'), ('Event', 'VIEW'),
             ('EventKey', 'http://example.com/menu'), ('MenuId', '101')],
    'kf_create_session': [('MsgType', 'event'),
                          ('Event', 'kf_create_session'),
                          ('KfAccount', 'test1@gh_7c1e9a2b4d6f')],
    'kf_close_session': [('MsgType', 'event'), ('Event', 'kf_close_session'),
                         ('KfAccount', 'test1@gh_7c1e9a2b4d6f')],
    'kf_switch_session': [('MsgType', 'event'),
                          ('Event', 'kf_switch_session'),
                          ('FromKfAccount', 'test1@gh_7c1e9a2b4d6f'),
                          ('ToKfAccount', 'test2@gh_7c1e9a2b4d6f')],
}

# (element, carrier, how it is sent): every element lib/wx_xml.c reads,
# and one it does not know (kept in the payload all the same).
CALLBACK_FIELDS = [
    ('Content', 'text', 'plain'),
    ('Content', 'text', 'cdata'),
    ('Content', 'text', 'safe'),
    ('bizmsgmenuid', 'text_menu', 'plain'),
    ('PicUrl', 'image', 'plain'),
    ('MediaId', 'image', 'plain'),
    ('MediaId', 'voice', 'plain'),
    ('Format', 'voice', 'plain'),
    ('Recognition', 'voice', 'plain'),
    ('ThumbMediaId', 'video', 'plain'),
    ('ThumbMediaId', 'shortvideo', 'plain'),
    ('Location_X', 'location', 'plain'),
    ('Location_Y', 'location', 'plain'),
    ('Scale', 'location', 'plain'),
    ('Label', 'location', 'plain'),
    ('Title', 'link', 'plain'),
    ('Description', 'link', 'plain'),
    ('Url', 'link', 'plain'),
    ('EventKey', 'subscribe', 'plain'),
    ('Ticket', 'subscribe', 'plain'),
    ('EventKey', 'SCAN', 'plain'),
    ('Ticket', 'SCAN', 'safe'),
    ('Latitude', 'LOCATION', 'plain'),
    ('Longitude', 'LOCATION', 'plain'),
    ('Precision', 'LOCATION', 'plain'),
    ('EventKey', 'CLICK', 'plain'),
    ('EventKey', 'VIEW', 'plain'),
    ('MenuId', 'VIEW', 'plain'),
    ('KfAccount', 'kf_create_session', 'plain'),
    ('KfAccount', 'kf_close_session', 'plain'),
    ('FromKfAccount', 'kf_switch_session', 'plain'),
    ('ToKfAccount', 'kf_switch_session', 'plain'),
    ('MsgType', 'text', 'plain'),
    ('Event', 'CLICK', 'plain'),
    ('Event', 'kf_create_session', 'safe'),
    ('ToUserName', 'text', 'plain'),
    ('FromUserName', 'text', 'plain'),
    ('CreateTime', 'text', 'plain'),
    ('CreateTime', 'CLICK', 'plain'),
    ('MsgId', 'text', 'plain'),
    ('MsgID', 'image', 'plain'),
    ('Unlisted', 'text', 'plain'),
]


def callback_expect(field, v):
    """None if the callback must be stored, else (statuses, codes)."""
    if not is_xml_text(v):
        return (400,), ('malformed_xml',)   # expat: not XML at all
    n = len(utf8(v))
    if field == 'ToUserName':               # this account's gh_ id only
        return (400,), ('invalid_field' if n > 64 else 'account_mismatch',)
    if field == 'FromUserName':             # an OpenID: [A-Za-z0-9_-]{1,64}
        return (400,), ('invalid_field',)
    if field in ('CreateTime', 'MsgId', 'MsgID'):   # numbers
        return (400,), ('malformed_xml',)
    if field == 'MsgType' and n > 32 or field == 'Event' and n > 64:
        return (400,), ('invalid_field',)
    return None


def xml_escaped(v):
    """Element text that reads back as exactly v (CR kept as &#13;: a raw
    CR would become LF, as XML says)."""
    if isinstance(v, bytes):
        return v
    return v.replace('&', '&amp;').replace('<', '&lt;').replace(
        '>', '&gt;').replace('\r', '&#13;').encode('utf-8')


def callback_body(carrier, openid, field, v, how):
    msgid = next_msgid()
    items = [('ToUserName', ORIGINAL_ID), ('FromUserName', openid),
             ('CreateTime', str(int(time.time())))] + [
        (k, msgid if val is None else val) for k, val in CARRIERS[carrier]]
    if field == 'MsgID':            # the other spelling WeChat uses
        items = [('MsgID' if k == 'MsgId' else k, val) for k, val in items]
    if field not in [k for k, _ in items]:
        items.append((field, v))
    items = [(k, v if k == field else val) for k, val in items]
    out = b'<xml>'
    for k, val in items:
        if k == field and how == 'cdata' and not isinstance(val, bytes):
            enc = wc.cdata(val).encode('utf-8')
        else:
            enc = xml_escaped(val)
        out += b'<%s>%s</%s>' % (k.encode(), enc, k.encode())
    return out + b'</xml>', dict(items)


def stored_value(v, how):
    """What an element's text reads back as."""
    if how == 'cdata':              # XML turns CR LF and lone CR into LF
        return v.replace('\r\n', '\n').replace('\r', '\n')
    return v


def content_of(items):
    """messages.content: the first of Content, Recognition, Title, Label."""
    for k in ('Content', 'Recognition', 'Title', 'Label'):
        if k in items:
            return items[k]
    return None


def test_hostile_strings_in_every_callback_element(hstack, undamaged):
    st = hstack
    f = Findings()
    stored, refused = [], []
    for field, carrier, how in CALLBACK_FIELDS:
        for name, v in HOSTILE:
            where = '%s (%s, %s) x %s' % (field, carrier, how, name)
            u = st.user(mode='safe' if how == 'safe' else 'plain')
            body, items = callback_body(carrier, u.openid, field, v, how)
            r = resp3(u.send_raw(body))
            want = callback_expect(field, v)
            if want is None:
                if f.check(r[0] == 200, where, 'expected 200, got %s %r'
                           % (r[0], r[2][:200])):
                    stored.append((where, u.openid, field, how, items))
            else:
                f.refused(where, r, want[0], want[1])
                ids = [u.openid]
                if field == 'FromUserName' and is_json_text(v):
                    ids.append(v)
                refused.append((where, ids))

    # Redis: each stored callback is one msg_in entry, its elements as sent
    by_openid = {}
    for _id, e in st.entries():
        if e.get('type') == 'msg_in':
            by_openid.setdefault(e.get('openid'), []).append(e)
    for where, openid, field, how, items in stored:
        es = by_openid.get(openid, [])
        if not f.check(len(es) == 1, where, '%d stream entries' % len(es)):
            continue
        payload = json.loads(es[0]['payload'])
        want = {k: stored_value(val, how) if k == field else val
                for k, val in items.items()}
        f.check(payload == want, where, 'stream payload differs: %r'
                % {k: payload.get(k) for k in payload
                   if payload.get(k) != want.get(k)})
        f.check(es[0]['msgtype'] == want['MsgType'] and
                es[0]['event'] == want.get('Event', ''), where,
                'msgtype/event fields %r %r' % (es[0]['msgtype'],
                                                es[0]['event']))
    for where, ids in refused:
        f.check(not any(i in by_openid for i in ids), where,
                'refused but recorded')

    # PostgreSQL (after the archiver) and the history API
    wait_archived(st, 120)
    rows = {}
    for openid, msgtype, content, payload in pg_query(
            st, "SELECT openid, msgtype, content, payload FROM messages"
            " WHERE direction = 'i' AND openid = ANY(%s)",
            ([s[1] for s in stored] + [i for r in refused for i in r[1]],)):
        rows.setdefault(openid, []).append((msgtype, content, payload))
    adm = {'Authorization': 'Bearer ' + st.admin_token}
    for where, openid, field, how, items in stored:
        want = {k: stored_value(val, how) if k == field else val
                for k, val in items.items()}
        got = rows.get(openid, [])
        if not f.check(len(got) == 1, where, '%d rows in messages'
                       % len(got)):
            continue
        msgtype, content, payload = got[0]
        f.check(payload == want, where, 'messages.payload differs')
        f.check(msgtype == want['MsgType'], where, 'messages.msgtype %r'
                % msgtype)
        f.check(content == content_of(want), where, 'messages.content %r'
                % (content or '')[:80])
        h = requests.get(st.base + '/api/v1/users/%s/messages' % openid,
                         headers=adm, timeout=10)
        if f.check(h.status_code == 200, where, 'history %s' % h.status_code):
            ms = h.json()['messages']
            f.check(len(ms) == 1 and ms[0]['payload'] == want and
                    ms[0]['content'] == content_of(want) and
                    ms[0]['msgtype'] == want['MsgType'], where,
                    'history API differs: %r' % (ms[:1],))
    for where, ids in refused:
        f.check(not any(i in rows for i in ids), where,
                'refused but archived')
    undamaged['new_messages'] = len(stored)
    print('callback elements: %d fields x %d strings: %d stored, %d refused'
          ' (%d by nginx)' % (len(CALLBACK_FIELDS), len(HOSTILE), len(stored),
                              len(refused), f.by_nginx))
    f.assert_none()


# --- 2. the query string of a callback ----------------------------------------------

def callback_query(u, param, v):
    """The query of a correctly signed plain push, with param set to v
    (and the signature computed over it where it is signed)."""
    ts, nonce = str(int(time.time())), str(time.monotonic_ns() % 10 ** 9)
    q = {'timestamp': utf8(ts), 'nonce': utf8(nonce),
         'openid': utf8(u.openid)}
    if param == 'timestamp':
        q['timestamp'] = utf8(v)
    if param == 'nonce':
        q['nonce'] = utf8(v)
    q['signature'] = utf8(wc.sign(u.token, q['timestamp'], q['nonce']))
    if param in ('signature', 'openid', 'encrypt_type', 'msg_signature',
                 'echostr', 'unlisted'):
        q[param] = utf8(v)
    return '&'.join('%s=%s' % (k, pct(val)) for k, val in q.items())


# (parameter, method): every parameter of GET and POST /wechat.
QUERY_PARAMS = [
    ('signature', 'POST'),
    ('timestamp', 'POST'),
    ('nonce', 'POST'),          # signed: a hostile nonce is still a nonce
    ('openid', 'POST'),         # not read: WeChat's copy of FromUserName
    ('encrypt_type', 'POST'),
    ('msg_signature', 'POST'),  # not read in plaintext mode
    ('unlisted', 'POST'),
    ('echostr', 'GET'),
    ('timestamp', 'GET'),
    ('nonce', 'GET'),
]


def query_expect(param, method, v, qs):
    """None: accepted (POST stored, GET echoes echostr); else (statuses,
    codes, whether nginx may refuse it first)."""
    if len(qs) > 4096:                      # HTTP_QUERY_MAX, nginx's 8k
        return (400,), ('bad_query',), True
    if b'\x00' in utf8(v):                  # a decoded NUL
        return (400,), ('bad_query',), False
    if param in ('signature', 'timestamp'):
        return (403,), ('bad_signature',), False
    if param == 'encrypt_type':             # raw or aes
        return (400,), ('invalid_field',), False
    if param == 'echostr' and len(utf8(v)) > 512:
        return (400,), ('invalid_field',), False
    return None


def test_hostile_strings_in_every_callback_query_parameter(hstack,
                                                            undamaged):
    st = hstack
    f = Findings()
    stored = 0
    for param, method in QUERY_PARAMS:
        for name, v in HOSTILE:
            where = '?%s (%s) x %s' % (param, method, name)
            u = st.user()
            content = 'query %s %s' % (param, name)
            body = u.text_xml(content).encode()
            qs = callback_query(u, param, v)
            if method == 'GET' and param != 'echostr':
                qs += '&echostr=hello'
            want = query_expect(param, method, v, qs)
            r = raw_http(st, method, '/wechat?' + qs,
                         [('Content-Type', 'text/xml')],
                         body if method == 'POST' else b'')
            if want is not None:
                f.refused(where, r, want[0], want[1], nginx=want[2])
                f.check(not [e for _id, e in st.entries()
                             if e.get('openid') == u.openid],
                        where, 'refused but recorded')
                continue
            if not f.check(r[0] == 200, where, 'expected 200, got %s %r'
                           % (r[0], r[2][:200])):
                continue
            if method == 'GET':
                echo = utf8(v) if param == 'echostr' else b'hello'
                f.check(r[2] == echo, where, 'echoed %r' % r[2][:80])
                f.check(r[1].get('content-type', '').startswith(
                    'text/plain'), where, 'echo served as %r'
                    % r[1].get('content-type'))
            else:
                stored += 1
                es = [e for _id, e in st.entries()
                      if e.get('openid') == u.openid and
                      e.get('type') == 'msg_in']
                f.check(len(es) == 1 and json.loads(es[0]['payload'])[
                    'Content'] == content, where, 'stream has %r' % es)
    undamaged['new_messages'] = stored
    print('callback query: %d parameters x %d strings: %d stored, %d'
          ' refused by the worker, %d by nginx' % (
              len(QUERY_PARAMS), len(HOSTILE), stored, f.by_worker,
              f.by_nginx))
    f.assert_none()


# --- 3. every REST API field ----------------------------------------------------------

MARK = '\ue000HOSTILE\ue000'


def json_with(obj, v):
    """obj as JSON with MARK replaced by v: a str as a JSON string (NUL as
    \\u0000), bytes as they are (invalid UTF-8 inside the string)."""
    out = json.dumps(obj, ensure_ascii=False).encode('utf-8')
    if isinstance(v, str):
        ins = json.dumps(v, ensure_ascii=False)[1:-1].encode('utf-8')
    else:
        ins = v
    return out.replace(MARK.encode('utf-8'), ins)


def nick_ok(v):
    """docs/api.md: 1..64 characters of UTF-8, no control characters."""
    return is_json_text(v) and 1 <= len(v) <= 64 and \
        len(utf8(v)) <= 255 and not any(
            ord(c) < 0x20 or 0x7f <= ord(c) < 0xa0 for c in v)


def text_ok(v):
    """A text message: 1..2048 bytes."""
    return is_json_text(v) and 1 <= len(utf8(v)) <= 2048


def q_ok(v):
    """Search: 2..100 characters of UTF-8 (and a query string can carry
    no NUL)."""
    return is_json_text(v) and 2 <= len(v) <= 100


class Api:
    def __init__(self, stack, token):
        self.st, self.token = stack, token

    def json(self, method, path, obj, v):
        r = requests.request(method, self.st.base + path,
                             data=json_with(obj, v), timeout=10,
                             headers={'Authorization': 'Bearer ' + self.token,
                                      'Content-Type': 'application/json'})
        return resp3(r)

    def get(self, path, **params):
        """GET with each parameter percent-encoded byte for byte."""
        qs = '&'.join('%s=%s' % (k, pct(v)) for k, v in params.items())
        return raw_http(self.st, 'GET', path + ('?' + qs if qs else ''),
                        [('Authorization', 'Bearer ' + self.token)])

    def path(self, method, path, v, body=b''):
        return raw_http(self.st, method, path.replace('{}', pct(v)),
                        [('Authorization', 'Bearer ' + self.token)], body)


BAD_JSON = ('invalid_field', 'bad_json')
BAD_QUERY = ('invalid_field', 'bad_query')
NOT_FOUND = ('not_found',)


def rest_fields(adm, agent, user):
    """(field, request(i, v), expectation): expectation is 'nick',
    'nick_patch', 'text' or 'search' (stored or found when the value is one
    the API takes, else refused), 'json_refused' (a JSON body field no
    hostile string is valid for: 400, or 413 past 16 KiB), or (statuses,
    codes, whether nginx may refuse it before any worker)."""
    me = user.openid
    a = '/api/v1/agents'
    return [
        # admin: agents
        ('POST /agents account',
         lambda i, v: adm.json('POST', a, {'account': MARK, 'nick': 'n'}, v),
         'json_refused'),
        ('POST /agents nick',
         lambda i, v: adm.json('POST', a, {'account': 'hn%d' % i,
                                           'nick': MARK}, v), 'nick'),
        ('PATCH /agents/{a} nick',
         lambda i, v: adm.json('PATCH', a + '/hxp', {'nick': MARK}, v),
         'nick_patch'),
        ('POST /agents weight',
         lambda i, v: adm.json('POST', a, {'account': 'hw', 'nick': 'n',
                                           'weight': MARK}, v),
         'json_refused'),
        ('POST /agents capacity',
         lambda i, v: adm.json('POST', a, {'account': 'hc', 'nick': 'n',
                                           'capacity': MARK}, v),
         'json_refused'),
        ('POST /agents groups',
         lambda i, v: adm.json('POST', a, {'account': 'hg', 'nick': 'n',
                                           'groups': ['sales', MARK]}, v),
         'json_refused'),
        ('PATCH /agents/{a} groups',
         lambda i, v: adm.json('PATCH', a + '/hxp', {'groups': [MARK]}, v),
         'json_refused'),
        ('PATCH /agents/{a} weight',
         lambda i, v: adm.json('PATCH', a + '/hxp', {'weight': MARK}, v),
         'json_refused'),
        ('GET /agents/{account}',
         lambda i, v: adm.path('GET', a + '/{}', v), ((404,), NOT_FOUND,
                                                     True)),
        ('PATCH /agents/{account}',
         lambda i, v: adm.path('PATCH', a + '/{}', v, b'{"nick":"x"}'),
         ((404,), NOT_FOUND, True)),
        ('DELETE /agents/{account}',
         lambda i, v: adm.path('DELETE', a + '/{}', v),
         ((404,), NOT_FOUND, True)),
        ('POST /agents/{account}/token',
         lambda i, v: adm.path('POST', a + '/{}/token', v),
         ((404,), NOT_FOUND, True)),
        ('GET /sessions?state',
         lambda i, v: adm.get('/api/v1/sessions', state=v),
         ((400,), BAD_QUERY, True)),
        ('GET /sessions?limit',
         lambda i, v: adm.get('/api/v1/sessions', limit=v),
         ((400,), BAD_QUERY, True)),
        ('GET /queue?limit',
         lambda i, v: adm.get('/api/v1/queue', limit=v),
         ((400,), BAD_QUERY, True)),
        # the agent
        ('Authorization token',
         lambda i, v: raw_http(adm.st, 'GET', '/api/v1/me',
                               [('Authorization', b'Bearer ' + utf8(v))]),
         ((401,), ('unauthorized',), True)),
        ('POST /me/status status',
         lambda i, v: agent.json('POST', '/api/v1/me/status',
                                 {'status': MARK}, v),
         'json_refused'),
        ('GET /me/events?after',
         lambda i, v: agent.get('/api/v1/me/events', after=v),
         ((400,), BAD_QUERY, True)),
        ('GET /me/events?limit',
         lambda i, v: agent.get('/api/v1/me/events', limit=v),
         ((400,), BAD_QUERY, True)),
        ('GET /me/stream?ticket',
         lambda i, v: raw_http(adm.st, 'GET', '/api/v1/me/stream?ticket=' +
                               pct(v), [('Accept', 'text/event-stream')]),
         ((401, 400), ('unauthorized', 'bad_query'), True)),
        ('POST /media Content-Type',
         lambda i, v: raw_http(adm.st, 'POST', '/api/v1/media',
                               [('Authorization', 'Bearer ' + agent.token),
                                ('Content-Type', v)], PNG_1PX),
         # a CR LF LF in the header ends the headers early: no body
         ((400,), ('unsupported_media', 'bad_body'), True)),
        # sessions
        ('POST /sessions/{o}/messages text.content',
         lambda i, v: agent.json('POST', '/api/v1/sessions/%s/messages' % me,
                                 {'msgtype': 'text',
                                  'text': {'content': MARK}}, v), 'text'),
        ('POST /sessions/{o}/messages msgtype',
         lambda i, v: agent.json('POST', '/api/v1/sessions/%s/messages' % me,
                                 {'msgtype': MARK,
                                  'text': {'content': 'x'}}, v),
         'json_refused'),
        ('POST /sessions/{o}/transfer to_agent',
         lambda i, v: agent.json('POST', '/api/v1/sessions/%s/transfer' % me,
                                 {'to_agent': MARK}, v),
         'json_refused'),
        ('POST /sessions/{o}/transfer to_group',
         lambda i, v: agent.json('POST', '/api/v1/sessions/%s/transfer' % me,
                                 {'to_group': MARK}, v),
         'json_refused'),
        ('GET /sessions/{openid}',
         lambda i, v: agent.path('GET', '/api/v1/sessions/{}', v),
         ((404,), NOT_FOUND, True)),
        ('POST /sessions/{openid}/close',
         lambda i, v: agent.path('POST', '/api/v1/sessions/{}/close', v),
         ((404,), NOT_FOUND, True)),
        ('POST /sessions/{openid}/messages',
         lambda i, v: agent.path('POST', '/api/v1/sessions/{}/messages', v,
                                 b'{"msgtype":"text","text":{"content":"x"}}'),
         ((404,), NOT_FOUND, True)),
        ('GET /media/{media_id}',
         lambda i, v: agent.path('GET', '/api/v1/media/{}', v),
         ((404,), NOT_FOUND, True)),
        # history
        ('GET /users/{openid}/messages',
         lambda i, v: adm.path('GET', '/api/v1/users/{}/messages', v),
         ((404,), NOT_FOUND, True)),
        ('GET /users/{o}/messages?before',
         lambda i, v: agent.get('/api/v1/users/%s/messages' % me, before=v),
         ((400,), BAD_QUERY, True)),
        ('GET /users/{o}/messages?limit',
         lambda i, v: agent.get('/api/v1/users/%s/messages' % me, limit=v),
         ((400,), BAD_QUERY, True)),
        ('GET /sessions/{openid}/transcript',
         lambda i, v: adm.path('GET', '/api/v1/sessions/{}/transcript', v),
         ((404,), NOT_FOUND, True)),
        ('GET /sessions/{o}/transcript?session',
         lambda i, v: agent.get('/api/v1/sessions/%s/transcript' % me,
                                session=v), ((400,), BAD_QUERY, True)),
        ('GET /sessions/{o}/transcript?after',
         lambda i, v: agent.get('/api/v1/sessions/%s/transcript' % me,
                                after=v), ((400,), BAD_QUERY, True)),
        ('GET /sessions/{o}/transcript?limit',
         lambda i, v: agent.get('/api/v1/sessions/%s/transcript' % me,
                                limit=v), ((400,), BAD_QUERY, True)),
        ('GET /search?before',
         lambda i, v: adm.get('/api/v1/search', q='hello', before=v),
         ((400,), BAD_QUERY, True)),
        ('GET /search?limit',
         lambda i, v: adm.get('/api/v1/search', q='hello', limit=v),
         ((400,), BAD_QUERY, True)),
        ('GET /search?q',
         lambda i, v: adm.get('/api/v1/search', q=v, limit='200'), 'search'),
    ]


PNG_1PX = (b'\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00'
           b'\x01\x08\x02\x00\x00\x00\x90wS\xde\x00\x00\x00\x0cIDATx\x9cc'
           b'\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef\x00\x00'
           b'\x00\x00IEND\xaeB`\x82')


def test_hostile_strings_in_every_rest_field(hstack, fsim, undamaged):
    st, sim = hstack, fsim
    f = Findings()
    adm = Api(st, st.admin_token)
    agent = Agent(st, 'hx1', add_agent(st, 'hx1'))
    agent.status('online')
    api_agent = Api(st, agent.token)
    r = requests.post(st.base + '/api/v1/agents', json={
        'account': 'hxp', 'nick': 'P'}, timeout=10,
        headers={'Authorization': 'Bearer ' + st.admin_token})
    assert r.status_code == 201, r.text
    u = st.user()
    sim.inbound(u.openid)
    assert u.send_text('hello').status_code == 200
    wait_until(lambda: u.openid in agent.sessions(), 10, what='assigned')
    inbound, sent, nicks, searched = 1, [], {}, []

    fields = rest_fields(adm, api_agent, u)
    for i, (name, v) in enumerate(HOSTILE):
        # the user writes first (the hostile text when XML can carry it):
        # it is there to be searched for, and opens the window to answer
        body, _ = callback_body('text', u.openid, 'Content',
                                v if is_xml_text(v) else 'again ' + name,
                                'plain')
        assert u.send_raw(body).status_code == 200
        inbound += 1
        sim.inbound(u.openid)
        for field, call, want in fields:
            where = '%s x %s' % (field, name)
            if want == 'search':        # once the archiver has the message
                searched.append((where, v, lambda call=call, i=i, v=v:
                                 call(i, v)))
                continue
            r = call(i, v)
            if want == 'json_refused':  # a JSON body: refused, or too big
                want = ((413,), ('body_too_large',), False) \
                    if len(utf8(v)) > 16384 else ((400,), BAD_JSON, False)
            if want in ('nick', 'nick_patch'):
                if len(utf8(v)) > 16384:
                    f.refused(where, r, (413,), ('body_too_large',))
                elif nick_ok(v):
                    if f.check(r[0] in (200, 201), where, 'expected 2xx, '
                               'got %s %r' % (r[0], r[2][:200])):
                        nicks['hn%d' % i if want == 'nick' else 'hxp'] = v
                        acct = 'hn%d' % i if want == 'nick' else 'hxp'
                        g = requests.get(st.base + '/api/v1/agents/' + acct,
                                         timeout=10, headers={
                                             'Authorization': 'Bearer ' +
                                             st.admin_token})
                        f.check(g.status_code == 200 and
                                g.json()['agent']['nick'] == v, where,
                                'read back %s %r' % (g.status_code,
                                                     g.text[:200]))
                        if acct == 'hxp':
                            f.check(pg_query(st, 'SELECT nick FROM agents'
                                             ' WHERE account = %s',
                                             (acct,)) == [(v,)], where,
                                    'agents.nick differs')
                else:
                    f.refused(where, r, (400,), BAD_JSON)
            elif want == 'text':
                if len(utf8(v)) > 16384:
                    f.refused(where, r, (413,), ('body_too_large',))
                elif text_ok(v):
                    if f.check(r[0] in (200, 202), where, 'expected 200/202,'
                               ' got %s %r' % (r[0], r[2][:200])):
                        sent.append((where, v))
                else:
                    f.refused(where, r, (400,), BAD_JSON)
            else:
                f.refused(where, r, want[0], want[1], nginx=want[2])

    # what "WeChat" got, byte for byte
    got = [s['body'].get('text', {}).get('content')
           for s in (sim.sent() if isinstance(sim.sent(), list)
                     else sim.sent()['sent'])
           if s['touser'] == u.openid and s['msgtype'] == 'text']
    for where, v in sent:
        f.check(v in got, where, 'not delivered as sent')
    for acct, v in nicks.items():
        f.check(pg_query(st, 'SELECT nick FROM agents WHERE account = %s',
                         (acct,)) == [(v,)], 'nick of %s' % acct,
                'agents.nick differs')

    # archived: the user's messages and the answers, byte for byte
    wait_archived(st, 120)
    rows = pg_query(st, "SELECT direction, content FROM messages"
                    " WHERE openid = %s", (u.openid,))
    outs = [c for d, c in rows if d == 'o']
    ins = [c for d, c in rows if d == 'i']
    for where, v in sent:
        f.check(outs.count(v) >= 1, where, 'answer not archived as sent')
    for _name, v in HOSTILE:
        if is_xml_text(v):
            f.check(v in ins, 'inbound Content', 'not archived: %r' % v[:40])
    h = requests.get(st.base + '/api/v1/users/%s/messages' % u.openid,
                     params={'limit': 200}, timeout=10,
                     headers={'Authorization': 'Bearer ' + agent.token})
    assert h.status_code == 200, h.text
    hist = [m['content'] for m in h.json()['messages']]
    for where, v in sent:
        f.check(v in hist, where, 'history API lost the answer')

    # search: only messages that contain q (no widening by SQL or LIKE
    # metacharacters), the user's own message among them
    for where, v, call in searched:
        r = call()
        if not q_ok(v):
            f.refused(where, r, (400,), BAD_QUERY, nginx=True)
            continue
        if not f.check(r[0] == 200, where, 'search %s %r' % (r[0],
                                                             r[2][:200])):
            continue
        ms = json.loads(r[2])['messages']
        bad = [m['content'] for m in ms
               if v.lower() not in (m['content'] or '').lower()]
        f.check(not bad, where, 'search matched %r' % bad[:3])
        if is_xml_text(v):
            f.check(any(m['openid'] == u.openid and m['direction'] == 'in'
                        and m['content'] == v for m in ms), where,
                    'the message itself was not found')
    undamaged['new_messages'] = inbound + len(sent)
    print('REST: %d fields x %d strings; %d answers sent, %d nicks stored,'
          ' %d searches; refused: %d by the worker, %d by nginx'
          % (len(fields), len(HOSTILE), len(sent), len(nicks), len(searched),
             f.by_worker, f.by_nginx))
    f.assert_none()
