#!/usr/bin/python3
"""A local stand-in for WeChat's API server and for its users.

API side (what wxkf calls; api_base = http://127.0.0.1:PORT): the access
token endpoints, message/custom/send and typing, media upload/get, the
users' profiles (user/info and user/info/updateremark) and the account's
user tags (tags/get), the
customer-service account, session and chat-record APIs, with WeChat's
errcodes, quotas and token rules (docs/wechat-protocol.md sections 6-8).
Errors are HTTP 200 {"errcode":N,"errmsg":"... rid: ..."} like WeChat's.

Control side (tests and the sandbox), JSON under /_sim/:

    GET  /_sim/health                   {"ok": true, ...}
    GET  /_sim/sent[?touser=&since=ID]  accepted custom/send calls, oldest
                                        first: [{"id","ts","touser",
                                        "msgtype","kf_account","body"}]
    GET  /_sim/calls[?path=P]           per path: count, ts list, results
                                        (errcode or "http502"/"drop" ->
                                        n); per token: count, paths;
                                        issued: every token issued
    POST /_sim/reset                    tokens, users, sends, calls, faults,
                                        kf accounts, sessions, media,
                                        tunables and clock back to start
                                        (identity settings are kept)
    GET|POST /_sim/config               tunables (DEFAULTS below) and
                                        identity (appid|app_id, secret,
                                        callback, token, aes_key,
                                        original_id, wechat_id)
    GET|POST /_sim/token                state; {"expire_all":true} (42001
                                        afterwards), {"revoke_all":true}
                                        (40001), {"expire"|"revoke":TOKEN}
    POST /_sim/inbound                  {"openid","ts"?,"event"?}: a user
                                        interaction without a callback
    POST /_sim/fault                    {"path","kind","errcode","errmsg",
                                        "status","delay_ms","count","after"}
    GET  /_sim/faults                   the queue; POST /_sim/faults/clear
    POST /_sim/media                    {"media_id"?,"content_type",
                                        "data_b64","type"?} -> {"media_id"}
    POST /_sim/kf_online                {"kf_account","status":0|1|2|3}
    POST /_sim/kf_invite                {"kf_account","action":"accept"|
                                        "reject"|"expire"}
    POST /_sim/waitcase                 {"openid","ts"?}: queue a user
    GET|POST /_sim/clock                {"advance":S} | {"now":EPOCH} |
                                        {"offset":S}: the simulated clock
    GET  /_sim/users[/OPENID]           user state (window, quota, ...)
    POST /_sim/users/OPENID/send        the user pushes a message to the
                                        callback URL (see user_send)
    POST /_sim/users/OPENID/tags        {"tagid_list":[id...]}: the user's
                                        tags (user/info's tagid_list)
    GET|POST /_sim/tags                 the account's tags, {"tags":[{"id",
                                        "name"}...]} (POST replaces them;
                                        tags/get adds each one's count)
    GET  /_sim/pushes                   the pushes made, with the results
    GET  /_sim/kf                       kf accounts, live sessions and the
                                        log of kfsession create / close
                                        calls: [{"op","kf_account",
                                        "openid","errcode","ts"}]

Fault kinds: "errcode" (HTTP 200 {"errcode":errcode(-1)}), "http" (that
HTTP status, default 502, HTML body), "delay" (wait delay_ms, then handle
normally), "drop" (close the connection without an answer; the call has
no effect), "drop_after" (handle the call, then close without an
answer). A fault matches calls to `path` ("*" or absent: every API path,
never /_sim/); it lets `after` matching calls pass, then affects `count`
(default 1) of them and is gone. The first live fault in queue order wins.

Notes on fidelity:
* /cgi-bin/token issues a new token each call; the previous one keeps
  working for overlap_s (300 s), any older one stops at once (40001).
* /cgi-bin/stable_token returns the same token while more than 300 s are
  left, then a new one (the old one lives out its time); force_refresh
  revokes the current one at once (20 a day; stable_force_interval_s
  apart, default 0 here, 30 s at WeChat).
* An unknown API path is HTTP 404 {"errcode":-1,"errmsg":"unknown api
  path ..."}; a wrong method 43001 / 43002 as WeChat.
* media/upload?type=thumb answers media_id and also thumb_media_id (WeChat
  answers only thumb_media_id).
* media ids in sends are checked against known media only when
  strict_media is true (default false: presence only).
* A user who unsubscribed gets 45015; every other interaction (message or
  event) opens the 48-hour window and resets the per-window quota. While
  a user has a WeChat-side kf session (kfsession/create or a
  transfer_customer_service reply), the user's messages (not events) go
  to that session and are not pushed, like WeChat does.

Command line:

    /usr/bin/python3 test/sim/wechat_api_sim.py --port 8089 --appid wx.. \\
        --secret S --callback http://127.0.0.1:8080/wechat --token T \\
        --aes-key K --original-id gh_..

In-process (pytest): `with SimServer(appid=..., secret=...) as sim:`
sim.base_url, sim.call('GET', '/_sim/sent'), ...

The API side uses the standard library only; the user side imports
wxuser / wechat_crypto (python3-cryptography) when first used.
"""

import argparse
import base64
import binascii
import copy
import http.client
import json
import mimetypes
import os
import re
import secrets
import signal
import socket
import sys
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)      # wxuser, wechat_crypto (user side)

SMALL_BODY = 64 * 1024
MEDIA_BODY = 10 * 1024 * 1024
SIM_MEDIA_BODY = 16 * 1024 * 1024   # base64 of 10 MiB + JSON
BIG_BODY_PATHS = ('/cgi-bin/media/upload',
                  '/customservice/kfaccount/uploadheadimg')
MAX_TS_PER_PATH = 10000
MAX_PUSHES = 1000
# the account's user tags (tags/get): WeChat's own 星标组 (id 2, which
# every simulated user has) and two an account would make
DEFAULT_TAGS = {2: '星标组', 100: '老客户', 101: '华东大区'}
DAY_TZ_OFFSET = 8 * 3600     # WeChat's days start at midnight Beijing time

DEFAULTS = {
    'expires_in': 7200,             # token lifetime (s)
    'overlap_s': 300,               # classic: previous token keeps working
    'stable_refresh_before_s': 300,  # stable: rotate this long before expiry
    'send_quota': 5,                # custom/send per user window
    'window_s': 48 * 3600,          # custom/send window after an interaction
    'daily_send_cap': 500000,       # custom/send per day (45009)
    'token_daily_cap': 2000,        # /cgi-bin/token per day (45009)
    'stable_daily_cap': 500000,     # /cgi-bin/stable_token per day
    'stable_force_daily_cap': 20,   # force_refresh per day
    'stable_force_interval_s': 0,   # min gap between force refreshes
    'typing_window_s': 30,          # typing needs an interaction this recent
    'typing_duration_s': 15,        # a Typing lasts this long (45081)
    'kf_max': 100,                  # kf accounts (65405)
    'nickname_max': 16,             # kf nickname characters (65403)
    'kf_session_idle_s': 1800,      # WeChat-side session released after
    'strict_media': False,          # sends must name known media (40007)
    'callback_timeout_s': 5.0,      # user side: WeChat's push deadline
    'callback_retries': 2,          # user side: re-sends after a timeout
    'default_mode': 'plain',        # user side: plain | compat | safe
}
IDENTITY_KEYS = ('appid', 'secret', 'callback', 'token', 'aes_key',
                 'original_id', 'wechat_id')

MSGTYPES = ('text', 'image', 'voice', 'video', 'music', 'news', 'mpnews',
            'mpnewsarticle', 'msgmenu', 'wxcard', 'miniprogrampage')

KF_ACCOUNT_RE = re.compile(r'\A([A-Za-z0-9_]{1,10})@([A-Za-z0-9_.-]{1,30})\Z')
WX_ID_RE = re.compile(r'\A[A-Za-z][A-Za-z0-9_-]{5,19}\Z')
OPENID_RE = re.compile(r'\A[A-Za-z0-9_-]{1,64}\Z')

ERRMSG = {
    -1: 'system error',
    40001: 'invalid credential, access_token is invalid or not latest',
    40002: 'invalid grant_type',
    40003: 'invalid openid',
    40004: 'invalid media type',
    40005: 'invalid file type',
    40006: 'invalid meida size',
    40007: 'invalid media_id',
    40008: 'invalid message type',
    40009: 'invalid image size',
    40010: 'invalid voice size',
    40011: 'invalid video size',
    40013: 'invalid appid',
    40014: 'invalid access_token',
    41001: 'access_token missing',
    41002: 'appid missing',
    41004: 'appsecret missing',
    41005: 'media data missing',
    42001: 'access_token expired',
    43001: 'require GET method',
    43002: 'require POST method',
    44002: 'empty post data',
    44003: 'empty news data',
    44004: 'empty content',
    45002: 'content size out of limit',
    45008: 'article size out of limit',
    45009: 'reach max api daily quota limit',
    45015: 'response out of time limit or subscription is canceled',
    45047: 'out of response count limit',
    45072: 'command field error',
    45080: 'has not sent message to user in 30 seconds',
    45081: 'already in typing status',
    47001: 'data format error',
    65401: 'invalid custom service account',
    65402: 'the custom service account need to bind a wechat user',
    65403: 'illegal nickname',
    65404: 'illegal custom service account',
    65405: 'custom service account number reach limit',
    65406: 'custom service account exists',
    65407: 'the wechat user have been one of your workers',
    65408: 'you have already invited the wechat user',
    65409: 'wechat account invalid',
    65411: 'a effective invitation to bind the custom service account exists',
    65412: 'the custom service account have been bound by a wechat user',
    65413: 'no session for this user',
    65414: 'user is being served by another agent',
    65415: 'the worker is not online',
    65416: 'invalid query parameters',
}

MEDIA_RULES = {   # type -> (max bytes, size errcode, allowed extensions)
    'image': (10 * 1024 * 1024, 40009, ('bmp', 'png', 'jpeg', 'jpg', 'gif')),
    'voice': (2 * 1024 * 1024, 40010, ('mp3', 'wma', 'wav', 'amr', 'speex')),
    'video': (10 * 1024 * 1024, 40011, ('mp4',)),
    'thumb': (64 * 1024, 40006, ('jpg', 'jpeg')),
}

# Placeholder bytes for media a simulated user "sends" without seeding.
TINY_JPEG = base64.b64decode(
    '/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP////////////////////////////////'
    '//////////////////////////////////////////////////////wgALCAABAAEB'
    'AREA/8QAFBABAAAAAAAAAAAAAAAAAAAAAP/aAAgBAQABPxA=')
TINY_AMR = b'#!AMR\n' + b'\x3c' + b'\x00' * 31


def _rid():
    return '%08x-%08x-%08x' % (secrets.randbits(32), secrets.randbits(32),
                                secrets.randbits(32))


def _errmsg(code, msg=None):
    return '%s rid: %s' % (msg or ERRMSG.get(code, 'error'), _rid())


class ApiError(Exception):
    """A WeChat error answer: HTTP 200 {"errcode","errmsg"}."""

    def __init__(self, code, msg=None):
        super().__init__(code)
        self.code = code
        self.msg = msg


class ControlError(Exception):
    """A control-API error: HTTP status with {"error": message}."""

    def __init__(self, status, msg):
        super().__init__(msg)
        self.status = status
        self.msg = msg


class Response:
    """What the handler writes. kind: "normal", "drop" (close at once),
    "drop_after" (the call was handled; close without answering)."""

    def __init__(self, status=200, body=b'', ctype=None, headers=None,
                 kind='normal', result=None):
        self.status = status
        self.body = body
        self.ctype = ctype
        self.headers = headers or {}
        self.kind = kind
        self.result = result      # for /_sim/calls results


def api_json(obj, status=200):
    body = json.dumps(obj, ensure_ascii=False).encode('utf-8')
    code = obj.get('errcode', 0) if isinstance(obj, dict) else 0
    # WeChat's own (odd) header.
    return Response(status, body, 'application/json; encoding=utf-8',
                    result=str(code or 0))


def api_error(code, msg=None, status=200):
    return api_json({'errcode': code, 'errmsg': _errmsg(code, msg)}, status)


def api_ok(extra=None):
    obj = {'errcode': 0, 'errmsg': 'ok'}
    obj.update(extra or {})
    return api_json(obj)


def control_json(obj, status=200):
    body = json.dumps(obj, ensure_ascii=False, indent=None).encode('utf-8')
    return Response(status, body, 'application/json; charset=utf-8')


# --- multipart/form-data (stdlib only) -------------------------------------

def parse_multipart(body, content_type):
    """-> list of dicts {name, filename, content_type, data}."""
    m = re.search(r'boundary=(?:"([^"]+)"|([^;\s]+))', content_type or '',
                  re.I)
    if not m:
        raise ValueError('no multipart boundary')
    bnd = (m.group(1) or m.group(2)).encode('latin-1')
    chunks = (b'\r\n' + body).split(b'\r\n--' + bnd)
    parts = []
    for chunk in chunks[1:]:
        if chunk.startswith(b'--'):
            break
        if chunk.startswith(b'\r\n'):
            chunk = chunk[2:]
        head, sep, data = chunk.partition(b'\r\n\r\n')
        if not sep:
            continue
        p = {'name': None, 'filename': None, 'content_type': None,
             'data': data}
        for line in head.decode('utf-8', 'replace').split('\r\n'):
            key, _, val = line.partition(':')
            key = key.strip().lower()
            if key == 'content-disposition':
                for attr in ('name', 'filename'):
                    am = re.search(r'(?:^|;)\s*%s="([^"]*)"' % attr, val) or \
                        re.search(r'(?:^|;)\s*%s=([^;\s]+)' % attr, val)
                    if am:
                        p[attr] = am.group(1)
            elif key == 'content-type':
                p['content_type'] = val.strip()
        parts.append(p)
    return parts


# --- the state -------------------------------------------------------------

class SimState:
    """Everything the simulator knows; one RLock guards it all."""

    def __init__(self, appid=None, secret=None, callback=None, token=None,
                 aes_key=None, original_id=None, wechat_id=None,
                 clock=time.time, **tunables):
        self.lock = threading.RLock()
        self.clock = clock
        self.identity = {
            'appid': appid or 'wx' + secrets.token_hex(8),
            'secret': secret if secret is not None else secrets.token_hex(16),
            'callback': callback or '',
            'token': token or '',
            'aes_key': aes_key or '',
            'original_id': original_id or 'gh_000000000000',
            'wechat_id': wechat_id or '',
        }
        self.start_tunables = dict(DEFAULTS)
        self._apply_tunables(self.start_tunables, tunables)
        self.port = 0
        self.reset()

    # --- basics ---

    def reset(self):
        with self.lock:
            self.cfg = dict(self.start_tunables)
            self.offset = 0.0
            self.tokens = {}          # token -> info
            self.issued = []          # [token] in issue order
            self.classic_current = None
            self.stable_current = None
            self.last_force = None
            self.days = {}            # day -> {counter: n}
            self.users = {}           # openid -> state
            self.sent = []
            self.records = []         # getmsglist records
            self.calls = {}           # path -> {count, ts, results}
            self.token_usage = {}     # token -> {count, paths}
            self.faults = []
            self.fault_seq = 0
            self.kf = {}              # kf_account -> record (ordered)
            self.kf_seq = 1000
            self.sessions = {}        # openid -> {kf_account, createtime,..}
            self.kf_log = []          # kfsession create/close calls
            self.waitcase = []        # [{openid, latest_time}]
            self.media = {}           # media_id -> {...}
            self.pushes = []
            self.tags = dict(DEFAULT_TAGS)   # id -> name (tags/get)

    def now(self):
        return self.clock() + self.offset

    def _day(self):
        d = int((self.now() + DAY_TZ_OFFSET) // 86400)
        if d not in self.days:
            self.days = {d: {}}
        return self.days[d]

    def _daily(self, name):
        return self._day().get(name, 0)

    def _daily_add(self, name):
        day = self._day()
        day[name] = day.get(name, 0) + 1

    @staticmethod
    def _apply_tunables(target, values):
        for k, v in values.items():
            if k not in DEFAULTS:
                raise ControlError(400, 'unknown config key %r' % k)
            d = DEFAULTS[k]
            if isinstance(d, bool):
                if not isinstance(v, bool):
                    raise ControlError(400, '%s must be true or false' % k)
            elif isinstance(d, (int, float)):
                if isinstance(v, bool) or not isinstance(v, (int, float)) \
                        or v < 0:
                    raise ControlError(400, '%s must be a number >= 0' % k)
                v = float(v) if isinstance(d, float) else int(v)
            elif k == 'default_mode':
                if v not in ('plain', 'compat', 'safe'):
                    raise ControlError(400, 'default_mode: plain|compat|safe')
            target[k] = v

    def set_config(self, values):
        if not isinstance(values, dict):
            raise ControlError(400, 'config must be a JSON object')
        with self.lock:
            ident = {}
            tun = {}
            for k, v in values.items():
                key = 'appid' if k == 'app_id' else k
                if key in IDENTITY_KEYS:
                    if not isinstance(v, str):
                        raise ControlError(400, '%s must be a string' % k)
                    ident[key] = v
                else:
                    tun[k] = v
            new = dict(self.cfg)
            self._apply_tunables(new, tun)
            self.cfg = new
            self.identity.update(ident)
            return self.get_config()

    def get_config(self):
        with self.lock:
            out = dict(self.cfg)
            out.update(self.identity)
            out['app_id'] = self.identity['appid']
            return out

    # --- calls bookkeeping and faults ---

    def record_call(self, path, token):
        with self.lock:
            c = self.calls.setdefault(path, {'count': 0, 'ts': [],
                                             'results': {}})
            c['count'] += 1
            c['ts'].append(round(self.now(), 3))
            if len(c['ts']) > MAX_TS_PER_PATH:
                del c['ts'][:len(c['ts']) - MAX_TS_PER_PATH]
            if token is not None:
                u = self.token_usage.setdefault(token, {'count': 0,
                                                        'paths': {}})
                u['count'] += 1
                u['paths'][path] = u['paths'].get(path, 0) + 1

    def record_result(self, path, result):
        if result is None:
            return
        with self.lock:
            c = self.calls.get(path)
            if c is not None:
                c['results'][result] = c['results'].get(result, 0) + 1

    def add_fault(self, spec):
        if not isinstance(spec, dict):
            raise ControlError(400, 'fault must be a JSON object')
        kind = spec.get('kind', 'errcode')
        if kind not in ('errcode', 'http', 'delay', 'drop', 'drop_after'):
            raise ControlError(400, 'kind: errcode|http|delay|drop|drop_after')
        path = spec.get('path') or '*'
        if not isinstance(path, str) or path.startswith('/_sim'):
            raise ControlError(400, 'path must be an API path or "*"')
        f = {'path': path, 'kind': kind}
        for key, default in (('count', 1), ('after', 0), ('errcode', -1),
                             ('status', 502), ('delay_ms', 1000)):
            v = spec.get(key, default)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ControlError(400, '%s must be an integer' % key)
            f[key] = v
        if f['count'] < 1 or f['after'] < 0 or f['delay_ms'] < 0:
            raise ControlError(400, 'count >= 1, after >= 0, delay_ms >= 0')
        if not 100 <= f['status'] <= 599:
            raise ControlError(400, 'status must be an HTTP status')
        if spec.get('errmsg') is not None:
            f['errmsg'] = str(spec['errmsg'])
        with self.lock:
            self.fault_seq += 1
            f['id'] = self.fault_seq
            f['seen'] = 0
            f['applied'] = 0
            self.faults.append(f)
            return dict(f)

    def take_fault(self, path):
        """The fault (a copy) that applies to this call, or None."""
        with self.lock:
            chosen = None
            for f in self.faults:
                if f['path'] not in ('*', path):
                    continue
                f['seen'] += 1
                if chosen is None and f['seen'] > f['after']:
                    chosen = f
            if chosen is None:
                return None
            chosen['applied'] += 1
            if chosen['applied'] >= chosen['count']:
                self.faults.remove(chosen)
            return dict(chosen)

    # --- tokens ---

    def _new_token(self, family):
        now = self.now()
        tok = secrets.token_urlsafe(96)     # 128 characters
        info = {'token': tok, 'family': family, 'issued_at': now,
                'expires_at': now + self.cfg['expires_in'],
                'revoked_at': None}
        self.tokens[tok] = info
        self.issued.append(tok)
        return info

    def token_state(self, tok):
        """0 or the errcode this token gets."""
        if not tok:
            return 41001
        info = self.tokens.get(tok)
        if info is None:
            return 40014
        now = self.now()
        rev = info['revoked_at']
        if rev is not None and now >= rev and rev < info['expires_at']:
            return 40001
        if now >= info['expires_at']:
            return 42001
        return 0

    def _check_credentials(self, appid, secret):
        if not appid:
            raise ApiError(41002)
        if appid != self.identity['appid']:
            raise ApiError(40013)
        if not secret:
            raise ApiError(41004)
        if not secrets.compare_digest(str(secret).encode(),
                                      self.identity['secret'].encode()):
            raise ApiError(40001, 'invalid credential, appsecret wrong')

    def classic_token(self, q):
        if q.get('grant_type') != 'client_credential':
            raise ApiError(40002)
        self._check_credentials(q.get('appid'), q.get('secret'))
        if self._daily('token') >= self.cfg['token_daily_cap']:
            raise ApiError(45009)
        self._daily_add('token')
        now = self.now()
        # Tokens superseded earlier stop now; the latest one gets overlap_s.
        for t in self.issued:
            info = self.tokens[t]
            if info['family'] == 'classic' and info['revoked_at'] is not None \
                    and info['revoked_at'] > now:
                info['revoked_at'] = now
        prev = self.tokens.get(self.classic_current)
        if prev is not None and prev['revoked_at'] is None:
            prev['revoked_at'] = now + self.cfg['overlap_s']
        info = self._new_token('classic')
        self.classic_current = info['token']
        return {'access_token': info['token'],
                'expires_in': int(self.cfg['expires_in'])}

    def stable_token(self, body):
        if not isinstance(body, dict):
            raise ApiError(47001)
        if body.get('grant_type') != 'client_credential':
            raise ApiError(40002)
        self._check_credentials(body.get('appid'), body.get('secret'))
        force = body.get('force_refresh', False)
        if not isinstance(force, bool):
            raise ApiError(47001)
        if self._daily('stable') >= self.cfg['stable_daily_cap']:
            raise ApiError(45009)
        now = self.now()
        cur = self.tokens.get(self.stable_current)
        if force:
            if self._daily('stable_force') >= \
                    self.cfg['stable_force_daily_cap']:
                raise ApiError(45009, 'api freq out of limit')
            gap = self.cfg['stable_force_interval_s']
            if self.last_force is not None and now - self.last_force < gap:
                raise ApiError(45009, 'api freq out of limit')
            self._daily_add('stable_force')
            self.last_force = now
            if cur is not None and cur['revoked_at'] is None:
                cur['revoked_at'] = now
            cur = None
        self._daily_add('stable')
        if cur is None or self.token_state(cur['token']) != 0 or \
                cur['expires_at'] - now <= self.cfg['stable_refresh_before_s']:
            # A rotated-out token lives out its own time.
            cur = self._new_token('stable')
            self.stable_current = cur['token']
        return {'access_token': cur['token'],
                'expires_in': max(0, int(cur['expires_at'] - now))}

    def token_control(self, body):
        if not isinstance(body, dict):
            raise ControlError(400, 'JSON object expected')
        with self.lock:
            now = self.now()
            n = 0
            for t, info in self.tokens.items():
                if body.get('expire_all') or body.get('expire') == t:
                    if info['expires_at'] > now:
                        info['expires_at'] = now
                        n += 1
                if body.get('revoke_all') or body.get('revoke') == t:
                    if info['revoked_at'] is None or info['revoked_at'] > now:
                        info['revoked_at'] = now
                        n += 1
            out = self.token_info()
            out['changed'] = n
            return out

    def token_info(self):
        with self.lock:
            def one(t):
                info = self.tokens[t]
                d = dict(info)
                d['state'] = self.token_state(t)
                return d
            return {'classic': self.classic_current,
                    'stable': self.stable_current,
                    'tokens': [one(t) for t in self.issued]}

    # --- users ---

    def _user(self, openid, create=True):
        u = self.users.get(openid)
        if u is None and create:
            u = {'openid': openid, 'first_seen': self.now(),
                 'last_inbound': None, 'sends_since_inbound': 0,
                 'subscribed': True, 'typing_until': 0.0,
                 'inbound_count': 0, 'remark': '', 'tagid_list': [2],
                 'unionid': 'u_' + openid[-20:], 'language': 'zh_CN',
                 'subscribe_scene': 'ADD_SCENE_QR_CODE', 'qr_scene': 98765,
                 'qr_scene_str': ''}
            self.users[openid] = u
        return u

    def inbound(self, openid, ts=None, event=None):
        """Record a user interaction (a message, or an event by name)."""
        if not isinstance(openid, str) or not OPENID_RE.match(openid):
            raise ControlError(400, 'openid: 1-64 of [A-Za-z0-9_-]')
        if ts is not None and (isinstance(ts, bool) or
                               not isinstance(ts, (int, float))):
            raise ControlError(400, 'ts must be a number (epoch seconds)')
        with self.lock:
            u = self._user(openid)
            ev = (event or '').lower()
            if ev == 'unsubscribe':
                u['subscribed'] = False
                return dict(u)
            if ev == 'subscribe':
                u['subscribed'] = True
            u['last_inbound'] = float(self.now() if ts is None else ts)
            u['sends_since_inbound'] = 0
            u['inbound_count'] += 1
            return dict(u)

    def user_info(self, openid=None):
        with self.lock:
            if openid is None:
                return {k: dict(v) for k, v in self.users.items()}
            u = self.users.get(openid)
            if u is None:
                raise ControlError(404, 'unknown user %s' % openid)
            out = dict(u)
            out['session'] = self._live_session(openid)
            return out

    # --- user/info (用户管理) ---

    def _known_user(self, openid):
        if not isinstance(openid, str) or not OPENID_RE.match(openid) or \
                openid not in self.users:
            raise ApiError(40003)
        return self.users[openid]

    def user_info_api(self, q):
        """cgi-bin/user/info: the fields WeChat returns since 2021-12-27
        (no nickname, headimgurl, sex or region); an unsubscribed user
        gets {"subscribe": 0, "openid", "unionid"} only."""
        u = self._known_user(q.get('openid'))
        if q.get('lang', 'zh_CN') not in ('zh_CN', 'zh_TW', 'en'):
            raise ApiError(40003)
        if not u['subscribed']:
            return {'subscribe': 0, 'openid': u['openid'],
                    'unionid': u['unionid']}
        return {'subscribe': 1, 'openid': u['openid'],
                'language': u['language'],
                'subscribe_time': int(u['first_seen']),
                'unionid': u['unionid'], 'remark': u['remark'],
                'groupid': 0, 'tagid_list': list(u['tagid_list']),
                'subscribe_scene': u['subscribe_scene'],
                'qr_scene': u['qr_scene'], 'qr_scene_str': u['qr_scene_str']}

    def tags_api(self):
        """cgi-bin/tags/get: every tag of the account, {"tags": [{"id",
        "name", "count"}]}, count = the followers that have it."""
        with self.lock:
            return {'tags': [
                {'id': i, 'name': n,
                 'count': sum(1 for u in self.users.values()
                              if u['subscribed'] and i in u['tagid_list'])}
                for i, n in sorted(self.tags.items())]}

    def tags_control(self, body):
        if not isinstance(body, dict) or \
                not isinstance(body.get('tags'), list):
            raise ControlError(400, '{"tags": [{"id", "name"}...]} expected')
        tags = {}
        for t in body['tags']:
            if not isinstance(t, dict) or isinstance(t.get('id'), bool) or \
                    not isinstance(t.get('id'), int) or \
                    not isinstance(t.get('name'), str):
                raise ControlError(400, 'a tag is {"id": int, "name": str}')
            tags[t['id']] = t['name']
        with self.lock:
            self.tags = tags
        return self.tags_api()

    def user_tags_control(self, openid, body):
        ids = body.get('tagid_list') if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise ControlError(400, '{"tagid_list": [int...]} expected')
        with self.lock:
            u = self._user(openid)
            u['tagid_list'] = list(ids)
            return dict(u)

    def update_remark(self, body):
        """cgi-bin/user/info/updateremark {"openid","remark"}: a remark
        of at most 30 characters (47001 past it: the simulator's choice;
        wxkf checks the length first)."""
        u = self._known_user(body.get('openid'))
        remark = body.get('remark')
        if not isinstance(remark, str) or len(remark) > 30:
            raise ApiError(47001)
        u['remark'] = remark
        return {}

    # --- custom/send ---

    def _need(self, obj, key, code=47001):
        v = obj.get(key)
        if not isinstance(v, str) or not v:
            raise ApiError(code)
        return v

    def _media_ok(self, media_id):
        if self.cfg['strict_media'] and media_id not in self.media:
            raise ApiError(40007)

    def _validate_payload(self, msgtype, p):
        if not isinstance(p, dict):
            raise ApiError(47001)
        if msgtype == 'text':
            c = p.get('content')
            if not isinstance(c, str) or c == '':
                raise ApiError(44004)
            if len(c.encode('utf-8')) > 2048:
                raise ApiError(45002)
        elif msgtype in ('image', 'voice', 'mpnews'):
            self._media_ok(self._need(p, 'media_id', 40007))
        elif msgtype == 'video':
            self._media_ok(self._need(p, 'media_id', 40007))
            self._media_ok(self._need(p, 'thumb_media_id', 40007))
        elif msgtype == 'music':
            self._need(p, 'musicurl')
            self._need(p, 'hqmusicurl')
            self._media_ok(self._need(p, 'thumb_media_id', 40007))
        elif msgtype == 'news':
            arts = p.get('articles')
            if not isinstance(arts, list):
                raise ApiError(47001)
            if not arts:
                raise ApiError(44003)
            if len(arts) > 1:
                raise ApiError(45008)
            a = arts[0]
            if not isinstance(a, dict) or not (a.get('title') or
                                               a.get('url')):
                raise ApiError(44003)
        elif msgtype == 'mpnewsarticle':
            self._need(p, 'article_id')
        elif msgtype == 'msgmenu':
            lst = p.get('list')
            if not isinstance(lst, list) or not lst:
                raise ApiError(47001)
            for item in lst:
                if not isinstance(item, dict) or \
                        not isinstance(item.get('id'), (str, int)) or \
                        not isinstance(item.get('content'), str) or \
                        not item.get('content'):
                    raise ApiError(47001)
        elif msgtype == 'wxcard':
            self._need(p, 'card_id')
        elif msgtype == 'miniprogrampage':
            for k in ('title', 'appid', 'pagepath'):
                self._need(p, k)
            self._media_ok(self._need(p, 'thumb_media_id', 40007))

    def custom_send(self, body, token):
        if self._daily('send') >= self.cfg['daily_send_cap']:
            raise ApiError(45009)
        touser = body.get('touser')
        if not isinstance(touser, str) or touser not in self.users:
            raise ApiError(40003)
        msgtype = body.get('msgtype')
        if msgtype not in MSGTYPES:
            raise ApiError(40008)
        self._validate_payload(msgtype, body.get(msgtype))
        kf_account = None
        cs = body.get('customservice')
        if cs is not None:
            if not isinstance(cs, dict):
                raise ApiError(47001)
            kf_account = cs.get('kf_account')
            if kf_account is not None and kf_account != '':
                if kf_account not in self.kf:
                    raise ApiError(65401)
            else:
                kf_account = None
        u = self.users[touser]
        now = self.now()
        if not u['subscribed'] or u['last_inbound'] is None or \
                now - u['last_inbound'] > self.cfg['window_s']:
            raise ApiError(45015)
        if u['sends_since_inbound'] >= self.cfg['send_quota']:
            raise ApiError(45047)
        u['sends_since_inbound'] += 1
        u['typing_until'] = 0.0
        self._daily_add('send')
        rec = {'id': len(self.sent) + 1, 'ts': round(now, 3),
               'touser': touser, 'msgtype': msgtype,
               'kf_account': kf_account, 'body': body, 'token': token}
        self.sent.append(rec)
        p = body.get(msgtype) or {}
        text = p.get('content') if msgtype == 'text' else '[%s]' % msgtype
        self.records.append({'openid': touser, 'opercode': 2002,
                             'text': text, 'time': int(now),
                             'worker': kf_account or ''})
        s = self._live_session(touser)
        if s is not None and s['kf_account'] == kf_account:
            self.sessions[touser]['last_activity'] = now
        return {}

    def typing(self, body):
        cmd = body.get('command')
        if cmd not in ('Typing', 'CancelTyping'):
            raise ApiError(45072)
        touser = body.get('touser')
        if not isinstance(touser, str) or touser not in self.users:
            raise ApiError(40003)
        u = self.users[touser]
        now = self.now()
        if u['last_inbound'] is None or \
                now - u['last_inbound'] > self.cfg['typing_window_s']:
            raise ApiError(45080)
        if cmd == 'Typing':
            if u['typing_until'] > now:
                raise ApiError(45081)
            u['typing_until'] = now + self.cfg['typing_duration_s']
        else:
            u['typing_until'] = 0.0
        return {}

    # --- media ---

    def add_media(self, data, content_type, mtype=None, media_id=None,
                  filename=None):
        with self.lock:
            mid = media_id or secrets.token_urlsafe(48)
            self.media[mid] = {'media_id': mid, 'type': mtype,
                               'content_type': content_type or
                               'application/octet-stream',
                               'data': data, 'filename': filename,
                               'created_at': int(self.now())}
            return mid

    def media_upload(self, q, headers, raw):
        mtype = q.get('type')
        if mtype not in MEDIA_RULES:
            raise ApiError(40004)
        ctype = headers.get('Content-Type', '')
        if not ctype.lower().startswith('multipart/form-data'):
            raise ApiError(41005)
        try:
            parts = parse_multipart(raw, ctype)
        except ValueError:
            raise ApiError(41005) from None
        part = next((p for p in parts if p['name'] == 'media'), None)
        if part is None or not part['data']:
            raise ApiError(41005)
        limit, size_code, exts = MEDIA_RULES[mtype]
        fname = part['filename'] or ''
        ext = fname.rsplit('.', 1)[1].lower() if '.' in fname else ''
        pct = part['content_type'] or ''
        if ext and ext not in exts:
            raise ApiError(40005)
        if not ext and pct and not pct.startswith('application/octet') and \
                not any(e in pct.lower() for e in exts + ('mpeg', 'mp4')):
            raise ApiError(40005)
        if len(part['data']) > limit:
            raise ApiError(size_code)
        if not pct or pct.startswith('application/octet'):
            pct = mimetypes.guess_type(fname)[0] or pct or \
                'application/octet-stream'
        mid = self.add_media(part['data'], pct, mtype, filename=fname)
        out = {'type': mtype, 'media_id': mid,
               'created_at': self.media[mid]['created_at']}
        if mtype == 'thumb':
            out['thumb_media_id'] = mid
        return out

    def sim_media(self, body):
        if not isinstance(body, dict):
            raise ControlError(400, 'JSON object expected')
        try:
            data = base64.b64decode(body.get('data_b64') or '',
                                    validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise ControlError(400, 'data_b64 is not base64') from None
        mid = body.get('media_id')
        if mid is not None and (not isinstance(mid, str) or not mid):
            raise ControlError(400, 'media_id must be a non-empty string')
        mid = self.add_media(data, body.get('content_type') or
                             'application/octet-stream', body.get('type'),
                             media_id=mid, filename=body.get('filename'))
        return {'media_id': mid, 'size': len(data)}

    # --- kf accounts ---

    def _check_nick(self, nick):
        if not isinstance(nick, str) or not nick.strip() or \
                len(nick) > self.cfg['nickname_max'] or \
                any(ord(c) < 32 for c in nick):
            raise ApiError(65403)

    def _kf_get(self, body_or_q):
        acct = body_or_q.get('kf_account')
        if not isinstance(acct, str) or acct not in self.kf:
            raise ApiError(65401)
        return self.kf[acct]

    def kf_add(self, body):
        acct = body.get('kf_account')
        m = KF_ACCOUNT_RE.match(acct) if isinstance(acct, str) else None
        wid = self.identity.get('wechat_id')
        if not m or (wid and m.group(2) != wid):
            raise ApiError(65404)
        self._check_nick(body.get('nickname'))
        if acct in self.kf:
            raise ApiError(65406)
        if len(self.kf) >= self.cfg['kf_max']:
            raise ApiError(65405)
        self.kf_seq += 1
        self.kf[acct] = {'kf_account': acct, 'kf_nick': body['nickname'],
                         'kf_id': self.kf_seq, 'kf_headimgurl': '',
                         'kf_wx': None, 'invite_wx': None,
                         'invite_expire_time': None, 'invite_status': None,
                         'status': 0}
        return {}

    def kf_update(self, body):
        kf = self._kf_get(body)
        self._check_nick(body.get('nickname'))
        kf['kf_nick'] = body['nickname']
        return {}

    def kf_del(self, body):
        kf = self._kf_get(body)
        del self.kf[kf['kf_account']]
        for openid in [o for o, s in self.sessions.items()
                       if s['kf_account'] == kf['kf_account']]:
            del self.sessions[openid]
        return {}

    def kf_invite(self, body):
        kf = self._kf_get(body)
        wx = body.get('invite_wx')
        if not isinstance(wx, str) or not WX_ID_RE.match(wx):
            raise ApiError(65409)
        if kf['kf_wx']:
            raise ApiError(65412)
        for other in self.kf.values():
            if other['kf_wx'] == wx:
                raise ApiError(65407)
        self._expire_invites()
        if kf['invite_status'] == 'waiting':
            raise ApiError(65408 if kf['invite_wx'] == wx else 65411)
        kf['invite_wx'] = wx
        kf['invite_status'] = 'waiting'
        kf['invite_expire_time'] = int(self.now()) + 7 * 86400
        return {}

    def _expire_invites(self):
        now = self.now()
        for kf in self.kf.values():
            if kf['invite_status'] == 'waiting' and \
                    kf['invite_expire_time'] <= now:
                kf['invite_status'] = 'expired'

    def kf_invite_control(self, body):
        if not isinstance(body, dict):
            raise ControlError(400, 'JSON object expected')
        with self.lock:
            kf = self.kf.get(body.get('kf_account'))
            if kf is None:
                raise ControlError(404, 'unknown kf_account')
            action = body.get('action', 'accept')
            if kf['invite_status'] != 'waiting':
                raise ControlError(409, 'no pending invitation')
            if action == 'accept':
                kf['kf_wx'] = kf['invite_wx']
                kf['invite_wx'] = kf['invite_status'] = None
                kf['invite_expire_time'] = None
            elif action == 'reject':
                kf['invite_status'] = 'rejected'
            elif action == 'expire':
                kf['invite_status'] = 'expired'
            else:
                raise ControlError(400, 'action: accept|reject|expire')
            return self._kf_public(kf)

    def kf_online_control(self, body):
        if not isinstance(body, dict):
            raise ControlError(400, 'JSON object expected')
        with self.lock:
            kf = self.kf.get(body.get('kf_account'))
            if kf is None:
                raise ControlError(404, 'unknown kf_account')
            st = body.get('status', 1)
            if isinstance(st, bool) or st not in (0, 1, 2, 3):
                raise ControlError(400, 'status: 0 (offline), 1, 2 or 3')
            if st and not kf['kf_wx']:
                # Online needs a bound WeChat user: bind one implicitly.
                kf['kf_wx'] = 'wx_' + kf['kf_account'].split('@')[0]
                kf['invite_wx'] = kf['invite_status'] = None
                kf['invite_expire_time'] = None
            kf['status'] = st
            return self._kf_public(kf)

    def _kf_public(self, kf):
        d = {'kf_account': kf['kf_account'], 'kf_nick': kf['kf_nick'],
             'kf_id': str(kf['kf_id']), 'kf_headimgurl': kf['kf_headimgurl']}
        if kf['kf_wx']:
            d['kf_wx'] = kf['kf_wx']
        if kf['invite_status']:
            d['invite_wx'] = kf['invite_wx']
            d['invite_expire_time'] = kf['invite_expire_time']
            d['invite_status'] = kf['invite_status']
        return d

    def kf_list(self):
        self._expire_invites()
        return {'kf_list': [self._kf_public(k) for k in self.kf.values()]}

    def _accepted(self, acct):
        return sum(1 for o in list(self.sessions)
                   if self._live_session(o) and
                   self.sessions[o]['kf_account'] == acct)

    def kf_online_list(self):
        return {'kf_online_list': [
            {'kf_account': k['kf_account'], 'status': k['status'],
             'kf_id': k['kf_id'], 'accepted_case': self._accepted(
                 k['kf_account'])}
            for k in self.kf.values() if k['status']]}

    def kf_headimg(self, q, headers, raw):
        kf = self._kf_get(q)
        try:
            parts = parse_multipart(raw, headers.get('Content-Type', ''))
        except ValueError:
            raise ApiError(41005) from None
        part = next((p for p in parts if p['name'] == 'media'), None)
        if part is None or not part['data']:
            raise ApiError(41005)
        fname = (part['filename'] or '').lower()
        if fname and not fname.endswith(('.jpg', '.jpeg')):
            raise ApiError(40005)
        if len(part['data']) > 5 * 1024 * 1024:
            raise ApiError(40009)
        mid = self.add_media(part['data'], 'image/jpeg', 'headimg')
        kf['kf_headimgurl'] = 'http://127.0.0.1:%d/_sim/media/%s' % (
            self.port, mid)
        return {}

    # --- kf sessions ---

    def _live_session(self, openid):
        s = self.sessions.get(openid)
        if s is None:
            return None
        if self.now() - s['last_activity'] > self.cfg['kf_session_idle_s']:
            del self.sessions[openid]     # WeChat releases it
            return None
        return {'kf_account': s['kf_account'], 'createtime': s['createtime']}

    def _open_session(self, openid, acct):
        now = self.now()
        self.sessions[openid] = {'kf_account': acct, 'createtime': int(now),
                                 'last_activity': now}
        self.waitcase = [w for w in self.waitcase if w['openid'] != openid]

    def _kf_logged(self, op, body, fn):
        """Runs a kfsession create/close and records it for GET /_sim/kf
        ("log": op, kf_account, openid, errcode, ts; the last
        MAX_PUSHES)."""
        item = {'op': op, 'ts': round(self.now(), 3), 'errcode': 0,
                'kf_account': body.get('kf_account')
                if isinstance(body, dict) else None,
                'openid': body.get('openid')
                if isinstance(body, dict) else None}
        try:
            return fn(body)
        except ApiError as e:
            item['errcode'] = e.code
            raise
        finally:
            self.kf_log.append(item)
            if len(self.kf_log) > MAX_PUSHES:
                del self.kf_log[0]

    def session_create(self, body):
        return self._kf_logged('create', body, self._session_create)

    def session_close(self, body):
        return self._kf_logged('close', body, self._session_close)

    def _session_create(self, body):
        kf = self._kf_get(body)
        openid = body.get('openid')
        if not isinstance(openid, str) or openid not in self.users:
            raise ApiError(40003)
        if not kf['kf_wx']:
            raise ApiError(65402)
        if not kf['status']:
            raise ApiError(65415)
        cur = self._live_session(openid)
        if cur is not None:
            if cur['kf_account'] == kf['kf_account']:
                return {}
            raise ApiError(65414)
        self._open_session(openid, kf['kf_account'])
        return {}

    def _session_close(self, body):
        kf = self._kf_get(body)
        openid = body.get('openid')
        cur = self._live_session(openid) if isinstance(openid, str) else None
        if cur is None or cur['kf_account'] != kf['kf_account']:
            raise ApiError(65413)
        del self.sessions[openid]
        return {}

    def session_get(self, q):
        openid = q.get('openid')
        if not openid or openid not in self.users:
            raise ApiError(40003)
        cur = self._live_session(openid)
        if cur is None:
            return {'createtime': 0, 'kf_account': ''}
        return dict(cur)

    def session_list(self, q):
        kf = self._kf_get(q)
        out = []
        for openid in list(self.sessions):
            cur = self._live_session(openid)
            if cur and cur['kf_account'] == kf['kf_account']:
                out.append({'createtime': cur['createtime'],
                            'openid': openid})
        return {'sessionlist': out}

    def waitcase_list(self):
        return {'count': len(self.waitcase),
                'waitcaselist': [dict(w) for w in self.waitcase[:100]]}

    def waitcase_control(self, body):
        if not isinstance(body, dict):
            raise ControlError(400, 'JSON object expected')
        openid = body.get('openid')
        with self.lock:
            self.inbound(openid, body.get('ts'))
            self._enqueue(openid, body.get('ts'))
            return self.waitcase_list()

    def _enqueue(self, openid, ts=None):
        t = int(self.now() if ts is None else ts)
        for w in self.waitcase:
            if w['openid'] == openid:
                w['latest_time'] = t
                return
        self.waitcase.append({'latest_time': t, 'openid': openid})

    # --- chat records ---

    def msg_records(self, body):
        vals = {}
        for k in ('starttime', 'endtime', 'msgid', 'number'):
            v = body.get(k)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ApiError(65416)
            vals[k] = v
        if vals['endtime'] < vals['starttime'] or \
                vals['endtime'] - vals['starttime'] > 86400 or \
                not 1 <= vals['number'] <= 10000 or vals['msgid'] < 1:
            raise ApiError(65416)
        out = []
        nxt = vals['msgid']
        for i in range(vals['msgid'] - 1, len(self.records)):
            r = self.records[i]
            nxt = i + 2
            if vals['starttime'] <= r['time'] <= vals['endtime']:
                out.append(dict(r))
                if len(out) >= vals['number']:
                    break
        return {'recordlist': out, 'number': len(out), 'msgid': nxt}

    # --- the API dispatcher ---

    def api(self, method, path, q, headers, raw):
        """Handle one API call -> Response (never raises)."""
        route = API_ROUTES.get(path)
        if route is None:
            return api_json({'errcode': -1, 'errmsg': _errmsg(
                -1, 'unknown api path %s' % path)}, 404)
        methods, fn, needs_token = route
        try:
            if method not in methods:
                raise ApiError(43002 if 'POST' in methods else 43001)
            with self.lock:
                token = None
                if needs_token:
                    token = q.get('access_token') or None
                    st = self.token_state(token)
                    if st:
                        raise ApiError(st)
                return fn(self, method, q, headers, raw, token)
        except ApiError as e:
            return api_error(e.code, e.msg)

    # --- pushes (the user side) ---

    def user_send(self, openid, req):
        """A simulated user pushes a message to the callback URL.

        req: {"type": text|image|voice|video|shortvideo|location|link|event,
              "content", "media_id", "event", "event_key", "fields": {..},
              "mode": plain|compat|safe, "msgid", "create_time",
              "retries", "timeout_s", "push": bool}
        -> {"status", "reply", "attempts", "msg", "transfer", ...}.
        Network I/O happens outside the state lock."""
        if not isinstance(req, dict):
            raise ControlError(400, 'JSON object expected')
        if not OPENID_RE.match(openid or ''):
            raise ControlError(400, 'openid: 1-64 of [A-Za-z0-9_-]')
        try:
            import wxuser
        except ImportError as e:       # python3-cryptography missing
            raise ControlError(500, 'user side unavailable: %s' % e) from None
        wc = wxuser.wc
        with self.lock:
            ident = dict(self.identity)
            cfg = dict(self.cfg)
            now = self.now()
        mode = req.get('mode') or cfg['default_mode']
        if mode not in wxuser.MODES:
            raise ControlError(400, 'mode: plain|compat|safe')
        if not ident['callback']:
            raise ControlError(409, 'no callback URL (--callback or '
                               '/_sim/config {"callback": ...})')
        if mode != 'plain' and not ident['aes_key']:
            raise ControlError(409, 'mode %s needs aes_key' % mode)
        kind = req.get('type', 'text')
        try:
            ct = int(req.get('create_time') or now)
            timeout = float(req.get('timeout_s') or
                            cfg['callback_timeout_s'])
        except (TypeError, ValueError):
            raise ControlError(400, 'create_time, timeout_s: numbers') \
                from None
        msgid = str(req.get('msgid') or wxuser.new_msgid())
        fields = [('ToUserName', ident['original_id']),
                  ('FromUserName', openid), ('CreateTime', ct)]
        media_id = req.get('media_id')
        event = None
        if kind == 'text':
            content = req.get('content')
            if not isinstance(content, str):
                raise ControlError(400, 'text needs "content"')
            fields += [('MsgType', 'text'), ('Content', content)]
        elif kind in ('image', 'voice', 'video', 'shortvideo'):
            with self.lock:
                if not media_id:
                    media_id = secrets.token_urlsafe(48)
                if media_id not in self.media:
                    data, ctype = {
                        'image': (TINY_JPEG, 'image/jpeg'),
                        'voice': (TINY_AMR, 'audio/amr'),
                    }.get(kind, (b'\x00\x00\x00\x18ftypmp42', 'video/mp4'))
                    self.add_media(data, ctype, kind, media_id=media_id)
            fields += [('MsgType', kind)]
            if kind == 'image':
                fields += [('PicUrl', 'http://127.0.0.1:%d/_sim/media/%s'
                            % (self.port, media_id)),
                           ('MediaId', media_id)]
            elif kind == 'voice':
                fields += [('MediaId', media_id), ('Format', 'amr')]
                if req.get('recognition') is not None:
                    fields.append(('Recognition', req['recognition']))
            else:
                fields += [('MediaId', media_id),
                           ('ThumbMediaId', req.get('thumb_media_id') or
                            media_id)]
        elif kind == 'location':
            fields += [('MsgType', 'location'),
                       ('Location_X', req.get('x', '23.134521')),
                       ('Location_Y', req.get('y', '113.358803')),
                       ('Scale', req.get('scale', '20')),
                       ('Label', req.get('label', 'somewhere'))]
        elif kind == 'link':
            fields += [('MsgType', 'link'),
                       ('Title', req.get('title', 'a link')),
                       ('Description', req.get('description', '')),
                       ('Url', req.get('url', 'http://example.invalid/'))]
        elif kind == 'event':
            event = req.get('event')
            if not isinstance(event, str) or not event:
                raise ControlError(400, 'event needs "event"')
            fields += [('MsgType', 'event'), ('Event', event)]
            if req.get('event_key') is not None:
                fields.append(('EventKey', req['event_key']))
        else:
            raise ControlError(400, 'type: text|image|voice|video|'
                               'shortvideo|location|link|event')
        extra = req.get('fields') or {}
        if not isinstance(extra, dict):
            raise ControlError(400, '"fields" must be an object')
        fields += list(extra.items())
        if kind != 'event':
            fields.append(('MsgId', msgid))
        xml = wc.build_xml(fields)
        msg = {'type': kind, 'CreateTime': ct, 'xml': xml}
        if kind != 'event':
            msg['MsgId'] = msgid

        # While WeChat's own kf system serves the user, messages go there.
        with self.lock:
            # a user who writes follows the account already: user/info
            # knows it before the callback reaches wxkf
            self._user(openid)
            sess = self._live_session(openid) if kind != 'event' else None
            if sess is not None and not req.get('push'):
                self.inbound(openid, ct)
                self.sessions[openid]['last_activity'] = self.now()
                self.records.append({'openid': openid, 'opercode': 2003,
                                     'text': req.get('content') or
                                     '[%s]' % kind, 'time': ct,
                                     'worker': sess['kf_account']})
                out = {'status': None, 'routed': 'kf_session',
                       'kf_account': sess['kf_account'], 'attempts': 0,
                       'reply': None, 'msg': msg, 'transfer': None}
                self._log_push(openid, out)
                return out

        retries = req.get('retries', cfg['callback_retries'])
        if isinstance(retries, bool) or not isinstance(retries, int) or \
                not 0 <= retries <= 5:
            raise ControlError(400, 'retries: 0..5')
        u = wxuser.WxUser(ident['callback'], ident['token'], ident['appid'],
                          ident['aes_key'] or None,
                          original_id=ident['original_id'], openid=openid,
                          session=_UrlSession(timeout))
        attempts = []
        resp = None
        t0 = time.monotonic()
        for _ in range(1 + retries):
            a0 = time.monotonic()
            try:
                resp = u.send_raw(xml, mode)
                attempts.append({'status': resp.status_code,
                                 'ms': int((time.monotonic() - a0) * 1000)})
                break
            except (OSError, http.client.HTTPException) as e:
                attempts.append({'error': str(e) or e.__class__.__name__,
                                 'ms': int((time.monotonic() - a0) * 1000)})
        out = {'status': resp.status_code if resp is not None else None,
               'attempts': len(attempts), 'attempt_log': attempts,
               'elapsed_ms': int((time.monotonic() - t0) * 1000),
               'msg': msg, 'reply': None, 'transfer': None}
        if resp is None:
            self._log_push(openid, out)
            return out
        out['body'] = resp.content[:65536].decode('utf-8', 'replace')
        try:
            rep = u.decode_reply(resp)
            out['reply'] = {'kind': rep.kind, 'fields': rep.fields,
                            'xml': rep.xml}
            if rep.envelope:
                out['reply']['envelope'] = rep.envelope
        except ValueError as e:
            out['reply'] = {'kind': 'invalid', 'error': str(e)}
        if resp.status_code == 200:
            with self.lock:
                self.inbound(openid, ct, event)
                out['transfer'] = self._after_reply(openid, out['reply'])
        self._log_push(openid, out)
        return out

    def _after_reply(self, openid, reply):
        """A transfer_customer_service reply hands the user to WeChat's
        own kf system: a session with the named agent (if online), else
        the waiting queue."""
        if not reply or reply.get('fields', {}).get('MsgType') != \
                'transfer_customer_service':
            return None
        acct = None
        try:
            root = ET.fromstring((reply.get('xml') or '').encode('utf-8'))
            el = root.find('TransInfo/KfAccount')
            acct = el.text.strip() if el is not None and el.text else None
        except ET.ParseError:
            pass
        if self._live_session(openid) is not None:
            return 'already_in_session'
        if acct:
            kf = self.kf.get(acct)
            if kf is None or not kf['status'] or not kf['kf_wx']:
                return 'failed'
            self._open_session(openid, acct)
            return 'session'
        self._enqueue(openid)
        return 'waiting'

    def _log_push(self, openid, out):
        with self.lock:
            item = {'openid': openid, 'ts': round(self.now(), 3),
                    'status': out.get('status'),
                    'attempts': out.get('attempts'),
                    'routed': out.get('routed'),
                    'reply_kind': (out.get('reply') or {}).get('kind'),
                    'transfer': out.get('transfer'), 'msg': out['msg']}
            self.pushes.append(item)
            if len(self.pushes) > MAX_PUSHES:
                del self.pushes[0]

    # --- the control dispatcher ---

    def control(self, method, path, q, raw):
        """Handle /_sim/... -> Response (never raises)."""
        try:
            body = None
            if method == 'POST':
                try:
                    body = json.loads(raw.decode('utf-8')) if raw.strip() \
                        else {}
                except (ValueError, UnicodeDecodeError):
                    raise ControlError(400, 'body is not JSON') from None
            out = self._control(method, path, q, body)
            if isinstance(out, Response):
                return out
            return control_json(out)
        except ControlError as e:
            return control_json({'error': e.msg}, e.status)

    def _control(self, method, path, q, body):
        parts = path.split('/')[2:]      # after /_sim/
        name = parts[0] if parts else ''
        get, post = method == 'GET', method == 'POST'
        if name == 'health' and get:
            return {'ok': True, 'appid': self.identity['appid'],
                    'now': self.now()}
        if name == 'sent' and get:
            with self.lock:
                try:
                    since = int(q.get('since') or 0)
                except ValueError:
                    raise ControlError(400, 'since: an id') from None
                return [copy.deepcopy(s) for s in self.sent
                        if s['id'] > since and
                        (not q.get('touser') or s['touser'] == q['touser'])]
        if name == 'calls' and get:
            with self.lock:
                if q.get('path'):
                    return copy.deepcopy(self.calls.get(q['path']) or {
                        'count': 0, 'ts': [], 'results': {}})
                return {'paths': copy.deepcopy(self.calls),
                        'tokens': copy.deepcopy(self.token_usage),
                        'issued': [{'token': t,
                                    'family': self.tokens[t]['family'],
                                    'issued_at': self.tokens[t]['issued_at']}
                                   for t in self.issued]}
        if name == 'reset' and post:
            self.reset()
            return {'ok': True}
        if name == 'config' and get:
            return self.get_config()
        if name == 'config' and post:
            return self.set_config(body)
        if name == 'token' and get:
            return self.token_info()
        if name == 'token' and post:
            return self.token_control(body)
        if name == 'inbound' and post:
            if not isinstance(body, dict):
                raise ControlError(400, 'JSON object expected')
            return self.inbound(body.get('openid'), body.get('ts'),
                                body.get('event'))
        if name == 'fault' and post:
            return self.add_fault(body)
        if name == 'faults' and get:
            with self.lock:
                return [dict(f) for f in self.faults]
        if name == 'faults' and post and parts[1:] == ['clear']:
            with self.lock:
                n = len(self.faults)
                self.faults = []
                return {'cleared': n}
        if name == 'media' and post and len(parts) == 1:
            return self.sim_media(body)
        if name == 'media' and get and len(parts) == 2:
            with self.lock:
                m = self.media.get(parts[1])
            if m is None:
                raise ControlError(404, 'unknown media')
            return Response(200, m['data'], m['content_type'])
        if name == 'kf_online' and post:
            return self.kf_online_control(body)
        if name == 'kf_invite' and post:
            return self.kf_invite_control(body)
        if name == 'waitcase' and post:
            return self.waitcase_control(body)
        if name == 'waitcase' and get:
            with self.lock:
                return self.waitcase_list()
        if name == 'clock':
            if post:
                if not isinstance(body, dict):
                    raise ControlError(400, 'JSON object expected')
                with self.lock:
                    for k in ('advance', 'now', 'offset'):
                        v = body.get(k)
                        if v is None:
                            continue
                        if isinstance(v, bool) or \
                                not isinstance(v, (int, float)):
                            raise ControlError(400, '%s: a number' % k)
                        if k == 'advance':
                            self.offset += v
                        elif k == 'now':
                            self.offset = v - self.clock()
                        else:
                            self.offset = float(v)
            if get or post:
                with self.lock:
                    return {'now': self.now(), 'offset': self.offset}
        if name == 'users':
            if get and len(parts) == 1:
                return self.user_info()
            if len(parts) >= 2:
                openid = urllib.parse.unquote(parts[1])
                if get and len(parts) == 2:
                    return self.user_info(openid)
                if post and parts[2:] == ['send']:
                    return self.user_send(openid, body)
                if post and parts[2:] == ['tags']:
                    if not OPENID_RE.match(openid):
                        raise ControlError(400, 'openid: 1-64 of '
                                           '[A-Za-z0-9_-]')
                    return self.user_tags_control(openid, body)
        if name == 'tags' and get:
            return self.tags_api()
        if name == 'tags' and post:
            return self.tags_control(body)
        if name == 'pushes' and get:
            with self.lock:
                return copy.deepcopy(self.pushes)
        if name == 'kf' and get:
            with self.lock:
                return {'kf': copy.deepcopy(list(self.kf.values())),
                        'sessions': copy.deepcopy(self.sessions),
                        'log': copy.deepcopy(self.kf_log)}
        raise ControlError(404 if method in ('GET', 'POST') else 405,
                           'no control endpoint %s %s' % (method, path))


# --- API routes: path -> (methods, fn(state, method, q, headers, raw,
#     token) -> Response, needs_token) -------------------------------------

def _json_body(raw):
    if not raw or not raw.strip():
        raise ApiError(44002)
    try:
        body = json.loads(raw.decode('utf-8'))
    except (ValueError, UnicodeDecodeError):
        raise ApiError(47001) from None
    if not isinstance(body, dict):
        raise ApiError(47001)
    return body


def _post(fn):
    return lambda s, m, q, h, raw, tok: api_ok(fn(s, _json_body(raw)))


def _r_token(s, m, q, h, raw, tok):
    return api_json(s.classic_token(q))


def _r_stable(s, m, q, h, raw, tok):
    return api_json(s.stable_token(_json_body(raw)))


def _r_send(s, m, q, h, raw, tok):
    return api_ok(s.custom_send(_json_body(raw), tok))


def _r_upload(s, m, q, h, raw, tok):
    return api_json(s.media_upload(q, h, raw))


def _r_media_get(s, m, q, h, raw, tok):
    mid = q.get('media_id')
    info = s.media.get(mid) if mid else None
    if info is None:
        raise ApiError(40007)
    ext = mimetypes.guess_extension(info['content_type'].split(';')[0]) or ''
    return Response(200, info['data'], info['content_type'], headers={
        'Content-disposition': 'attachment; filename="%s%s"' % (mid, ext),
        'Cache-Control': 'no-cache, must-revalidate'}, result='0')


def _r_kf_del(s, m, q, h, raw, tok):
    if m == 'GET':
        return api_ok(s.kf_del(q))
    return api_ok(s.kf_del(_json_body(raw)))


def _r_headimg(s, m, q, h, raw, tok):
    return api_ok(s.kf_headimg(q, h, raw))


API_ROUTES = {
    '/cgi-bin/token': (('GET',), _r_token, False),
    '/cgi-bin/stable_token': (('POST',), _r_stable, False),
    '/cgi-bin/message/custom/send': (('POST',), _r_send, True),
    '/cgi-bin/message/custom/typing': (
        ('POST',), _post(lambda s, b: s.typing(b)), True),
    '/cgi-bin/media/upload': (('POST',), _r_upload, True),
    '/cgi-bin/user/info': (
        ('GET',), lambda s, m, q, h, raw, tok: api_json(s.user_info_api(q)),
        True),
    '/cgi-bin/user/info/updateremark': (
        ('POST',), _post(lambda s, b: s.update_remark(b)), True),
    '/cgi-bin/media/get': (('GET',), _r_media_get, True),
    '/cgi-bin/tags/get': (
        ('GET',), lambda s, m, q, h, raw, tok: api_json(s.tags_api()), True),
    '/customservice/kfaccount/add': (
        ('POST',), _post(lambda s, b: s.kf_add(b)), True),
    '/customservice/kfaccount/update': (
        ('POST',), _post(lambda s, b: s.kf_update(b)), True),
    '/customservice/kfaccount/del': (('POST', 'GET'), _r_kf_del, True),
    '/customservice/kfaccount/inviteworker': (
        ('POST',), _post(lambda s, b: s.kf_invite(b)), True),
    '/customservice/kfaccount/uploadheadimg': (('POST',), _r_headimg, True),
    '/cgi-bin/customservice/getkflist': (
        ('GET',), lambda s, m, q, h, raw, tok: api_json(s.kf_list()), True),
    '/cgi-bin/customservice/getonlinekflist': (
        ('GET',), lambda s, m, q, h, raw, tok: api_json(s.kf_online_list()),
        True),
    '/customservice/kfsession/create': (
        ('POST',), _post(lambda s, b: s.session_create(b)), True),
    '/customservice/kfsession/close': (
        ('POST',), _post(lambda s, b: s.session_close(b)), True),
    '/customservice/kfsession/getsession': (
        ('GET',), lambda s, m, q, h, raw, tok: api_json(s.session_get(q)),
        True),
    '/customservice/kfsession/getsessionlist': (
        ('GET',), lambda s, m, q, h, raw, tok: api_json(s.session_list(q)),
        True),
    '/customservice/kfsession/getwaitcase': (
        ('GET',), lambda s, m, q, h, raw, tok: api_json(s.waitcase_list()),
        True),
    '/customservice/msgrecord/getmsglist': (
        ('POST',), lambda s, m, q, h, raw, tok: api_json(
            s.msg_records(_json_body(raw))), True),
    '/cgi-bin/get_api_domain_ip': (
        ('GET',), lambda s, m, q, h, raw, tok: api_json(
            {'ip_list': ['127.0.0.1']}), True),
    '/cgi-bin/getcallbackip': (
        ('GET',), lambda s, m, q, h, raw, tok: api_json(
            {'ip_list': ['127.0.0.1']}), True),
}


# --- user side HTTP (urllib, in place of requests.Session) -------------------

class _UrlResponse:
    def __init__(self, status, content, headers):
        self.status_code = status
        self.content = content
        self.headers = headers
        self.ok = 200 <= status < 400

    @property
    def text(self):
        return self.content.decode('utf-8', 'replace')


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **kw):
        return None


class _UrlSession:
    """Just enough of requests.Session.request for wxuser.WxUser."""

    def __init__(self, timeout):
        self.timeout = timeout
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), _NoRedirect)

    def request(self, method, url, params=None, data=None, headers=None,
                timeout=None, allow_redirects=False):
        if params:
            url += ('&' if '?' in url else '?') + \
                urllib.parse.urlencode(params)
        req = urllib.request.Request(url, data=data, method=method,
                                     headers=headers or {})
        try:
            with self.opener.open(req, timeout=self.timeout) as r:
                return _UrlResponse(r.status, r.read(1 << 20),
                                    dict(r.headers))
        except urllib.error.HTTPError as e:
            body = e.read(1 << 20) if e.fp is not None else b''
            return _UrlResponse(e.code, body, dict(e.headers or {}))


# --- the HTTP server ---------------------------------------------------------

class _TooLarge(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'WeChatSim/1.0'

    def version_string(self):
        return self.server_version
    timeout = 120             # idle keep-alive connections end

    def log_request(self, code='-', size='-'):
        pass                  # one line per request from _log instead

    def log_message(self, fmt, *args):
        if self.server.quiet:
            return
        sys.stderr.write('%s sim %s\n' % (
            time.strftime('%Y-%m-%dT%H:%M:%S'), fmt % args))

    def _log(self, method, status, t0, note=''):
        if self.server.quiet:
            return
        path = re.sub(r'(access_token=[^&]{0,8})[^&]*', r'\1...', self.path)
        path = re.sub(r'(secret=)[^&]*', r'\1***', path)
        sys.stderr.write('%s sim %s %s %s %s %dms%s\n' % (
            time.strftime('%Y-%m-%dT%H:%M:%S'), self.client_address[0],
            method, path, status, int((time.monotonic() - t0) * 1000),
            note))
        sys.stderr.flush()

    def do_GET(self):
        self._handle('GET')

    def do_POST(self):
        self._handle('POST')

    def do_PUT(self):
        self._handle('PUT')

    def do_DELETE(self):
        self._handle('DELETE')

    def _read_body(self, limit):
        te = (self.headers.get('Transfer-Encoding') or '').lower()
        if 'chunked' in te:
            out = bytearray()
            for _ in range(1 << 20):
                line = self.rfile.readline(1024)
                if not line:
                    raise ValueError('truncated chunked body')
                size = int(line.split(b';')[0].strip() or b'0', 16)
                if size == 0:
                    for _ in range(100):      # trailers
                        if self.rfile.readline(1024) in (b'\r\n', b'\n', b''):
                            break
                    return bytes(out)
                if len(out) + size > limit:
                    raise _TooLarge()
                out += self.rfile.read(size)
                self.rfile.readline(16)
            raise ValueError('too many chunks')
        cl = self.headers.get('Content-Length')
        if not cl:
            return b''
        n = int(cl)
        if n < 0:
            raise ValueError('negative Content-Length')
        if n > limit:
            if n <= 8 * limit:       # drain it so the client reads a 413
                for _ in range(n // 65536 + 1):
                    if not self.rfile.read(min(65536, n)):
                        break
                    n -= 65536
                    if n <= 0:
                        break
            raise _TooLarge()
        data = self.rfile.read(n)
        if len(data) != n:
            raise ValueError('truncated body')
        return data

    def _write(self, resp):
        self.send_response(resp.status)
        self.send_header('Content-Type', resp.ctype or 'text/plain')
        self.send_header('Content-Length', str(len(resp.body)))
        for k, v in resp.headers.items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header('Connection', 'close')
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(resp.body)

    def _drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _handle(self, method):
        t0 = time.monotonic()
        try:
            self._handle1(method, t0)
        except (ConnectionError, BrokenPipeError, socket.timeout):
            self.close_connection = True
        except Exception:           # noqa: BLE001 - a bug: answer 500
            self.close_connection = True
            sys.stderr.write(traceback.format_exc())
            try:
                self._write(control_json({'errcode': -1, 'errmsg':
                                          'simulator error'}, 500))
            except OSError:
                pass
            self._log(method, 500, t0)

    def _handle1(self, method, t0):
        state = self.server.state
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        q = {k: v[0] for k, v in urllib.parse.parse_qs(
            url.query, keep_blank_values=True).items()}
        is_sim = path == '/_sim' or path.startswith('/_sim/')
        if path in BIG_BODY_PATHS:
            limit = MEDIA_BODY
        elif is_sim and path.rstrip('/') == '/_sim/media':
            limit = SIM_MEDIA_BODY
        else:
            limit = SMALL_BODY
        try:
            raw = self._read_body(limit)
        except _TooLarge:
            self.close_connection = True
            self._write(control_json({'errcode': -1, 'errmsg':
                                      'request body too large'}, 413))
            self._log(method, 413, t0)
            return
        except (ValueError, OSError):
            self.close_connection = True
            self._write(control_json({'errcode': -1, 'errmsg':
                                      'bad request body'}, 400))
            self._log(method, 400, t0)
            return
        if is_sim:
            resp = state.control(method, path, q, raw)
            self._write(resp)
            self._log(method, resp.status, t0)
            return

        token = q.get('access_token') if 'access_token' in q else None
        state.record_call(path, token)
        fault = state.take_fault(path) if path in API_ROUTES else None
        note = ''
        if fault is not None:
            note = ' fault=%s#%d' % (fault['kind'], fault['id'])
            kind = fault['kind']
            if kind == 'delay':
                time.sleep(fault['delay_ms'] / 1000.0)
            elif kind == 'drop':
                state.record_result(path, 'drop')
                self._drop()
                self._log(method, 'dropped', t0, note)
                return
            elif kind == 'http':
                st = fault['status']
                state.record_result(path, 'http%d' % st)
                body = ('<html><head><title>%d</title></head><body><center>'
                        '<h1>%d</h1></center></body></html>' % (st, st))
                self._write(Response(st, body.encode(), 'text/html'))
                self._log(method, st, t0, note)
                return
            elif kind == 'errcode':
                resp = api_json({'errcode': fault['errcode'],
                                 'errmsg': _errmsg(fault['errcode'],
                                                   fault.get('errmsg'))})
                state.record_result(path, resp.result)
                self._write(resp)
                self._log(method, 200, t0, note)
                return
        resp = state.api(method, path, q, self.headers, raw)
        state.record_result(path, resp.result)
        if fault is not None and fault['kind'] == 'drop_after':
            self._drop()
            self._log(method, 'dropped-after', t0, note)
            return
        self._write(resp)
        self._log(method, resp.status, t0, note + (
            ' errcode=%s' % resp.result if resp.result not in (None, '0')
            else ''))


class SimHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, state, quiet=False):
        super().__init__(addr, Handler)
        self.state = state
        self.quiet = quiet
        state.port = self.server_address[1]


def make_server(port=0, quiet=False, **kw):
    """A bound (not yet serving) simulator on 127.0.0.1:port."""
    state = SimState(**kw)
    return SimHTTPServer(('127.0.0.1', port), state, quiet=quiet)


class SimServer:
    """The simulator in-process, serving from a thread (pytest fixtures).

        with SimServer(appid='wx1', secret='s', callback=url, token='T',
                       aes_key=K, original_id='gh_1') as sim:
            status, body = sim.call('GET', '/cgi-bin/token', query={...})
    """

    def __init__(self, port=0, quiet=True, **kw):
        self._port = port
        self._quiet = quiet
        self._kw = kw
        self.httpd = None
        self.thread = None

    def start(self):
        self.httpd = make_server(self._port, quiet=self._quiet, **self._kw)
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={'poll_interval': 0.1},
                                       name='wechat-sim', daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(5)
            self.httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def state(self):
        return self.httpd.state

    @property
    def port(self):
        return self.httpd.server_address[1]

    @property
    def base_url(self):
        return 'http://127.0.0.1:%d' % self.port

    @property
    def appid(self):
        return self.state.identity['appid']

    @property
    def secret(self):
        return self.state.identity['secret']

    def call(self, method, path, body=None, query=None, raw=None,
             headers=None, timeout=10):
        """One request -> (HTTP status, parsed JSON or bytes)."""
        url = self.base_url + path
        if query:
            url += ('&' if '?' in path else '?') + \
                urllib.parse.urlencode(query)
        data = raw
        h = dict(headers or {})
        if body is not None:
            data = json.dumps(body).encode('utf-8')
            h.setdefault('Content-Type', 'application/json')
        if data is None and method == 'POST':
            data = b''
        req = urllib.request.Request(url, data=data, method=method,
                                     headers=h)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(req, timeout=timeout) as r:
                status, ctype, content = r.status, \
                    r.headers.get('Content-Type', ''), r.read()
        except urllib.error.HTTPError as e:
            status, ctype, content = e.code, \
                e.headers.get('Content-Type', ''), e.read()
        if 'json' in ctype:
            return status, json.loads(content.decode('utf-8'))
        return status, content

    # Shortcuts (raise AssertionError on a non-200 control answer).
    def _ok(self, method, path, body=None, query=None):
        st, out = self.call(method, path, body, query)
        if st != 200:
            raise AssertionError('%s %s -> %s %r' % (method, path, st, out))
        return out

    def token(self):
        return self._ok('GET', '/cgi-bin/token', query={
            'grant_type': 'client_credential', 'appid': self.appid,
            'secret': self.secret})['access_token']

    def reset(self):
        return self._ok('POST', '/_sim/reset')

    def config(self, **kw):
        return self._ok('POST', '/_sim/config', kw)

    def sent(self):
        return self._ok('GET', '/_sim/sent')

    def calls(self):
        return self._ok('GET', '/_sim/calls')

    def fault(self, **kw):
        return self._ok('POST', '/_sim/fault', kw)

    def inbound(self, openid, ts=None, event=None):
        body = {'openid': openid}
        if ts is not None:
            body['ts'] = ts
        if event is not None:
            body['event'] = event
        return self._ok('POST', '/_sim/inbound', body)

    def user_send(self, openid, **kw):
        return self._ok('POST', '/_sim/users/%s/send'
                        % urllib.parse.quote(openid, safe=''), kw)


# --- command line ------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(
        description='Local stand-in for the WeChat API server and its '
                    'users (listens on 127.0.0.1 only).')
    ap.add_argument('--port', type=int,
                    default=int(os.environ.get('SIM_PORT') or 8089))
    ap.add_argument('--appid', help='default: a random wx...')
    ap.add_argument('--secret', help='default: random (printed)')
    ap.add_argument('--callback', help='our backend URL for user pushes, '
                    'e.g. http://127.0.0.1:8080/wechat')
    ap.add_argument('--token', help='callback Token')
    ap.add_argument('--aes-key', help='EncodingAESKey (43 chars)')
    ap.add_argument('--original-id', help='gh_... of the account')
    ap.add_argument('--wechat-id', help='suffix kf accounts must have')
    ap.add_argument('--expires-in', type=int)
    ap.add_argument('--send-quota', type=int)
    ap.add_argument('--mode', choices=('plain', 'compat', 'safe'),
                    help='how user pushes are sent by default (default: '
                    'safe with --aes-key, as an account whose key is set; '
                    'else plain)')
    ap.add_argument('--quiet', action='store_true',
                    help='no per-request log lines')
    a = ap.parse_args(argv)
    tun = {'default_mode': a.mode or ('safe' if a.aes_key else 'plain')}
    if a.expires_in is not None:
        tun['expires_in'] = a.expires_in
    if a.send_quota is not None:
        tun['send_quota'] = a.send_quota
    try:
        httpd = make_server(a.port, quiet=a.quiet, appid=a.appid,
                            secret=a.secret or None, callback=a.callback,
                            token=a.token, aes_key=a.aes_key,
                            original_id=a.original_id,
                            wechat_id=a.wechat_id, **tun)
    except OSError as e:
        sys.stderr.write('wechat_api_sim: cannot listen on 127.0.0.1:%d: '
                         '%s\n' % (a.port, e))
        return 1

    def stop(signum, frame):
        sys.stderr.write('wechat_api_sim: signal %d, stopping\n' % signum)
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    ident = httpd.state.identity
    sys.stderr.write('wechat_api_sim: listening on http://127.0.0.1:%d '
                     'appid=%s secret=%s... callback=%s\n'
                     % (httpd.server_address[1], ident['appid'],
                        ident['secret'][:4], ident['callback'] or '-'))
    sys.stderr.flush()
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        httpd.server_close()
    sys.stderr.write('wechat_api_sim: stopped\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
