#!/usr/bin/python3
"""A simulated WeChat user (and platform) that pushes signed callbacks.

Library use (test/it):

    u = WxUser('http://127.0.0.1:8080/wechat', token, app_id, aes_key,
               original_id='gh_...', openid='o...')
    r = u.send_text('hello', mode='safe')
    reply = u.decode_reply(r)      # Reply(kind, fields, xml, envelope)

Command line (poke a running `make run` stack):

    /usr/bin/python3 test/sim/wxuser.py --conf var/wxkf.conf text "hello"
    /usr/bin/python3 test/sim/wxuser.py --conf var/wxkf.conf --mode safe \\
        event subscribe
    /usr/bin/python3 test/sim/wxuser.py --conf var/wxkf.conf verify

Only the standard library, python3-requests and python3-cryptography.
"""

import argparse
import configparser
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import wechat_crypto as wc  # noqa: E402

MODES = ('plain', 'compat', 'safe')
DEFAULT_OPENID = 'oSimUser0000000000000000001A'
HTTP_TIMEOUT = 10


def new_nonce():
    return str(random.randint(100000000, 9999999999))


def new_msgid():
    # Real MsgIds are 64-bit and exceed 2^53: keep them large.
    return str(random.randint(10 ** 17, 2 ** 63 - 1))


class Reply:
    """A decoded callback response.

    kind: 'success' (body exactly 'success'), 'empty' (zero bytes),
          'plain' (a plaintext XML reply), 'encrypted' (a verified and
          decrypted envelope), 'other' (anything else: error JSON, ...).
    fields: first-level fields of the reply XML (plain or decrypted).
    xml: the reply XML as text (decrypted for 'encrypted').
    envelope: the four envelope fields for 'encrypted'.
    """

    def __init__(self, kind, fields=None, xml=None, envelope=None):
        self.kind = kind
        self.fields = fields or {}
        self.xml = xml
        self.envelope = envelope

    def __repr__(self):
        return 'Reply(%s, %r)' % (self.kind, self.fields)


class WxUser:
    def __init__(self, base_url, token, app_id, aes_key=None,
                 original_id='gh_000000000000', openid=DEFAULT_OPENID,
                 mode='plain', session=None):
        self.base_url = base_url
        self.token = token
        self.app_id = app_id
        self.aes_key = aes_key or None
        self.original_id = original_id
        self.openid = openid
        self.mode = mode
        self._session = session

    # --- HTTP ------------------------------------------------------------

    def _http(self):
        if self._session is None:
            import requests
            self._session = requests.Session()
        return self._session

    def request(self, method, query=None, body=None, headers=None, url=None):
        h = {}
        if body is not None:
            h['Content-Type'] = 'text/xml; charset=utf-8'
        h.update(headers or {})
        return self._http().request(method, url or self.base_url,
                                    params=query, data=body, headers=h,
                                    timeout=HTTP_TIMEOUT,
                                    allow_redirects=False)

    # --- GET verification ------------------------------------------------

    def verify_query(self, echostr=None, timestamp=None, nonce=None):
        ts = str(int(time.time())) if timestamp is None else str(timestamp)
        nonce = new_nonce() if nonce is None else str(nonce)
        if echostr is None:
            echostr = str(random.randint(10 ** 17, 10 ** 19))
        return {'signature': wc.sign(self.token, ts, nonce),
                'timestamp': ts, 'nonce': nonce, 'echostr': echostr}

    def verify(self, echostr=None, **kw):
        """Signed GET as WeChat sends when saving the server URL."""
        return self.request('GET', self.verify_query(echostr, **kw))

    # --- building messages -------------------------------------------------

    def text_xml(self, content, msgid=None, create_time=None, **extra):
        fields = [('ToUserName', self.original_id),
                  ('FromUserName', self.openid),
                  ('CreateTime', create_time or int(time.time())),
                  ('MsgType', 'text'), ('Content', content)]
        fields += list(extra.items())
        fields.append(('MsgId', msgid or new_msgid()))
        return wc.build_xml(fields)

    def event_xml(self, event, create_time=None, **fields):
        items = [('ToUserName', self.original_id),
                 ('FromUserName', self.openid),
                 ('CreateTime', create_time or int(time.time())),
                 ('MsgType', 'event'), ('Event', event)]
        items += list(fields.items())
        return wc.build_xml(items)

    def prepare(self, xml, mode=None, timestamp=None, nonce=None,
                encrypt=None, random16=None, to_user=None):
        """Build (query, body bytes) for a push of message `xml`.

        plain:  body = xml; query signature/timestamp/nonce/openid.
        safe:   body = <xml><ToUserName/><Encrypt/></xml>; adds
                encrypt_type=aes and msg_signature.
        compat: the plaintext fields plus <Encrypt> before </xml>.
        `encrypt` replaces the computed Encrypt text (crafted inputs);
        `to_user` replaces the outer ToUserName of a safe-mode body.
        """
        mode = mode or self.mode
        if mode not in MODES:
            raise ValueError('mode must be one of %s' % (MODES,))
        ts = str(int(time.time())) if timestamp is None else str(timestamp)
        nonce = new_nonce() if nonce is None else str(nonce)
        xml_b = xml.encode('utf-8') if isinstance(xml, str) else xml
        query = {'signature': wc.sign(self.token, ts, nonce),
                 'timestamp': ts, 'nonce': nonce, 'openid': self.openid}
        if mode == 'plain':
            return query, xml_b
        if encrypt is None:
            if not self.aes_key:
                raise ValueError('mode %s needs an EncodingAESKey' % mode)
            encrypt = wc.encrypt(self.aes_key, self.app_id, xml_b, random16)
        query['encrypt_type'] = 'aes'
        query['msg_signature'] = wc.msg_sign(self.token, ts, nonce, encrypt)
        enc_elem = '<Encrypt>%s</Encrypt>' % wc.cdata(encrypt)
        if mode == 'safe':
            body = '<xml><ToUserName>%s</ToUserName>%s</xml>' % (
                wc.cdata(to_user or self.original_id), enc_elem)
            return query, body.encode('utf-8')
        idx = xml_b.rstrip().rfind(b'</xml>')
        if idx < 0:
            raise ValueError('compat mode needs an <xml> document')
        return query, xml_b[:idx] + enc_elem.encode() + xml_b[idx:]

    # --- sending -------------------------------------------------------------

    def send_raw(self, xml, mode=None, query_update=None, query=None,
                 method='POST', **prep):
        """Push message `xml` in `mode`; `query_update` overrides or (with
        value None) removes query parameters after signing; `query`
        replaces the query entirely. Returns the requests.Response."""
        q, body = self.prepare(xml, mode, **prep)
        if query is not None:
            q = dict(query)
        for k, v in (query_update or {}).items():
            if v is None:
                q.pop(k, None)
            else:
                q[k] = v
        return self.request(method, q, body)

    def send_text(self, content, msgid=None, mode=None, create_time=None,
                  **kw):
        return self.send_raw(self.text_xml(content, msgid, create_time),
                             mode, **kw)

    def send_event(self, event, mode=None, create_time=None, **fields):
        return self.send_raw(self.event_xml(event, create_time, **fields),
                             mode)

    # --- replies -------------------------------------------------------------

    def decode_reply(self, resp):
        """Classify and decode a response body (see Reply). An encrypted
        envelope is verified (MsgSignature) and decrypted with our appid;
        ValueError if that fails."""
        body = resp.content if hasattr(resp, 'content') else resp
        if body == b'success':
            return Reply('success')
        if body == b'':
            return Reply('empty')
        try:
            fields = wc.parse_fields(body)
        except ValueError:
            return Reply('other', xml=body.decode('utf-8', 'replace'))
        if 'Encrypt' in fields and 'MsgSignature' in fields:
            if not self.aes_key:
                raise ValueError('encrypted reply but no EncodingAESKey')
            pt, env = wc.verify_and_decrypt_envelope(
                body, self.token, self.aes_key, self.app_id)
            return Reply('encrypted', wc.parse_fields(pt),
                         pt.decode('utf-8'), env)
        return Reply('plain', fields, body.decode('utf-8'))


# --- command line -------------------------------------------------------------

def _read_conf(path):
    cp = configparser.ConfigParser(interpolation=None,
                                   inline_comment_prefixes=None)
    with open(path, encoding='utf-8') as f:
        cp.read_file(f)

    def get(key, default=''):
        env = os.environ.get('WXKF_WECHAT_' + key.upper())
        if env is not None:
            return env
        return cp.get('wechat', key, fallback=default).strip()
    return {k: get(k) for k in ('token', 'app_id', 'encoding_aes_key',
                                'original_id')}


def main(argv=None):
    ap = argparse.ArgumentParser(
        description='Push signed WeChat callbacks to a wxkf stack.')
    ap.add_argument('--conf', required=True, help='wxkf INI config file')
    ap.add_argument('--url', default='http://127.0.0.1:8080/wechat')
    ap.add_argument('--mode', choices=MODES, default='plain')
    ap.add_argument('--openid', default=DEFAULT_OPENID)
    sub = ap.add_subparsers(dest='cmd', required=True)
    t = sub.add_parser('text', help='send a text message')
    t.add_argument('content')
    t.add_argument('--msgid')
    e = sub.add_parser('event', help='send an event (subscribe, CLICK ...)')
    e.add_argument('event')
    e.add_argument('--key', help='EventKey')
    v = sub.add_parser('verify', help='signed GET URL verification')
    v.add_argument('--echostr')
    a = ap.parse_args(argv)

    c = _read_conf(a.conf)
    if a.mode != 'plain' and not c['encoding_aes_key']:
        ap.error('--mode %s needs encoding_aes_key in %s' % (a.mode, a.conf))
    u = WxUser(a.url, c['token'], c['app_id'], c['encoding_aes_key'],
               original_id=c['original_id'] or 'gh_000000000000',
               openid=a.openid, mode=a.mode)
    if a.cmd == 'verify':
        r = u.verify(a.echostr)
    elif a.cmd == 'text':
        r = u.send_text(a.content, a.msgid)
    else:
        extra = {'EventKey': a.key} if a.key else {}
        r = u.send_event(a.event, **extra)

    print('HTTP %d %s' % (r.status_code, r.headers.get('Content-Type', '')))
    rid = r.headers.get('X-Request-Id')
    if rid:
        print('X-Request-Id: %s' % rid)
    if a.cmd == 'verify':
        print(r.text)
        return 0 if r.ok else 1
    try:
        rep = u.decode_reply(r)
    except ValueError as exc:
        print('reply does not verify: %s' % exc)
        print(r.text)
        return 1
    if rep.kind in ('success', 'empty', 'other'):
        print(rep.kind if rep.kind != 'other' else r.text)
    else:
        print('%s reply:' % rep.kind)
        for k, val in rep.fields.items():
            print('  %s: %s' % (k, val))
    return 0 if r.ok else 1


if __name__ == '__main__':
    sys.exit(main())
