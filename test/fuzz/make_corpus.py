#!/usr/bin/python3
"""Regenerates the seed corpora in test/fuzz/corpus/<harness>/ from the
vectors (test/vectors/), the parser cases (test/data/) and the sample
configuration. Run from the repository root when an input format of a
harness changes:  /usr/bin/python3 test/fuzz/make_corpus.py
The formats are described at the top of each test/fuzz/fuzz_<name>.c."""
import json
import os
import shutil
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
V = os.path.join(ROOT, 'test', 'vectors')
OUT = os.path.join(ROOT, 'test', 'fuzz', 'corpus')
APPID = b'wx62dd79ea990faa89'


def rd(*p):
    with open(os.path.join(ROOT, *p), 'rb') as f:
        return f.read()


def write(harness, name, data):
    d = os.path.join(OUT, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


def inbound():
    d = os.path.join(V, 'inbound')
    return {n[:-4]: rd('test', 'vectors', 'inbound', n)
            for n in sorted(os.listdir(d)) if n.endswith('.xml')}


SAFE = json.loads(rd('test', 'vectors', 'safe_mode.json'))
NEG = json.loads(rd('test', 'vectors', 'negative.json'))
IN = inbound()
S_KEY = 'GnuI7ALyFFPzKoRDeoH4AjRVnTmwiTVawEMOHmFkHBD'


def frame(msg, appid=APPID, rnd=b'fuzzfuzzfuzzfuzz', length=None, pad=None):
    body = rnd + struct.pack('>I', len(msg) if length is None else length)
    body += msg + appid
    k = 32 - len(body) % 32 if pad is None else pad
    return body + bytes([k & 0xff]) * k


def xml():
    for n, b in IN.items():
        write('xml', 'in_' + n, b)
    for n in sorted(os.listdir(os.path.join(V, 'replies'))):
        if n.endswith('.xml'):
            write('xml', 'reply_' + n[:-4], rd('test', 'vectors', 'replies',
                                               n))
    for v in SAFE:
        if v.get('post_body_safe_mode'):
            write('xml', 'env_safe_' + v['id'],
                  v['post_body_safe_mode'].encode())
            write('xml', 'env_compat_' + v['id'],
                  v['post_body_compatible_mode'].encode())
            break
    for case in ('dtd_billion_laughs', 'dtd_xxe_file',
                 'dtd_parameter_entity', 'nested_scancodeinfo', 'cdata_split',
                 'entities_in_text', 'duplicate_fields_first_wins',
                 'msgid_spelling_MsgID', 'nesting_at_limit',
                 'encoding_decl_ignored', 'crlf_normalised',
                 'elements_one_over', 'nesting_one_over'):
        p = os.path.join(ROOT, 'test', 'data', 'xml', case, 'input.xml')
        if os.path.exists(p):
            write('xml', 'case_' + case, rd(p))


def crypto():
    # mode 0: Encrypt texts of the S-key (good and bad)
    for v in SAFE:
        if v['encoding_aes_key'] == S_KEY and v['id'] in (
                'S-in-text', 'S-pad01', 'S-pad32', 'S-b64plus'):
            write('crypto', 'enc_' + v['id'], b'\x00' + v['encrypt'].encode())
    for v in NEG:
        if v.get('encoding_aes_key') == S_KEY and v.get('encrypt') and \
                v['id'] in ('S-neg-len-huge', 'S-neg-pad-inconsistent',
                            'S-neg-appid-suffix', 'S-neg-base64-badchar',
                            'S-neg-pkcs7-block16'):
            write('crypto', 'enc_' + v['id'], b'\x00' + v['encrypt'].encode())
    # mode 1: frames (cap byte 0 = WX_XML_MAX)
    for v in SAFE:
        if v['id'] in ('S-pad07', 'S-pad32', 'S-in-event_kf_create_session'):
            write('crypto', 'frame_' + v['id'],
                  b'\x01\x00' + bytes.fromhex(v['padded_plaintext_hex']))
    write('crypto', 'frame_len_huge',
          b'\x01\x00' + frame(IN['text'], length=0xFFFFFFF0))
    write('crypto', 'frame_appid_suffix',
          b'\x01\x00' + frame(IN['text'], appid=APPID + b'x'))
    write('crypto', 'frame_cap_small', b'\x01\x04' + frame(IN['image']))
    # mode 2: random(16) || message
    for n in ('text', 'event_subscribe', 'location', 'link'):
        write('crypto', 'rt_' + n, b'\x02' + b'0123456789abcdef' + IN[n])
    write('crypto', 'rt_empty', b'\x02' + b'0123456789abcdef')


def callback():
    q = b'timestamp=1716200000&nonce=1086175621'
    # mode 2: sealed plaintext, every inbound type
    for n, b in IN.items():
        write('callback', 'sealed_' + n, b'\x02\x00' + q + b'\n' + b)
    write('callback', 'sealed_prevkey_text',
          b'\x42\x00' + q + b'\n' + IN['text'])
    write('callback', 'sealed_stale', b'\x02\x50' + q + b'\n' + IN['voice'])
    # mode 1: signed plaintext (no encrypt_type / raw)
    for n in ('text', 'event_click', 'event_subscribe'):
        write('callback', 'signed_' + n, b'\x01\x00' + q + b'\n' + IN[n])
    write('callback', 'signed_raw_text', b'\x09\x00' + q + b'\n' + IN['text'])
    # the same with [wechat] encoding = safe (flags & 128): refused
    write('callback', 'signed_raw_text_safe_refused',
          b'\x89\x00' + q + b'\n' + IN['text'])
    # mode 1: aes with the right msg_signature over the vectors' bodies
    for v in SAFE:
        if v.get('post_body_safe_mode'):
            qq = ('timestamp=%s&nonce=%s' % (v['query']['timestamp'],
                                             v['query']['nonce'])).encode()
            write('callback', 'aes_' + v['id'],
                  b'\x15\x00' + qq + b'\n' + v['post_body_safe_mode'].encode())
    # mode 3: URL verification
    write('callback', 'verify', b'\x03\x00' + q +
          b'&echostr=4375120948345356249\n')
    # mode 0: a vector's request exactly as WeChat sent it
    v = next(x for x in SAFE if x['id'] == 'S-in-text')
    qs = '&'.join('%s=%s' % kv for kv in v['query'].items()).encode()
    write('callback', 'raw_S-in-text',
          b'\x00\x00' + qs + b'\n' + v['post_body_safe_mode'].encode())


def query():
    for v in SAFE:
        if v.get('query'):
            qs = '&'.join('%s=%s' % kv for kv in v['query'].items())
            write('query', 'push_' + v['id'], qs.encode())
    with open(os.path.join(V, 'signature.tsv'), encoding='utf-8') as f:
        rows = [l.rstrip('\n').split('\t') for l in f][1:]
    for r in rows:
        qs = 'signature=%s&timestamp=%s&nonce=%s' % (r[5], r[2], r[3])
        if r[4] != '-':
            qs += '&echostr=' + r[4]
        write('query', 'get_' + r[0], qs.encode())
    write('query', 'plain_push', b'signature=19b9bc8ce6a7bbc8d2e5f98b0cb54f14'
          b'c17ec55d&timestamp=1716200000&nonce=1086175621&openid=oKx3Q6vW2m'
          b'Z8yT1pR4sN7uJ0bC5d')
    write('query', 'raw_type', b'signature=x&timestamp=1&nonce=2&'
          b'encrypt_type=raw')
    write('query', 'percent', b'echostr=a%2Bb%20c+d%E4%BD%A0&nonce=%41%42'
          b'&&=&flag&timestamp=0001716200000')
    write('query', 'admin', b'state=active&limit=50')
    write('query', 'history', b'limit=20&before=1795792958801-0&openid='
          b'oKx3Q6vW2mZ8yT1pR4sN7uJ0bC5d')


def jsons():
    bodies = {
        'agent_create': {'account': 'alice@shop', 'nick': 'Alice',
                         'weight': 3, 'capacity': 5,
                         'groups': ['sales', 'after_sales']},
        'agent_create_min': {'account': 'kf2001', 'nick': '小王'},
        'agent_patch': {'nick': 'Bob 🙂', 'groups': []},
        'agent_patch_weight': {'weight': 100, 'capacity': 0},
        'status': {'status': 'online'},
        'transfer_agent': {'to_agent': 'bob@shop'},
        'transfer_group': {'to_group': 'sales'},
        'msg_text': {'msgtype': 'text',
                     'text': {'content': '您好，请问有什么可以帮您？'}},
        'msg_image': {'msgtype': 'image', 'image': {'media_id': 'ekY9pVXA'}},
        'msg_voice': {'msgtype': 'voice', 'voice': {'media_id': 'MEDIA_ID'}},
        'msg_video': {'msgtype': 'video', 'video': {
            'media_id': 'MEDIA_ID', 'thumb_media_id': 'T',
            'title': 'TITLE', 'description': 'D'}},
        'msg_music': {'msgtype': 'music', 'music': {
            'title': 'T', 'musicurl': 'http://x/m.mp3',
            'hqmusicurl': 'http://x/hq.mp3', 'thumb_media_id': 'T'}},
        'msg_news': {'msgtype': 'news', 'news': {'articles': [{
            'title': 'Happy Day', 'url': 'http://x/', 'picurl': 'http://x/p'}]}},
        'msg_mpnews': {'msgtype': 'mpnews', 'mpnews': {'media_id': 'M'}},
        'msg_msgmenu': {'msgtype': 'msgmenu', 'msgmenu': {
            'head_content': '您对本次服务是否满意呢? ', 'list': [
                {'id': '101', 'content': '满意'},
                {'id': '102', 'content': '不满意'}],
            'tail_content': '欢迎再次光临'}},
        'msg_miniprogram': {'msgtype': 'miniprogrampage', 'miniprogrampage': {
            'title': 'T', 'appid': 'wx1', 'pagepath': 'p',
            'thumb_media_id': 'T'}},
    }
    for n, b in bodies.items():
        write('json', n, json.dumps(b, ensure_ascii=False).encode())
    write('json', 'dup_key', b'{"account":"a","account":"b"}')
    write('json', 'escapes', b'{"nick":"\\u00e9\\ud83d\\ude00\\t","account":'
          b'"a_b@c-d"}')
    write('json', 'empty', b'')


def config():
    write('config', 'sample', rd('docs', 'wxkf.conf.sample'))
    for n in ('comments_crlf.conf', 'duplicate_key.conf', 'bad_enum.conf',
              'out_of_range.conf', 'value_too_long.conf',
              'prev_key_without_current.conf', 'bad_section_header.conf'):
        p = os.path.join(ROOT, 'test', 'data', 'config', n)
        if os.path.exists(p):
            write('config', 'case_' + n[:-5], rd(p))
    write('config', 'full', (
        '[wechat]\napp_id = wx62dd79ea990faa89\ntoken = kfDemoToken2024\n'
        'encoding_aes_key = GnuI7ALyFFPzKoRDeoH4AjRVnTmwiTVawEMOHmFkHBD\n'
        'encoding_aes_key_prev = hH8uaXHPRkNIubnN1ijh2DhQ5AIFyjQJotezXqlz0VU\n'
        'original_id = gh_3f2a9c1d7e5b\nmode = wechat_kf\n'
        'timestamp_window = 0\n[redis]\nurl = redis://:pw@127.0.0.1:6380/2\n'
        '[postgres]\ndsn = host=/tmp dbname=wxkf password=x\n'
        '[routing]\npolicy = least_busy\n'
        'group_policies = sales:weighted,vip:least_busy\n'
        'menu_groups = V1001_SALES:sales,V1002_HELP:support\n'
        'keyword_groups = 订单:orders,refund:after_sales\n'
        '[texts]\nwelcome = 欢迎！\nqueued = 前面还有 {n} 位\n'
        '[api]\nadmin_token_sha256 = ' + '0123456789abcdef' * 4 + '\n'
        'stats_utc_offset = -720\n[push]\nurl = http://127.0.0.1:8080/pub/\n'
        '[archiver]\nenabled = 0\n').encode())
    write('config', 'unix_redis', b'[wechat]\napp_id = wxabc\ntoken = abc\n'
          b'[redis]\nurl = unix:///var/run/redis.sock?db=3\n')


def canned():
    """Canned-reply CSV imports: what the console exports (BOM, CRLF,
    quoting, the ' before a formula), the shapes docs/api.md shows, and
    the hostile ones test_canned.c refuses."""
    bom = b'\xef\xbb\xbf'
    write('canned', 'export', bom + (
        'folder,title,text,sort\r\n'
        '售后,退货,"您好，{nickname}：\r\n请把货寄回""仓库""",1\r\n'
        ",公式,'=1+1,0\r\n"
        "售前,\"逗号, 标题\",'@提及,3\r\n"
        "'',''撇号,'-1,1000000\r\n").encode())
    write('canned', 'lf_any_order', 'text,title\n\n我是{agent},问候\n'
          '欢迎来到{account},欢迎\n'.encode())
    write('canned', 'bad_rows', 'title,text\nok,fine\n,no title\n'
          'ok2,"never closed\n'.encode())
    write('canned', 'bad_header', b'name,text\nx,y\n')
    write('canned', 'stray_quote', b'title,text\na"b,c\r\nd,e\rf\n')
    write('canned', 'controls', b'folder,title,text,sort\n\x01,a\x7f,'
          b'\xc3\x28,-1\nx,y,z,99999999\n,t,"a\tb\r\nc",007\n')
    write('canned', 'many', b'title,text\n' +
          b''.join(b't%d,x\n' % i for i in range(40)))


if __name__ == '__main__':
    for h in ('xml', 'crypto', 'callback', 'query', 'json', 'config',
              'canned'):
        shutil.rmtree(os.path.join(OUT, h), ignore_errors=True)
    xml()
    crypto()
    callback()
    query()
    jsons()
    config()
    canned()
    for h in sorted(os.listdir(OUT)):
        print(h, len(os.listdir(os.path.join(OUT, h))))
