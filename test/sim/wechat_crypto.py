"""WeChat's side of the Official Account callback protocol, in plain Python.

An implementation independent of wxkf's C code, written from
docs/wechat-protocol.md sections 2, 3, 4, 5 and 9 only. It is used to drive
the real stack (test/it) and to check what the worker sends back.

    sign(token, timestamp, nonce)                -> URL signature (hex SHA-1)
    msg_sign(token, timestamp, nonce, encrypt)   -> safe-mode msg_signature
    aes_key(encoding_aes_key)                    -> 32-byte AES key
    encrypt(key43, appid, plaintext, random16)   -> base64 Encrypt text
    decrypt(key43, appid, b64)                   -> (plaintext, random16)
    parse_envelope(xml)                          -> dict of the 4 reply fields
    parse_fields(xml)                            -> first-level fields of <xml>
    build_xml(fields)                            -> inbound message XML

Lower-level pieces (pack_plaintext, pkcs7_pad, aes_cbc_encrypt_raw) let
tests craft deliberately broken ciphertexts: wrong appid, bad padding, a
length field past the end, and so on.

Only the standard library and Debian's python3-cryptography are used.
"""

import base64
import binascii
import hashlib
import os
import re
import struct
import xml.etree.ElementTree as ET

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32          # WeChat's PKCS#7 block size (not AES's 16)

_KEY_RE = re.compile(r'\A[A-Za-z0-9]{43}\Z')
_B64_RE = re.compile(r'\A[A-Za-z0-9+/]*={0,2}\Z')


class CryptoError(ValueError):
    """A rejected input. `stage` names the check that failed, using the
    `kind` names of test/vectors/negative.json: aes_key, base64,
    ciphertext_length, padding, length, appid."""

    def __init__(self, stage, message):
        super().__init__('%s: %s' % (stage, message))
        self.stage = stage


def _b(s):
    return s if isinstance(s, bytes) else str(s).encode('utf-8')


# --- signatures (sections 2, 5.3) -------------------------------------------

def _sha1_sorted(parts):
    # Byte order (memcmp), not numeric and not locale: sort the UTF-8 bytes.
    return hashlib.sha1(b''.join(sorted(_b(p) for p in parts))).hexdigest()


def sign(token, timestamp, nonce):
    """The `signature` query parameter: lower-case hex SHA-1 of the
    byte-sorted concatenation of token, timestamp and nonce."""
    return _sha1_sorted([token, timestamp, nonce])


def msg_sign(token, timestamp, nonce, encrypt):
    """The `msg_signature`: same as sign() with the Encrypt text added."""
    return _sha1_sorted([token, timestamp, nonce, encrypt])


# --- key derivation (section 5.4) -----------------------------------------

def aes_key(encoding_aes_key):
    """EncodingAESKey (43 chars) -> 32-byte AES-256 key. The 43rd
    character's two leftover bits are ignored (non-canonical base64 is
    normal for these keys)."""
    if not isinstance(encoding_aes_key, str) or \
            not _KEY_RE.match(encoding_aes_key):
        raise CryptoError('aes_key', 'EncodingAESKey must be 43 characters '
                          'of [A-Za-z0-9]')
    # The non-strict decoder does not look at the discarded bits.
    key = binascii.a2b_base64((encoding_aes_key + '=').encode('ascii'))
    if len(key) != 32:
        raise CryptoError('aes_key', 'key decodes to %d bytes' % len(key))
    return key


def _cipher(key):
    return Cipher(algorithms.AES(key), modes.CBC(key[:16]))


# --- plaintext layout and padding (sections 5.5, 5.6) ---------------------

def pack_plaintext(random16, msg, appid, msg_len=None):
    """random(16) || msg_len (u32 big-endian) || msg || appid, unpadded.
    `msg_len` overrides the length field (to craft bad lengths)."""
    random16 = _b(random16)
    msg = _b(msg)
    if msg_len is None:
        msg_len = len(msg)
    return random16 + struct.pack('>I', msg_len) + msg + _b(appid)


def pkcs7_pad(data, block=BLOCK):
    k = block - len(data) % block
    return data + bytes([k]) * k


def aes_cbc_encrypt_raw(encoding_aes_key, data):
    """AES-256-CBC without any padding (data must be a multiple of 16),
    base64 of the result. For crafting inputs; use encrypt() normally."""
    key = aes_key(encoding_aes_key)
    enc = _cipher(key).encryptor()
    ct = enc.update(data) + enc.finalize()
    return base64.b64encode(ct).decode('ascii')


def encrypt(encoding_aes_key, appid, plaintext, random16=None):
    """Encrypt a message the way WeChat (and our reply writer) does.
    Returns the base64 text of the <Encrypt> element."""
    if random16 is None:
        random16 = os.urandom(16)
    random16 = _b(random16)
    if len(random16) != 16:
        raise ValueError('random prefix must be 16 bytes')
    padded = pkcs7_pad(pack_plaintext(random16, plaintext, appid))
    return aes_cbc_encrypt_raw(encoding_aes_key, padded)


# --- decryption with strict checks (section 5.7) --------------------------

def _b64decode_strict(text):
    if isinstance(text, bytes):
        try:
            text = text.decode('ascii')
        except UnicodeDecodeError:
            raise CryptoError('base64', 'non-ASCII characters') from None
    if len(text) % 4 != 0 or not _B64_RE.match(text):
        raise CryptoError('base64', 'not standard padded base64')
    try:
        return binascii.a2b_base64(text.encode('ascii'), strict_mode=True)
    except TypeError:       # Python < 3.11: no strict_mode; regex checked it
        return binascii.a2b_base64(text.encode('ascii'))
    except binascii.Error as e:
        raise CryptoError('base64', str(e)) from None


def decrypt_raw(encoding_aes_key, b64):
    """Base64-decode and AES-decrypt without looking at the padding."""
    key = aes_key(encoding_aes_key)
    ct = _b64decode_strict(b64)
    if len(ct) == 0 or len(ct) % BLOCK != 0:
        raise CryptoError('ciphertext_length',
                          'ciphertext length %d is not a positive multiple '
                          'of %d' % (len(ct), BLOCK))
    dec = _cipher(key).decryptor()
    return dec.update(ct) + dec.finalize()


def decrypt(encoding_aes_key, appid, b64):
    """Decrypt an <Encrypt> text. Returns (message bytes, random16 bytes).
    Raises CryptoError (a ValueError) on any inconsistency: strict PKCS#7
    (every pad byte checked, pad 1..32), 64-bit length arithmetic, appid
    compared in full."""
    pt = decrypt_raw(encoding_aes_key, b64)
    k = pt[-1]
    if not 1 <= k <= BLOCK:
        raise CryptoError('padding', 'pad byte %d outside 1..%d' % (k, BLOCK))
    if pt[-k:] != bytes([k]) * k:
        raise CryptoError('padding', 'inconsistent pad bytes')
    body = pt[:-k]
    if len(body) < 20:
        raise CryptoError('length', 'only %d bytes before the padding'
                          % len(body))
    (msg_len,) = struct.unpack('>I', body[16:20])   # unsigned
    if 20 + msg_len > len(body):                     # Python ints: no wrap
        raise CryptoError('length', 'msg_len %d past the end (%d bytes)'
                          % (msg_len, len(body) - 20))
    got_appid = body[20 + msg_len:]
    if got_appid != _b(appid):
        raise CryptoError('appid', 'appid %r != %r' % (got_appid, _b(appid)))
    return body[20:20 + msg_len], body[:16]


# --- XML -------------------------------------------------------------------

def cdata(text):
    """Wrap text in CDATA, splitting every ']]>' across two sections."""
    return '<![CDATA[' + str(text).replace(']]>', ']]]]><![CDATA[>') + ']]>'


# Elements WeChat writes bare (numbers); everything else goes in CDATA.
BARE_FIELDS = frozenset(['CreateTime', 'MsgId', 'MsgID', 'MsgDataId', 'Idx',
                         'Location_X', 'Location_Y', 'Scale', 'Latitude',
                         'Longitude', 'Precision', 'TimeStamp'])


def build_xml(fields, bare=BARE_FIELDS):
    """Build '<xml>...</xml>' from a dict (or list of pairs) of first-level
    fields, in order. Names in `bare` holding digits (or ints) are written
    as bare text; every other value is CDATA. No whitespace, no newline."""
    items = fields.items() if hasattr(fields, 'items') else fields
    out = ['<xml>']
    for name, value in items:
        if value is None:
            continue
        if isinstance(value, int) or (
                name in bare and re.fullmatch(r'-?[0-9.]+', str(value))):
            inner = str(value)
        else:
            inner = cdata(value)
        out.append('<%s>%s</%s>' % (name, inner, name))
    out.append('</xml>')
    return ''.join(out)


def _parse_root(xml):
    data = _b(xml)
    if b'<!DOCTYPE' in data.upper() or b'<!ENTITY' in data.upper():
        raise ValueError('document type declarations are not accepted')
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise ValueError('malformed XML: %s' % e) from None
    if root.tag != 'xml':
        raise ValueError('root element is <%s>, not <xml>' % root.tag)
    return root


def parse_fields(xml):
    """First-level child name -> its text (CDATA sections concatenated,
    '' when empty). Nested elements are kept as their own text only.
    A repeated name keeps the first value."""
    fields = {}
    for child in _parse_root(xml):
        fields.setdefault(child.tag, child.text or '')
    return fields


ENVELOPE_FIELDS = ('Encrypt', 'MsgSignature', 'TimeStamp', 'Nonce')


def parse_envelope(xml):
    """Parse an encrypted reply <xml><Encrypt/><MsgSignature/><TimeStamp/>
    <Nonce/></xml>. Returns a dict of those four (stripped of nothing);
    ValueError if one is missing or empty."""
    fields = parse_fields(xml)
    env = {}
    for name in ENVELOPE_FIELDS:
        if not fields.get(name):
            raise ValueError('envelope lacks <%s>' % name)
        env[name] = fields[name]
    return env


def verify_and_decrypt_envelope(xml, token, encoding_aes_key, appid):
    """Check an encrypted reply the way WeChat would: MsgSignature over
    (token, TimeStamp, Nonce, Encrypt), then decrypt with our appid.
    Returns (plaintext bytes, envelope dict). ValueError on failure."""
    env = parse_envelope(xml)
    want = msg_sign(token, env['TimeStamp'], env['Nonce'], env['Encrypt'])
    if env['MsgSignature'] != want:
        raise ValueError('MsgSignature %s does not verify (want %s)'
                         % (env['MsgSignature'], want))
    plaintext, _ = decrypt(encoding_aes_key, appid, env['Encrypt'])
    return plaintext, env
