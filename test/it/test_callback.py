"""POST /wechat: valid callbacks in plain, compatible and safe mode, the
Redis event stream, de-duplication of retries, passive replies."""

import itertools
import json
import os
import random
import re
import subprocess
import threading
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import (VECTORS, assert_error, load_index, run_stack,
                      wait_until, wc, wxkf_bin)

MODES = ('plain', 'compat', 'safe')
REPLY_FIELDS = {'ToUserName', 'FromUserName', 'CreateTime', 'MsgType',
                'Content'}

# Unique CreateTime values (events dedupe on FromUserName+CreateTime+Event).
_ctime = itertools.count(int(time.time()) - 5000)


def now_ms():
    return int(time.time() * 1000)


def msg_key(fields):
    if fields.get('MsgType') == 'event':
        return 'event:%s:%s:%s' % (fields['FromUserName'],
                                   fields['CreateTime'], fields['Event'])
    return 'msgid:%s:%s' % (fields['FromUserName'], fields['MsgId'])


def send(user, xml, mode):
    """Push xml; returns (response, ms before, ms after)."""
    t0 = now_ms()
    r = user.send_raw(xml, mode)
    return r, t0, now_ms()


def assert_success(r):
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert r.content == b'success'
    assert r.headers.get('X-Request-Id')


def assert_stored(stack, fields, r, t0, t1):
    """Exactly one msg_in entry for the message, with every field right."""
    key = msg_key(fields)
    ents = stack.entries_for(key)
    assert len(ents) == 1, 'entries for %s: %r' % (key, ents)
    e = ents[0]
    assert e.get('type') == 'msg_in', e
    assert e.get('openid') == fields['FromUserName'], e
    assert e.get('msgtype') == fields['MsgType'], e
    assert e.get('event') == fields.get('Event', ''), e
    assert e.get('msgid') == fields.get('MsgId', ''), e
    assert e.get('create_time') == fields['CreateTime'], e
    assert re.fullmatch(r'[0-9]+', e.get('recv_ms', '')), e
    assert t0 - 2000 <= int(e['recv_ms']) <= t1 + 2000, (t0, e, t1)
    assert e.get('rid') == r.headers.get('X-Request-Id'), e
    assert json.loads(e['payload']) == fields, e['payload']
    dkey = stack.dedupe_prefix + key
    assert stack.redis.exists(dkey) == 1, 'no dedupe key %s' % dkey
    ttl = stack.redis.ttl(dkey)
    assert 0 < ttl <= 600, 'TTL of %s is %s' % (dkey, ttl)
    return e


def assert_welcome(stack, fields, openid):
    assert set(fields) == REPLY_FIELDS, fields
    assert fields['ToUserName'] == openid
    assert fields['FromUserName'] == stack.original_id
    assert fields['MsgType'] == 'text'
    assert fields['Content'] == stack.welcome
    assert re.fullmatch(r'[0-9]+', fields['CreateTime'])
    assert abs(int(fields['CreateTime']) - time.time()) < 600


# --- plain mode ----------------------------------------------------------------

def test_text_message_is_acknowledged_and_streamed(stack, wx):
    xml = wx.text_xml('你好 <a> & ]]> b\n第二行')
    r, t0, t1 = send(wx, xml, 'plain')
    assert_success(r)
    assert_stored(stack, wc.parse_fields(xml), r, t0, t1)


@pytest.fixture(scope='module')
def safe_stack():
    """A stack configured like most real ones: an EncodingAESKey and no
    `encoding` line, so safe mode (encrypted pushes only)."""
    yield from run_stack('safe', workers=1, skip_pg=True, encoding='')


def test_encrypt_type_raw_is_plaintext(stack, wx):
    # encoding = compatible (the suite's stack): plaintext is taken
    xml = wx.text_xml('raw mode')
    t0 = now_ms()
    r = wx.send_raw(xml, 'plain', query_update={'encrypt_type': 'raw'})
    assert_success(r)
    assert_stored(stack, wc.parse_fields(xml), r, t0, now_ms())


def test_a_keyed_stack_refuses_plaintext_pushes(safe_stack):
    """Safe mode, the default with a key: a plaintext push — which a
    forger holding one logged URL could write — is refused with 400
    encoding_refused and stores nothing; WeChat's encrypted push of the
    same message is taken."""
    st = safe_stack
    u = st.user()
    before = st.snapshot()
    for mode, upd in (('plain', None), ('plain', {'encrypt_type': 'raw'})):
        xml = u.text_xml('plaintext on a keyed stack')
        r = u.send_raw(xml, mode, query_update=upd)
        assert_error(r, 400, 'encoding_refused')
    # compatible-mode body without encrypt_type: only the plaintext part
    # would be read, so it is refused too
    r = u.send_raw(u.text_xml('compat, aes dropped'), 'compat',
                   query_update={'encrypt_type': None,
                                 'msg_signature': None})
    assert_error(r, 400, 'encoding_refused')
    assert st.snapshot() == before
    xml = u.text_xml('encrypted')
    r, t0, t1 = send(u, xml, 'safe')
    assert_success(r)
    assert_stored(st, wc.parse_fields(xml), r, t0, t1)


def test_check_names_the_encoding_and_a_short_token(safe_stack):
    out = subprocess.run([wxkf_bin(), 'check', '-c', safe_stack.conf],
                         capture_output=True, text=True, timeout=60)
    assert 'wechat: encoding safe' in out.stdout, out.stdout
    # the suite's Token has 15 characters: loads, with a warning
    assert len(safe_stack.token) < 16
    assert 'config: warning: wechat.token is shorter than 16' in out.stdout
    with open(safe_stack.log_file, encoding='utf-8') as f:
        log = f.read()
    assert 'ev=advice why="wechat.token is shorter' in log


# --- one signed URL, one message ----------------------------------------------

def test_a_signed_query_replayed_with_another_message_is_refused(stack):
    """Anyone who saw one callback URL (an access log, plain http) holds a
    valid signature/timestamp/nonce for the next 300 s. With it they may
    resend the same message (a retry: stored once) but nothing else:
    another user's kf_switch_session, close, or text is 403
    signature_reused, and nothing is stored."""
    victim = stack.user()
    forger = stack.user()
    xml = victim.text_xml('hello from the victim')
    q, body = victim.prepare(xml, 'plain')
    t0 = now_ms()
    r1 = victim.request('POST', q, body)
    t1 = now_ms()
    assert_success(r1)
    r2 = victim.request('POST', q, body)          # WeChat's retry
    assert_success(r2)
    before = stack.snapshot()
    forged = [
        forger.text_xml('forged text'),
        victim.text_xml('forged as the victim'),
        victim.event_xml('kf_switch_session', create_time=next(_ctime),
                         FromKfAccount='a1@test', ToKfAccount='evil@test'),
        victim.event_xml('kf_close_session', create_time=next(_ctime),
                         KfAccount='a1@test'),
    ]
    for f in forged:
        r = victim.request('POST', q, f.encode())
        assert_error(r, 403, 'signature_reused')
    # safe mode would not help a forger either: same query, aes added
    _, enc_body = victim.prepare(forged[0], 'compat')
    r = victim.request('POST', q, enc_body)
    assert_error(r, 403, 'signature_reused')
    assert stack.snapshot() == before
    assert_stored(stack, wc.parse_fields(xml), r1, t0, t1)
    # the same forged message under a query of its own is just a message
    r = forger.send_raw(forged[0], 'plain')
    assert_success(r)


def test_a_safe_retry_encrypted_afresh_under_one_query_is_a_retry(stack):
    """The binding is to the message, not to the ciphertext: a retry that
    WeChat seals again (new random prefix) under the same signature is
    still the first message."""
    u = stack.user(mode='safe')
    xml = u.text_xml('sealed twice')
    ts, nonce = str(int(time.time())), str(random.randint(1, 10 ** 9))
    r1 = u.send_raw(xml, 'safe', timestamp=ts, nonce=nonce)
    r2 = u.send_raw(xml, 'safe', timestamp=ts, nonce=nonce)
    assert_success(r1)
    assert_success(r2)
    assert len(stack.entries_for(msg_key(wc.parse_fields(xml)))) == 1
    other = u.text_xml('another message, same query')
    r3 = u.send_raw(other, 'safe', timestamp=ts, nonce=nonce)
    assert_error(r3, 403, 'signature_reused')
    assert stack.entries_for(msg_key(wc.parse_fields(other))) == []


def test_a_msgid_cannot_be_claimed_for_another_user(stack):
    """Dedupe keys are scoped by FromUserName: a message sent first with
    someone else's MsgId takes nothing from them."""
    msgid = str(random.randint(10 ** 17, 10 ** 18))
    forger, victim = stack.user(), stack.user()
    xf = forger.text_xml('claimed in advance', msgid=msgid)
    xv = victim.text_xml('the real one', msgid=msgid)
    rf, t0, t1 = send(forger, xf, 'plain')
    rv, t2, t3 = send(victim, xv, 'plain')
    assert_success(rf)
    assert_success(rv)
    theirs = [f for _id, f in stack.entries()
              if f.get('type') == 'msg_in' and f.get('openid') ==
              victim.openid]
    assert len(theirs) == 1, 'the victim\'s message was not stored'
    assert_stored(stack, wc.parse_fields(xf), rf, t0, t1)
    e = assert_stored(stack, wc.parse_fields(xv), rv, t2, t3)
    assert json.loads(e['payload'])['Content'] == 'the real one'


def test_the_access_log_holds_no_callback_query(stack, wx):
    """nginx logs /wechat by path: the signature, timestamp and nonce a
    replay would need never reach the access log."""
    q, body = wx.prepare(wx.text_xml('log me not'), 'safe')
    r = wx.request('POST', q, body)
    assert_success(r)
    rid = r.headers['X-Request-Id']
    log = os.path.join(stack.dir, 'logs', 'nginx-access.log')

    def line():
        with open(log, encoding='utf-8', errors='replace') as f:
            return next((ln for ln in f if 'rid=%s' % rid in ln), None)
    ln = wait_until(line, 5, 0.1, 'the access-log line')
    assert '"POST /wechat"' in ln, ln
    for k in ('signature', 'timestamp', 'nonce', 'msg_signature', 'openid'):
        assert k not in ln and q[k] not in ln, (k, ln)
    assert '?' not in ln, ln


def test_large_msgid_kept_as_string(stack, wx):
    msgid = '18446744073709551615'            # 2^64 - 1
    xml = wx.text_xml('big id', msgid=msgid)
    r, t0, t1 = send(wx, xml, 'plain')
    assert_success(r)
    e = assert_stored(stack, wc.parse_fields(xml), r, t0, t1)
    assert e['msgid'] == msgid


def test_event_other_than_subscribe_gets_success(stack, wx):
    xml = wx.event_xml('CLICK', create_time=next(_ctime), EventKey='V1001')
    r, t0, t1 = send(wx, xml, 'plain')
    assert_success(r)
    f = wc.parse_fields(xml)
    e = assert_stored(stack, f, r, t0, t1)
    assert e['key'] == 'event:%s:%s:CLICK' % (wx.openid, f['CreateTime'])
    assert e['msgid'] == '' and e['event'] == 'CLICK'


def test_subscribe_gets_welcome_text_reply(stack, wx):
    xml = wx.event_xml('subscribe', create_time=next(_ctime))
    r, t0, t1 = send(wx, xml, 'plain')
    assert r.status_code == 200, r.text
    ctype = r.headers.get('Content-Type', '').replace(' ', '').lower()
    assert ctype == 'text/xml;charset=utf-8'
    assert r.headers.get('X-Request-Id')
    # The welcome text contains ']]>': the reply only parses if the
    # writer split the CDATA section (or escaped it).
    root = ET.fromstring(r.content)
    assert root.tag == 'xml'
    assert root.find('Content').text == stack.welcome
    assert_welcome(stack, wc.parse_fields(r.content), wx.openid)
    assert_stored(stack, wc.parse_fields(xml), r, t0, t1)


def test_distinct_messages_get_distinct_entries(stack, wx):
    before = stack.msg_count()
    for i in range(3):
        assert_success(wx.send_text('msg %d' % i))
    assert stack.msg_count() == before + 3


# --- retries and concurrency -------------------------------------------------

def test_retry_of_text_message_is_stored_once(stack, wx):
    xml = wx.text_xml('retry me')
    r1, t0, t1 = send(wx, xml, 'plain')
    assert_success(r1)
    before = stack.xlen()
    for _ in range(3):                # WeChat: up to 3 retries, new nonce
        r = wx.send_raw(xml, 'plain', nonce=random.randint(1, 10 ** 9))
        assert_success(r)
    assert stack.xlen() == before     # a retry adds no event at all
    assert_stored(stack, wc.parse_fields(xml), r1, t0, t1)


def test_retry_with_new_timestamp_is_stored_once(stack, wx):
    xml = wx.text_xml('retry later')
    r1, t0, t1 = send(wx, xml, 'plain')
    assert_success(r1)
    r2 = wx.send_raw(xml, 'plain', timestamp=int(time.time()) + 5)
    assert_success(r2)
    assert_stored(stack, wc.parse_fields(xml), r1, t0, t1)


def test_retry_of_subscribe_gets_same_reply(stack, wx):
    xml = wx.event_xml('subscribe', create_time=next(_ctime))
    r1, t0, t1 = send(wx, xml, 'plain')
    assert r1.status_code == 200
    r2 = wx.send_raw(xml, 'plain', timestamp=int(time.time()) + 2)
    assert r2.status_code == 200
    assert r2.content == r1.content
    assert_welcome(stack, wc.parse_fields(r2.content), wx.openid)
    assert_stored(stack, wc.parse_fields(xml), r1, t0, t1)


def test_retry_of_safe_subscribe_gets_same_plaintext(stack):
    u = stack.user(mode='safe')
    xml = u.event_xml('subscribe', create_time=next(_ctime))
    enc = wc.encrypt(stack.aes_key, stack.app_id, xml.encode())
    t0 = now_ms()
    r1 = u.send_raw(xml, 'safe', encrypt=enc)
    t1 = now_ms()
    r2 = u.send_raw(xml, 'safe', encrypt=enc,
                    timestamp=int(time.time()) + 3)
    assert r1.status_code == 200 and r2.status_code == 200
    d1, d2 = u.decode_reply(r1), u.decode_reply(r2)
    assert d1.kind == 'encrypted' and d2.kind == 'encrypted'
    assert d1.xml == d2.xml
    assert_welcome(stack, d2.fields, u.openid)
    assert_stored(stack, wc.parse_fields(xml), r1, t0, t1)


def _race(stack, make_user, xml, mode, n=2):
    """Post the same message from n threads at once."""
    users = [make_user() for _ in range(n)]
    barrier = threading.Barrier(n, timeout=10)
    results = [None] * n

    def run(i):
        try:
            q, body = users[i].prepare(xml, mode)
            barrier.wait()
            results[i] = users[i].request('POST', q, body)
        except Exception as e:      # noqa: BLE001 - reported below
            results[i] = e
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), 'request hung'
    return results


@pytest.mark.parametrize('mode', ['plain', 'safe'])
def test_concurrent_duplicates_are_stored_once(stack, mode):
    openid = stack.user().openid
    for round_ in range(5):
        mk = lambda: stack.user(openid=openid, mode=mode)   # noqa: E731
        xml = mk().text_xml('race %d' % round_)
        results = _race(stack, mk, xml, mode)
        for r in results:
            assert not isinstance(r, Exception), r
            assert_success(r)
        key = msg_key(wc.parse_fields(xml))
        assert len(stack.entries_for(key)) == 1, 'round %d' % round_


def test_concurrent_duplicate_events_are_stored_once(stack):
    openid = stack.user().openid
    mk = lambda: stack.user(openid=openid)                  # noqa: E731
    xml = mk().event_xml('CLICK', create_time=next(_ctime), EventKey='K')
    for r in _race(stack, mk, xml, 'plain', n=3):
        assert not isinstance(r, Exception), r
        assert_success(r)
    assert len(stack.entries_for(msg_key(wc.parse_fields(xml)))) == 1


# --- safe and compatible mode ------------------------------------------------

def test_safe_text_gets_plain_success(stack):
    u = stack.user(mode='safe')
    xml = u.text_xml('加密的消息 ]]> <x>')
    r, t0, t1 = send(u, xml, 'safe')
    assert_success(r)
    assert_stored(stack, wc.parse_fields(xml), r, t0, t1)


def test_safe_subscribe_gets_encrypted_welcome(stack):
    u = stack.user(mode='safe')
    xml = u.event_xml('subscribe', create_time=next(_ctime))
    r, t0, t1 = send(u, xml, 'safe')
    assert r.status_code == 200, r.text
    assert r.headers.get('Content-Type', '').startswith('text/xml')
    env_fields = wc.parse_fields(r.content)
    assert set(env_fields) == {'Encrypt', 'MsgSignature', 'TimeStamp',
                               'Nonce'}, env_fields
    env = wc.parse_envelope(r.content)
    assert env['MsgSignature'] == wc.msg_sign(
        stack.token, env['TimeStamp'], env['Nonce'], env['Encrypt'])
    assert re.fullmatch(r'[0-9]+', env['TimeStamp'])
    assert abs(int(env['TimeStamp']) - time.time()) < 600
    pt, _rnd = wc.decrypt(stack.aes_key, stack.app_id, env['Encrypt'])
    root = ET.fromstring(pt)
    assert root.find('Content').text == stack.welcome
    assert_welcome(stack, wc.parse_fields(pt), u.openid)
    rep = u.decode_reply(r)
    assert rep.kind == 'encrypted'
    assert_stored(stack, wc.parse_fields(xml), r, t0, t1)


def test_safe_welcome_uses_fresh_random_prefix(stack):
    u1, u2 = stack.user(mode='safe'), stack.user(mode='safe')
    prefixes = set()
    for u in (u1, u2):
        r = u.send_event('subscribe', create_time=next(_ctime))
        env = wc.parse_envelope(r.content)
        prefixes.add(wc.decrypt(stack.aes_key, stack.app_id,
                                env['Encrypt'])[1])
    assert len(prefixes) == 2


def test_compat_trusts_only_the_encrypted_copy(stack):
    u = stack.user(mode='compat')
    msgid = str(random.randint(10 ** 17, 10 ** 18))
    xml = u.text_xml('genuine content', msgid=msgid)
    q, body = u.prepare(xml, 'compat')
    tampered = body.replace(b'genuine content', b'TAMPERED', 1)
    tampered = tampered.replace(('<MsgId>%s</MsgId>' % msgid).encode(),
                                b'<MsgId>1234567</MsgId>', 1)
    assert tampered.count(b'TAMPERED') == 1 and b'1234567' in tampered
    t0 = now_ms()
    r = u.request('POST', q, tampered)
    assert_success(r)
    e = assert_stored(stack, wc.parse_fields(xml), r, t0, now_ms())
    assert json.loads(e['payload'])['Content'] == 'genuine content'
    assert stack.entries_for('msgid:%s:1234567' % u.openid) == []


def test_compat_subscribe_gets_welcome(stack):
    u = stack.user(mode='compat')
    xml = u.event_xml('subscribe', create_time=next(_ctime))
    r, t0, t1 = send(u, xml, 'compat')
    assert r.status_code == 200, r.text
    rep = u.decode_reply(r)
    # Compatible mode: WeChat accepts a plain or an encrypted reply.
    assert rep.kind in ('plain', 'encrypted'), r.text
    assert_welcome(stack, rep.fields, u.openid)
    assert_stored(stack, wc.parse_fields(xml), r, t0, t1)


# --- every inbound sample, in every mode ------------------------------------

INDEX = [e for e in load_index() if e['file'].startswith('inbound/')]


def _variant(entry, original_id):
    """The sample with our ToUserName and a unique MsgId / CreateTime.
    Returns (xml bytes, expected first-level fields)."""
    with open(os.path.join(VECTORS, entry['file']), 'rb') as f:
        raw = f.read()
    fields = dict(entry['fields'])
    ct = str(next(_ctime))
    raw, n = re.subn(rb'<ToUserName><!\[CDATA\[[^\]]*\]\]></ToUserName>',
                     b'<ToUserName><![CDATA[' + original_id.encode() +
                     b']]></ToUserName>', raw, count=1)
    assert n == 1
    fields['ToUserName'] = original_id
    raw, n = re.subn(rb'<CreateTime>[0-9]+</CreateTime>',
                     b'<CreateTime>' + ct.encode() + b'</CreateTime>', raw,
                     count=1)
    assert n == 1
    fields['CreateTime'] = ct
    if 'MsgId' in fields:
        mid = str(random.randint(10 ** 17, 2 ** 63 - 1))
        raw, n = re.subn(rb'<MsgId>[0-9]+</MsgId>',
                         b'<MsgId>' + mid.encode() + b'</MsgId>', raw,
                         count=1)
        assert n == 1
        fields['MsgId'] = mid
    return raw, fields


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('entry', INDEX,
                         ids=[os.path.basename(e['file'])[:-4]
                              for e in INDEX])
def test_inbound_sample_is_accepted(stack, entry, mode):
    raw, fields = _variant(entry, stack.original_id)
    assert wc.parse_fields(raw) == fields
    u = stack.user(openid=fields['FromUserName'], mode=mode)
    r, t0, t1 = send(u, raw, mode)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    if fields.get('Event') == 'subscribe':
        rep = u.decode_reply(r)
        if mode == 'plain':
            assert rep.kind == 'plain'
        elif mode == 'safe':
            assert rep.kind == 'encrypted'
        else:
            assert rep.kind in ('plain', 'encrypted')
        assert_welcome(stack, rep.fields, u.openid)
    else:
        assert_success(r)
    e = assert_stored(stack, fields, r, t0, t1)
    assert e['msgtype'] == entry['MsgType']
    assert e['event'] == (entry['Event'] or '')
