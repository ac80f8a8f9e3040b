"""Self-test of test/sim/wechat_crypto.py against test/vectors.

Run: /usr/bin/python3 -m pytest -q test/sim
"""

import csv
import json
import os
import sys
import xml.etree.ElementTree as ET

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
VEC = os.path.join(HERE, '..', 'vectors')
sys.path.insert(0, HERE)

import wechat_crypto as wc  # noqa: E402


def _tsv(name):
    with open(os.path.join(VEC, name), encoding='utf-8', newline='') as f:
        return list(csv.DictReader(f, delimiter='\t',
                                   quoting=csv.QUOTE_NONE))


def _json(name):
    with open(os.path.join(VEC, name), encoding='utf-8') as f:
        return json.load(f)


SIGS = _tsv('signature.tsv')
MSGSIGS = _tsv('msg_signature.tsv')
KEYS = _tsv('aes_keys.tsv')
SAFE = _json('safe_mode.json')
NEG = _json('negative.json')


def _ids(rows):
    return [r['id'] for r in rows]


def test_vector_files_are_not_empty():
    assert len(SIGS) >= 10 and len(MSGSIGS) >= 10
    assert len(KEYS) >= 4 and len(SAFE) >= 15 and len(NEG) >= 20


@pytest.mark.parametrize('row', SIGS, ids=_ids(SIGS))
def test_signature_row(row):
    assert wc.sign(row['token'], row['timestamp'], row['nonce']) == \
        row['signature']
    parts = sorted(s.encode() for s in
                   (row['token'], row['timestamp'], row['nonce']))
    assert b''.join(parts).decode() == row['sorted_concat']


@pytest.mark.parametrize('row', MSGSIGS, ids=_ids(MSGSIGS))
def test_msg_signature_row(row):
    assert wc.msg_sign(row['token'], row['timestamp'], row['nonce'],
                       row['encrypt']) == row['msg_signature']


@pytest.mark.parametrize('row', KEYS, ids=_ids(KEYS))
def test_aes_key_row(row):
    key = wc.aes_key(row['encoding_aes_key'])
    assert key.hex() == row['aes_key_hex']
    assert key[:16].hex() == row['iv_hex']


@pytest.mark.parametrize('v', SAFE, ids=_ids(SAFE))
def test_safe_mode_vector_decrypts(v):
    pt, rnd = wc.decrypt(v['encoding_aes_key'], v['appid'], v['encrypt'])
    assert pt == v['plaintext'].encode('utf-8')
    assert len(pt) == v['plaintext_len_bytes']
    assert rnd.hex() == v['random_hex']
    raw = wc.decrypt_raw(v['encoding_aes_key'], v['encrypt'])
    assert raw.hex() == v['padded_plaintext_hex']
    assert raw[-1] == v['pad_len'] and len(raw) == v['ciphertext_len']
    assert wc.msg_sign(v['token'], v['timestamp'], v['nonce'],
                       v['encrypt']) == v['msg_signature']


@pytest.mark.parametrize('v', SAFE, ids=_ids(SAFE))
def test_safe_mode_vector_encrypts_exactly(v):
    rnd = bytes.fromhex(v['random_hex'])
    enc = wc.encrypt(v['encoding_aes_key'], v['appid'],
                     v['plaintext'].encode('utf-8'), random16=rnd)
    assert enc == v['encrypt']
    sig = wc.msg_sign(v['token'], v['timestamp'], v['nonce'], enc)
    assert sig == v['msg_signature']
    if 'envelope' in v:
        env = wc.parse_envelope(v['envelope'])
        assert env == {'Encrypt': enc, 'MsgSignature': sig,
                       'TimeStamp': v['timestamp'], 'Nonce': v['nonce']}
        pt, _ = wc.verify_and_decrypt_envelope(
            v['envelope'], v['token'], v['encoding_aes_key'], v['appid'])
        assert pt == v['plaintext'].encode('utf-8')


INBOUND = [v for v in SAFE if 'query' in v]


@pytest.mark.parametrize('v', INBOUND, ids=_ids(INBOUND))
def test_inbound_push_vector(v):
    q = v['query']
    assert q['encrypt_type'] == 'aes'
    assert wc.sign(v['token'], q['timestamp'], q['nonce']) == q['signature']
    with open(os.path.join(VEC, v['expected_plaintext_file']), 'rb') as f:
        expected = f.read()
    for body in (v['post_body_safe_mode'], v['post_body_compatible_mode']):
        fields = wc.parse_fields(body)
        enc = fields['Encrypt']
        assert wc.msg_sign(v['token'], q['timestamp'], q['nonce'], enc) == \
            q['msg_signature']
        pt, _ = wc.decrypt(v['encoding_aes_key'], v['appid'], enc)
        assert pt == expected
    compat = wc.parse_fields(v['post_body_compatible_mode'])
    del compat['Encrypt']
    assert compat == wc.parse_fields(expected)


def _neg_ids():
    return [c['id'] for c in NEG]


@pytest.mark.parametrize('c', NEG, ids=_neg_ids())
def test_negative_case_rejected(c):
    kind = c['kind']
    assert c['expected'] == 'reject'
    if kind == 'url_signature':
        got = wc.sign(c['token'], c['timestamp'], c['nonce'])
        assert got == c['correct_signature']
        assert got != c['signature']
        return
    if kind == 'aes_key':
        with pytest.raises(ValueError) as ei:
            wc.aes_key(c['encoding_aes_key'])
        assert ei.value.stage == 'aes_key'
        return
    if kind == 'msg_signature':
        got = wc.msg_sign(c['token'], c['timestamp'], c['nonce'],
                          c['encrypt'])
        assert got != c['msg_signature']
        if 'correct_msg_signature' in c:
            assert got == c['correct_msg_signature']
        return
    # Crypto stages: the msg_signature is valid, the decoder must reject.
    assert wc.msg_sign(c['token'], c['timestamp'], c['nonce'],
                       c['encrypt']) == c['msg_signature']
    with pytest.raises(ValueError) as ei:
        wc.decrypt(c['encoding_aes_key'], c['appid'], c['encrypt'])
    want = c.get('strict_reference_result') or kind
    assert ei.value.stage == want, str(ei.value)


def test_all_negative_kinds_seen():
    kinds = {c['kind'] for c in NEG}
    assert kinds == {'url_signature', 'msg_signature', 'base64',
                     'ciphertext_length', 'padding', 'length', 'appid',
                     'aes_key'}


# --- crafted cases (used by the black-box suite) ---------------------------

KEY = 'hH8uaXHPRkNIubnN1ijh2DhQ5AIFyjQJotezXqlz0VU'
APPID = 'wx0123456789abcdef'


@pytest.mark.parametrize('n', [0, 1, 11, 12, 13, 31, 32, 33, 100])
def test_roundtrip_every_pad(n):
    msg = ('x' * n).encode()
    enc = wc.encrypt(KEY, APPID, msg)
    assert wc.decrypt(KEY, APPID, enc)[0] == msg


def _craft(padded):
    return wc.aes_cbc_encrypt_raw(KEY, padded)


def test_crafted_bad_padding_rejected():
    data = wc.pack_plaintext(b'r' * 16, b'<xml/>', APPID)
    k = 32 - len(data) % 32
    bad = data + bytes([k + 1 if k < 32 else 0]) * k
    with pytest.raises(ValueError) as ei:
        wc.decrypt(KEY, APPID, _craft(bad))
    assert ei.value.stage == 'padding'


def test_crafted_length_past_end_rejected():
    msg = b'<xml/>'
    data = wc.pack_plaintext(b'r' * 16, msg, APPID, msg_len=len(msg) + 1000)
    with pytest.raises(ValueError) as ei:
        wc.decrypt(KEY, APPID, _craft(wc.pkcs7_pad(data)))
    assert ei.value.stage == 'length'


def test_crafted_wrong_appid_rejected():
    enc = wc.encrypt(KEY, 'wx0000000000000000', b'<xml/>')
    with pytest.raises(ValueError) as ei:
        wc.decrypt(KEY, APPID, enc)
    assert ei.value.stage == 'appid'


def test_crafted_pkcs7_16_rejected():
    data = wc.pack_plaintext(b'r' * 16, b'<xml>abc</xml>', APPID)
    if len(wc.pkcs7_pad(data, 16)) % 32 == 0:
        data = wc.pack_plaintext(b'r' * 16, b'<xml>abcdefghijklmnop</xml>',
                                 APPID)
    padded = wc.pkcs7_pad(data, 16)
    assert len(padded) % 32 == 16
    with pytest.raises(ValueError) as ei:
        wc.decrypt(KEY, APPID, _craft(padded))
    assert ei.value.stage == 'ciphertext_length'


def test_cdata_split_roundtrip():
    text = '欢迎关注 <b>&]]> a]]>]]>b'
    xml = wc.build_xml([('Content', text), ('CreateTime', 12)])
    assert xml.count('<![CDATA[') == 4
    assert wc.parse_fields(xml) == {'Content': text, 'CreateTime': '12'}
    assert ET.fromstring(xml).find('Content').text == text


def test_replies_vector_cdata_split_parses():
    with open(os.path.join(VEC, 'replies', 'reply_text_cdata_split.xml'),
              'rb') as f:
        fields = wc.parse_fields(f.read())
    assert fields['Content'] == 'a]]>b & <c> 中文'


def test_envelope_missing_field_rejected():
    with pytest.raises(ValueError):
        wc.parse_envelope('<xml><Encrypt><![CDATA[x]]></Encrypt></xml>')


def test_parse_refuses_doctype():
    with pytest.raises(ValueError):
        wc.parse_fields('<!DOCTYPE xml [<!ENTITY a "b">]><xml>&a;</xml>')
