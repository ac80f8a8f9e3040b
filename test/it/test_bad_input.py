"""Bad callbacks: each is rejected with the right status and error code,
stores nothing (stream and dedupe keys unchanged) and crashes no worker
(the `nothing_stored` fixture checks both after every test).

Crypto failures are crafted with the simulator's own encoder and signed
validly (signature and msg_signature), so the failure comes from the stage
under test."""

import os
import struct
import time

import pytest

from conftest import assert_error, wc

OTHER_KEY = 'sdpPMHDGV7f5IGNB17UrO9Wm5eTiSr5bRyIpwYkuM0K'


@pytest.fixture
def su(stack):
    """A user in safe mode."""
    return stack.user(mode='safe')


def post_encrypt(u, encrypt, xml=None, **kw):
    """A safe-mode push whose Encrypt is `encrypt`, validly signed."""
    return u.send_raw(xml or u.text_xml('crafted'), 'safe', encrypt=encrypt,
                      **kw)


def crafted(stack, padded):
    return wc.aes_cbc_encrypt_raw(stack.aes_key, padded)


def packed(stack, u, msg_len=None, appid=None, msg=None):
    msg = msg if msg is not None else u.text_xml('crafted').encode()
    return wc.pack_plaintext(os.urandom(16), msg,
                             stack.app_id if appid is None else appid,
                             msg_len=msg_len)


# --- signatures and timestamps -------------------------------------------------

def test_post_wrong_signature_is_403(stack, wx, nothing_stored):
    r = wx.send_raw(wx.text_xml('x'), 'plain',
                    query_update={'signature': '0' * 40})
    assert_error(r, 403, 'bad_signature')


def test_post_missing_signature_is_403(stack, wx, nothing_stored):
    r = wx.send_raw(wx.text_xml('x'), 'plain',
                    query_update={'signature': None})
    assert_error(r, 403, 'bad_signature')


def test_post_uppercase_signature_is_403(stack, wx, nothing_stored):
    q, body = wx.prepare(wx.text_xml('x'), 'plain')
    q['signature'] = q['signature'].upper()
    assert_error(wx.request('POST', q, body), 403, 'bad_signature')


def test_safe_wrong_signature_with_good_msg_signature_is_403(
        stack, su, nothing_stored):
    r = su.send_raw(su.text_xml('x'), 'safe',
                    query_update={'signature': 'f' * 40})
    assert_error(r, 403, 'bad_signature')


def test_safe_wrong_msg_signature_is_403(stack, su, nothing_stored):
    r = su.send_raw(su.text_xml('x'), 'safe',
                    query_update={'msg_signature': '0' * 40})
    assert_error(r, 403, 'bad_signature')


def test_safe_msg_signature_of_other_ciphertext_is_403(stack, su,
                                                      nothing_stored):
    q, body = su.prepare(su.text_xml('x'), 'safe')
    other = wc.encrypt(stack.aes_key, stack.app_id, b'<xml></xml>')
    q['msg_signature'] = wc.msg_sign(stack.token, q['timestamp'], q['nonce'],
                                     other)
    assert_error(su.request('POST', q, body), 403, 'bad_signature')


def test_safe_missing_msg_signature_is_403(stack, su, nothing_stored):
    r = su.send_raw(su.text_xml('x'), 'safe',
                    query_update={'msg_signature': None})
    assert_error(r, 403, 'bad_signature')


@pytest.mark.parametrize('mode', ['plain', 'safe'])
@pytest.mark.parametrize('skew', [-400, 400])
def test_post_stale_timestamp_is_403(stack, nothing_stored, mode, skew):
    u = stack.user(mode=mode)
    r = u.send_raw(u.text_xml('x'), mode, timestamp=int(time.time()) + skew)
    assert_error(r, 403, 'stale_timestamp')


# --- sizes ---------------------------------------------------------------------

def test_body_over_nginx_limit_is_413(stack, wx, nothing_stored):
    xml = wx.text_xml('x' * (70 * 1024))
    assert len(xml) > 64 * 1024
    r = wx.send_raw(xml, 'plain')
    assert r.status_code == 413, r.status_code


def test_body_over_worker_limit_is_413_json(stack, wx, nothing_stored):
    xml = wx.text_xml('y' * (40 * 1024))
    assert stack.max_body < len(xml) < 64 * 1024
    r = wx.send_raw(xml, 'plain')
    assert_error(r, 413, 'body_too_large')


def test_safe_body_over_worker_limit_is_413_json(stack, su, nothing_stored):
    xml = su.text_xml('z' * (26 * 1024))     # base64 grows it past 32 KiB
    q, body = su.prepare(xml, 'safe')
    assert stack.max_body < len(body) < 64 * 1024
    assert_error(su.request('POST', q, body), 413, 'body_too_large')


# --- XML -----------------------------------------------------------------------

@pytest.mark.parametrize('body', [
    '<xml><ToUserName><![CDATA[gh_x]]></ToUserName><MsgType>',
    '<xml><ToUserName>a</FromUserName></xml>',
    'hello, not xml',
    '<xml><Content><![CDATA[unterminated</Content></xml>',
], ids=['truncated', 'mismatched', 'not-xml', 'open-cdata'])
def test_malformed_xml_is_400(stack, wx, nothing_stored, body):
    r = wx.send_raw(body, 'plain')
    assert_error(r, 400, 'malformed_xml')


def _laughs(u, original_id):
    ents = ['<!ENTITY lol0 "lol">'] + [
        '<!ENTITY lol%d "%s">' % (i, ('&lol%d;' % (i - 1)) * 10)
        for i in range(1, 10)]
    return ('<?xml version="1.0"?><!DOCTYPE xml [%s]>'
            '<xml><ToUserName><![CDATA[%s]]></ToUserName>'
            '<FromUserName><![CDATA[%s]]></FromUserName>'
            '<CreateTime>%d</CreateTime><MsgType><![CDATA[text]]></MsgType>'
            '<Content>&lol9;</Content><MsgId>%d</MsgId></xml>'
            % (''.join(ents), original_id, u.openid, int(time.time()),
               int.from_bytes(os.urandom(7), 'big')))


def _xxe(u, original_id):
    return ('<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            '<xml><ToUserName><![CDATA[%s]]></ToUserName>'
            '<FromUserName><![CDATA[%s]]></FromUserName>'
            '<CreateTime>%d</CreateTime><MsgType><![CDATA[text]]></MsgType>'
            '<Content>&xxe;</Content><MsgId>%d</MsgId></xml>'
            % (original_id, u.openid, int(time.time()),
               int.from_bytes(os.urandom(7), 'big')))


def test_billion_laughs_is_refused(stack, wx, nothing_stored):
    r = wx.send_raw(_laughs(wx, stack.original_id), 'plain')
    assert_error(r, 400, 'dtd_refused')


def test_external_entity_is_refused(stack, wx, nothing_stored):
    r = wx.send_raw(_xxe(wx, stack.original_id), 'plain')
    assert_error(r, 400, 'dtd_refused')
    assert 'root:' not in r.text


def test_doctype_inside_encrypted_message_is_refused(stack, su,
                                                     nothing_stored):
    r = su.send_raw(_xxe(su, stack.original_id), 'safe')
    assert_error(r, 400, 'dtd_refused')


def test_wrong_to_user_name_is_400(stack, nothing_stored):
    u = stack.user()
    u.original_id = 'gh_000000000000'
    r = u.send_text('to another account')
    assert_error(r, 400, 'account_mismatch')


def test_wrong_to_user_name_inside_ciphertext_is_400(stack, nothing_stored):
    u = stack.user(mode='safe')
    u.original_id = 'gh_000000000000'
    xml = u.text_xml('to another account')
    # The outer (unencrypted) ToUserName is ours; the trusted copy is not.
    r = u.send_raw(xml, 'safe', to_user=stack.original_id)
    assert_error(r, 400, 'account_mismatch')


def test_aes_without_encrypt_element_is_400(stack, wx, nothing_stored):
    q, body = wx.prepare(wx.text_xml('no Encrypt here'), 'plain')
    q['encrypt_type'] = 'aes'
    q['msg_signature'] = wc.msg_sign(stack.token, q['timestamp'], q['nonce'],
                                     '')
    assert_error(wx.request('POST', q, body), 400, 'malformed_xml')


# --- safe-mode crypto stages ------------------------------------------------------

@pytest.mark.parametrize('which', ['other', 'suffix', 'prefix', 'empty'])
def test_wrong_appid_in_ciphertext_is_400(stack, su, nothing_stored, which):
    appid = {'other': 'wx0000000000000000', 'suffix': stack.app_id + 'x',
             'prefix': stack.app_id[:-1], 'empty': ''}[which]
    assert appid != stack.app_id
    enc = wc.encrypt(stack.aes_key, appid, su.text_xml('x').encode())
    assert_error(post_encrypt(su, enc), 400, 'appid_mismatch')


def _bad_pad(data, kind):
    k = 32 - len(data) % 32
    if kind == 'zero':
        return data + b'\0' * k
    if kind == 'over32':
        return data + b'\x21' * k
    if kind == 'ff':
        return data + b'\xff' * k
    # inconsistent: last byte k, the others not k
    if k < 2:
        data += b' '
        k = 32 - len(data) % 32
    return data + b'A' * (k - 1) + bytes([k])


@pytest.mark.parametrize('kind', ['zero', 'over32', 'ff', 'inconsistent'])
def test_bad_padding_is_400(stack, su, nothing_stored, kind):
    data = packed(stack, su)
    enc = crafted(stack, _bad_pad(data, kind))
    assert_error(post_encrypt(su, enc), 400, 'bad_padding')


@pytest.mark.parametrize('delta', [1000, 'huge', 'signbit', 'short'])
def test_length_past_the_end_is_400(stack, su, nothing_stored, delta):
    if delta == 'short':
        data = os.urandom(16) + b'\0\0'        # no room for the length
    else:
        msg = su.text_xml('x').encode()
        n = {1000: len(msg) + 1000, 'huge': 0xFFFFFFF0,
             'signbit': 0x80000001}[delta]
        data = packed(stack, su, msg_len=n, msg=msg)
        assert struct.unpack('>I', data[16:20])[0] == n
    enc = crafted(stack, wc.pkcs7_pad(data))
    assert_error(post_encrypt(su, enc), 400, 'bad_length')


@pytest.mark.parametrize('how', ['badchar', 'truncated', 'inner-pad'])
def test_invalid_base64_is_400(stack, su, nothing_stored, how):
    enc = wc.encrypt(stack.aes_key, stack.app_id, su.text_xml('x').encode())
    if how == 'badchar':
        enc = enc[:10] + '*' + enc[11:]
    elif how == 'truncated':
        enc = enc[:-3]
    else:
        enc = enc[:8] + '=' + enc[9:]
    assert_error(post_encrypt(su, enc), 400, 'bad_base64')


@pytest.mark.parametrize('nbytes', [16, 48, 'pkcs7-16'])
def test_ciphertext_not_multiple_of_32_is_400(stack, su, nothing_stored,
                                              nbytes):
    if nbytes == 'pkcs7-16':
        data = packed(stack, su)
        padded = wc.pkcs7_pad(data, 16)
        if len(padded) % 32 == 0:
            padded = wc.pkcs7_pad(data + b'!' * 16, 16)
    else:
        padded = os.urandom(nbytes)
    assert len(padded) % 32 == 16
    enc = crafted(stack, padded)
    assert_error(post_encrypt(su, enc), 400, 'bad_ciphertext')


def test_ciphertext_under_other_key_is_400(stack, su, nothing_stored):
    enc = wc.encrypt(OTHER_KEY, stack.app_id, su.text_xml('x').encode())
    assert_error(post_encrypt(su, enc), 400,
                 codes=('bad_padding', 'bad_length', 'appid_mismatch'))


def test_empty_encrypt_is_400(stack, su, nothing_stored):
    r = post_encrypt(su, '')
    assert_error(r, 400, codes=('bad_ciphertext', 'malformed_xml',
                                'bad_base64'))


# --- methods and paths ----------------------------------------------------------

@pytest.mark.parametrize('method', ['PUT', 'DELETE', 'PATCH'])
def test_other_methods_are_405(stack, wx, nothing_stored, method):
    q, body = wx.prepare(wx.text_xml('x'), 'plain')
    r = wx.request(method, q, body)
    assert_error(r, 405, 'method_not_allowed')
    allow = {m.strip().upper()
             for m in r.headers.get('Allow', '').split(',')}
    assert {'GET', 'POST'} <= allow, r.headers.get('Allow')


@pytest.mark.parametrize('method', ['GET', 'POST'])
def test_unknown_api_path_is_404(stack, wx, nothing_stored, method):
    r = wx.request(method, {}, b'{}' if method == 'POST' else None,
                   url=stack.base + '/api/no-such-endpoint-%d' % os.getpid())
    assert_error(r, 404, 'not_found')
