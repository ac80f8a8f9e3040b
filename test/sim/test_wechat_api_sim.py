"""Self-tests of test/sim/wechat_api_sim.py (the WeChat API simulator and
its user side). Loopback only; every wait is bounded.

Run: /usr/bin/python3 -m pytest -q test/sim
"""

import base64
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PYLIB = os.path.join(HERE, '..', 'pylib')
for _p in (HERE, PYLIB):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import wechat_api_sim as ws  # noqa: E402
import wechat_crypto as wc  # noqa: E402
from wxkf_ports import free_port  # noqa: E402

APPID = 'wxSimTest0123456789'
SECRET = 'simtestsecret0123456789abcdef012'
TOKEN = 'simCallbackTok'
AES_KEY = 'Qm9vdHN0cmFwS2V5Rm9yV3hrZkl0U3VpdGVUZXN0czA'
ORIGINAL_ID = 'gh_simtest0001'
SEND = '/cgi-bin/message/custom/send'
H = 3600


@pytest.fixture(scope='module')
def sim():
    with ws.SimServer(appid=APPID, secret=SECRET, token=TOKEN,
                      aes_key=AES_KEY, original_id=ORIGINAL_ID) as s:
        yield s


@pytest.fixture(autouse=True)
def fresh(sim):
    sim.reset()
    yield


@pytest.fixture
def tok(sim):
    return sim.token()


def api(sim, method, path, body=None, token=None, query=None, raw=None,
        headers=None):
    q = dict(query or {})
    if token is not None:
        q['access_token'] = token
    return sim.call(method, path, body=body, query=q, raw=raw,
                    headers=headers)


def errcode(resp):
    status, body = resp
    assert status == 200, resp
    assert isinstance(body, dict), resp
    return body.get('errcode', 0)


def send(sim, token, touser, msgtype='text', payload=None, kf=None):
    body = {'touser': touser, 'msgtype': msgtype,
            msgtype: payload if payload is not None else {'content': 'hi'}}
    if kf is not None:
        body['customservice'] = {'kf_account': kf}
    return errcode(api(sim, 'POST', SEND, body, token))


def advance(sim, seconds):
    st, out = sim.call('POST', '/_sim/clock', {'advance': seconds})
    assert st == 200
    return out


def classic(sim, appid=APPID, secret=SECRET, grant='client_credential'):
    return sim.call('GET', '/cgi-bin/token', query={
        'grant_type': grant, 'appid': appid, 'secret': secret})


def stable(sim, force=False, secret=SECRET):
    return sim.call('POST', '/cgi-bin/stable_token', {
        'grant_type': 'client_credential', 'appid': APPID,
        'secret': secret, 'force_refresh': force})


def probe(sim, token):
    """errcode of a harmless authenticated call."""
    return errcode(api(sim, 'GET', '/cgi-bin/customservice/getkflist',
                       token=token))


def multipart(data, filename='a.jpg', ctype='image/jpeg', field='media'):
    b = 'simB' + secrets.token_hex(8)
    head = ('--%s\r\nContent-Disposition: form-data; name="%s"; '
            'filename="%s"\r\nContent-Type: %s\r\n\r\n'
            % (b, field, filename, ctype)).encode()
    return head + data + ('\r\n--%s--\r\n' % b).encode(), \
        'multipart/form-data; boundary=%s' % b


# --- access tokens -----------------------------------------------------------

def test_token_credentials(sim):
    st, body = classic(sim, appid='wxWrong')
    assert st == 200 and body['errcode'] == 40013
    st, body = classic(sim, secret='nope')
    assert body['errcode'] == 40001
    assert body['errmsg'].startswith('invalid credential')
    assert 'rid:' in body['errmsg']
    assert classic(sim, grant='password')[1]['errcode'] == 40002
    assert classic(sim, appid='')[1]['errcode'] == 41002
    assert classic(sim, secret='')[1]['errcode'] == 41004
    st, body = classic(sim)
    assert set(body) == {'access_token', 'expires_in'}
    assert body['expires_in'] == 7200
    assert len(body['access_token']) >= 100


def test_token_missing_unknown_and_wrong_method(sim, tok):
    assert probe(sim, None) == 41001
    assert probe(sim, 'x' * 120) == 40014
    assert probe(sim, tok) == 0
    # A GET where POST is required and the reverse.
    assert errcode(api(sim, 'GET', SEND, token=tok)) == 43002
    assert errcode(api(sim, 'POST', '/cgi-bin/customservice/getkflist',
                       {}, tok)) == 43001
    assert errcode(sim.call('GET', '/cgi-bin/stable_token')) == 43002
    st, body = api(sim, 'GET', '/cgi-bin/no/such/api', token=tok)
    assert st == 404 and body['errcode'] == -1


def test_classic_token_overlap(sim):
    t1 = classic(sim)[1]['access_token']
    t2 = classic(sim)[1]['access_token']
    assert t1 != t2
    assert probe(sim, t1) == 0 and probe(sim, t2) == 0    # overlap
    advance(sim, 299)
    assert probe(sim, t1) == 0
    advance(sim, 2)
    assert probe(sim, t1) == 40001                       # superseded
    assert probe(sim, t2) == 0
    # Only the immediately previous token gets the overlap.
    t3 = classic(sim)[1]['access_token']
    t4 = classic(sim)[1]['access_token']
    assert probe(sim, t2) == 40001
    assert probe(sim, t3) == 0 and probe(sim, t4) == 0


def test_token_expiry_and_config(sim):
    sim.config(expires_in=60)
    body = classic(sim)[1]
    assert body['expires_in'] == 60
    advance(sim, 59)
    assert probe(sim, body['access_token']) == 0
    advance(sim, 2)
    assert probe(sim, body['access_token']) == 42001


def test_forced_invalidation(sim):
    t1 = sim.token()
    s1 = stable(sim)[1]['access_token']
    st, out = sim.call('POST', '/_sim/token', {'expire_all': True})
    assert st == 200 and out['changed'] == 2
    assert probe(sim, t1) == 42001 and probe(sim, s1) == 42001
    t2 = sim.token()
    assert probe(sim, t2) == 0
    s2 = stable(sim)[1]['access_token']
    assert s2 != s1 and probe(sim, s2) == 0
    sim.call('POST', '/_sim/token', {'revoke': t2})
    assert probe(sim, t2) == 40001 and probe(sim, s2) == 0
    sim.call('POST', '/_sim/token', {'revoke_all': True})
    assert probe(sim, s2) == 40001
    st, info = sim.call('GET', '/_sim/token')
    assert {t['state'] for t in info['tokens']} <= {40001, 42001}


def test_stable_token(sim):
    b1 = stable(sim)[1]
    b2 = stable(sim)[1]
    assert b1['access_token'] == b2['access_token']
    assert 0 < b2['expires_in'] <= 7200 and len(b1['access_token']) >= 100
    # Separate family: a classic fetch does not touch it.
    sim.token()
    sim.token()
    advance(sim, 400)
    assert probe(sim, b1['access_token']) == 0
    assert stable(sim)[1]['access_token'] == b1['access_token']
    # Rotation 5 minutes before expiry; the old one lives out its time.
    advance(sim, 7200 - 400 - 200)
    b3 = stable(sim)[1]
    assert b3['access_token'] != b1['access_token']
    assert b3['expires_in'] >= 300
    assert probe(sim, b1['access_token']) == 0
    advance(sim, 201)
    assert probe(sim, b1['access_token']) == 42001
    # force_refresh: new token, the old one dead at once.
    b4 = stable(sim, force=True)[1]
    assert b4['access_token'] != b3['access_token']
    assert probe(sim, b3['access_token']) == 40001
    assert probe(sim, b4['access_token']) == 0
    assert stable(sim, secret='bad')[1]['errcode'] == 40001
    st, body = sim.call('POST', '/cgi-bin/stable_token', raw=b'{bad json')
    assert body['errcode'] == 47001


def test_stable_force_daily_cap(sim):
    sim.config(stable_force_daily_cap=3)
    for _ in range(3):
        assert 'access_token' in stable(sim, force=True)[1]
    assert stable(sim, force=True)[1]['errcode'] == 45009
    assert 'access_token' in stable(sim)[1]         # normal mode still ok
    advance(sim, 86400)
    assert 'access_token' in stable(sim, force=True)[1]


def test_classic_daily_cap(sim):
    sim.config(token_daily_cap=3)
    for _ in range(3):
        assert 'access_token' in classic(sim)[1]
    assert classic(sim)[1]['errcode'] == 45009
    advance(sim, 86400)
    assert 'access_token' in classic(sim)[1]


# --- custom/send -------------------------------------------------------------

def test_send_ok_recorded(sim, tok):
    sim.inbound('oUserA')
    assert send(sim, tok, 'oUserA', 'text', {'content': '你好 <a href="x">'}) \
        == 0
    sent = sim.sent()
    assert len(sent) == 1
    rec = sent[0]
    assert rec['touser'] == 'oUserA' and rec['msgtype'] == 'text'
    assert rec['kf_account'] is None and rec['ts'] > 0
    assert rec['body']['text']['content'] == '你好 <a href="x">'
    assert rec['token'] == tok


def test_send_every_msgtype(sim, tok):
    sim.config(send_quota=100)
    sim.inbound('oUserB')
    good = {
        'text': {'content': 'x'},
        'image': {'media_id': 'M1'},
        'voice': {'media_id': 'M2'},
        'video': {'media_id': 'M3', 'thumb_media_id': 'T3', 'title': 't',
                  'description': 'd'},
        'music': {'title': 't', 'description': 'd', 'musicurl': 'http://m',
                  'hqmusicurl': 'http://h', 'thumb_media_id': 'T4'},
        'news': {'articles': [{'title': 't', 'description': 'd',
                               'url': 'http://u', 'picurl': 'http://p'}]},
        'mpnews': {'media_id': 'M5'},
        'mpnewsarticle': {'article_id': 'A1'},
        'msgmenu': {'head_content': 'h', 'list': [
            {'id': '101', 'content': 'yes'}, {'id': '102', 'content': 'no'}],
            'tail_content': 't'},
        'wxcard': {'card_id': 'C1'},
        'miniprogrampage': {'title': 't', 'appid': 'wxmini',
                            'pagepath': 'p/i', 'thumb_media_id': 'T5'},
    }
    for mt, payload in good.items():
        assert send(sim, tok, 'oUserB', mt, payload) == 0, mt
    assert [s['msgtype'] for s in sim.sent()] == list(good)
    st, rec = api(sim, 'POST', '/customservice/msgrecord/getmsglist', {
        'starttime': int(time.time()) - 60, 'endtime': int(time.time()) + 60,
        'msgid': 1, 'number': 100}, tok)
    texts = [r['text'] for r in rec['recordlist']]
    assert texts[0] == 'x' and texts[1] == '[image]'


@pytest.mark.parametrize('msgtype,payload,code', [
    ('text', {'content': ''}, 44004),
    ('text', {}, 44004),
    ('text', {'content': 'x' * 2049}, 45002),
    ('image', {}, 40007),
    ('voice', {'media_id': ''}, 40007),
    ('mpnews', {'media_id': 5}, 40007),
    ('video', {'media_id': 'M'}, 40007),
    ('music', {'thumb_media_id': 'T'}, 47001),
    ('news', {'articles': []}, 44003),
    ('news', {'articles': [{'title': 'a'}, {'title': 'b'}]}, 45008),
    ('msgmenu', {'list': []}, 47001),
    ('msgmenu', {'list': [{'id': '1'}]}, 47001),
    ('miniprogrampage', {'title': 't'}, 47001),
    ('wxcard', {}, 47001),
    ('file', {'media_id': 'M'}, 40008),
    ('text', 'not an object', 47001),
])
def test_send_payload_errors(sim, tok, msgtype, payload, code):
    sim.inbound('oUserC')
    assert send(sim, tok, 'oUserC', msgtype, payload) == code
    assert sim.sent() == []


def test_send_body_errors(sim, tok):
    sim.inbound('oUserD')
    assert errcode(api(sim, 'POST', SEND, token=tok, raw=b'')) == 44002
    assert errcode(api(sim, 'POST', SEND, token=tok, raw=b'{x')) == 47001
    assert errcode(api(sim, 'POST', SEND, token=tok, raw=b'[1]')) == 47001
    assert send(sim, tok, 'oNeverSeen') == 40003
    assert errcode(api(sim, 'POST', SEND, {'msgtype': 'text',
                                           'text': {'content': 'x'}},
                       tok)) == 40003
    assert errcode(api(sim, 'POST', SEND, {'touser': 'oUserD',
                                           'text': {'content': 'x'}},
                       tok)) == 40008


def test_send_kf_account(sim, tok):
    sim.inbound('oUserE')
    assert send(sim, tok, 'oUserE', kf='kf1@simwx') == 65401
    assert errcode(api(sim, 'POST', '/customservice/kfaccount/add', {
        'kf_account': 'kf1@simwx', 'nickname': 'Agent 1'}, tok)) == 0
    assert send(sim, tok, 'oUserE', kf='kf1@simwx') == 0
    assert send(sim, tok, 'oUserE', kf='') == 0          # empty = none
    assert [s['kf_account'] for s in sim.sent()] == ['kf1@simwx', None]


def test_send_48h_window(sim, tok):
    now = time.time()
    sim.inbound('oOld', ts=now - 49 * H)
    assert send(sim, tok, 'oOld') == 45015
    sim.inbound('oEdge', ts=now - 47 * H)
    assert send(sim, tok, 'oEdge') == 0
    advance(sim, 1 * H + 1)
    assert send(sim, tok, 'oEdge') == 45015
    sim.inbound('oEdge')                                 # a new message
    assert send(sim, tok, 'oEdge') == 0
    sim.config(window_s=10)
    advance(sim, 11)
    assert send(sim, tok, 'oEdge') == 45015
    # Unsubscribing closes the window; subscribing opens it again.
    sim.inbound('oUnsub')
    sim.inbound('oUnsub', event='unsubscribe')
    assert send(sim, tok, 'oUnsub') == 45015
    sim.inbound('oUnsub', event='subscribe')
    assert send(sim, tok, 'oUnsub') == 0
    assert len(sim.sent()) == 3


def test_send_window_quota(sim, tok):
    sim.inbound('oQuota')
    for i in range(5):
        assert send(sim, tok, 'oQuota') == 0, i
    assert send(sim, tok, 'oQuota') == 45047
    assert send(sim, tok, 'oQuota') == 45047
    sim.inbound('oQuota')                                # quota refreshed
    for i in range(5):
        assert send(sim, tok, 'oQuota') == 0, i
    assert send(sim, tok, 'oQuota') == 45047
    sim.config(send_quota=1)
    sim.inbound('oQuota')
    assert send(sim, tok, 'oQuota') == 0
    assert send(sim, tok, 'oQuota') == 45047
    assert len(sim.sent()) == 11
    st, calls = sim.call('GET', '/_sim/calls', query={'path': SEND})
    assert calls['count'] == 15 and calls['results'] == {'0': 11,
                                                         '45047': 4}


def test_send_daily_cap(sim, tok):
    sim.config(daily_send_cap=2, send_quota=10)
    sim.inbound('oCap')
    assert send(sim, tok, 'oCap') == 0
    assert send(sim, tok, 'oCap') == 0
    assert send(sim, tok, 'oCap') == 45009
    advance(sim, 86400)
    sim.inbound('oCap')
    assert send(sim, tok, 'oCap') == 42001               # a day later
    assert send(sim, sim.token(), 'oCap') == 0


def test_strict_media(sim, tok):
    sim.config(strict_media=True)
    sim.inbound('oMedia')
    assert send(sim, tok, 'oMedia', 'image', {'media_id': 'nope'}) == 40007
    st, out = sim.call('POST', '/_sim/media', {
        'media_id': 'seeded1', 'content_type': 'image/jpeg',
        'data_b64': base64.b64encode(b'\xff\xd8jpeg').decode()})
    assert st == 200
    assert send(sim, tok, 'oMedia', 'image', {'media_id': 'seeded1'}) == 0


def test_typing(sim, tok):
    T = '/cgi-bin/message/custom/typing'

    def typing(user, cmd):
        return errcode(api(sim, 'POST', T, {'touser': user, 'command': cmd},
                           tok))
    sim.inbound('oTyp')
    assert typing('oTyp', 'typing') == 45072
    assert typing('oTyp', 'Start') == 45072
    assert typing('oNobody', 'Typing') == 40003
    assert typing('oTyp', 'Typing') == 0
    assert typing('oTyp', 'Typing') == 45081             # still typing
    assert typing('oTyp', 'CancelTyping') == 0
    assert typing('oTyp', 'Typing') == 0
    assert send(sim, tok, 'oTyp') == 0                   # cancels typing
    assert typing('oTyp', 'Typing') == 0
    advance(sim, 31)
    assert typing('oTyp', 'Typing') == 45080
    sim.inbound('oTyp', ts=time.time() - 40)
    assert typing('oTyp', 'CancelTyping') == 45080


# --- users' profiles (user/info) ---------------------------------------------

def test_user_info_and_remark(sim, tok):
    INFO, REMARK = '/cgi-bin/user/info', '/cgi-bin/user/info/updateremark'

    def info(user, **q):
        return api(sim, 'GET', INFO, token=tok, query=dict(openid=user, **q))
    sim.inbound('oInfo')
    st, u = info('oInfo', lang='zh_CN')
    assert st == 200 and u['subscribe'] == 1 and u['openid'] == 'oInfo'
    assert u['remark'] == '' and isinstance(u['tagid_list'], list)
    assert 'nickname' not in u and 'headimgurl' not in u
    assert errcode(info('oNobody')) == 40003
    assert errcode(api(sim, 'GET', INFO, token=tok)) == 40003
    assert errcode(api(sim, 'POST', REMARK, {'openid': 'oInfo',
                                             'remark': '老客户'}, tok)) == 0
    assert info('oInfo')[1]['remark'] == '老客户'
    assert errcode(api(sim, 'POST', REMARK, {'openid': 'oNobody',
                                             'remark': 'x'}, tok)) == 40003
    assert errcode(api(sim, 'POST', REMARK, {'openid': 'oInfo',
                                             'remark': 'x' * 31}, tok)) \
        == 47001
    assert errcode(api(sim, 'GET', REMARK, token=tok)) == 43002
    sim.inbound('oInfo', event='unsubscribe')
    assert info('oInfo')[1] == {'subscribe': 0, 'openid': 'oInfo',
                                'unionid': u['unionid']}
    assert errcode(api(sim, 'GET', INFO, query={'openid': 'oInfo'})) \
        in (40001, 41001)


def test_tags_get_lists_the_accounts_tags_with_their_counts(sim, tok):
    TAGS = '/cgi-bin/tags/get'
    st, out = api(sim, 'GET', TAGS, token=tok)
    assert st == 200
    assert [t['id'] for t in out['tags']] == [2, 100, 101]
    assert all(t['count'] == 0 for t in out['tags'])
    sim.inbound('oTagged')                          # has tag 2
    st, out = sim.call('POST', '/_sim/users/oTagged2/tags',
                       {'tagid_list': [101, 2]})
    assert st == 200 and out['tagid_list'] == [101, 2]
    st, out = api(sim, 'GET', TAGS, token=tok)
    assert {t['id']: t['count'] for t in out['tags']} == \
        {2: 2, 100: 0, 101: 1}
    st, u = api(sim, 'GET', '/cgi-bin/user/info', token=tok,
                query={'openid': 'oTagged2'})
    assert u['tagid_list'] == [101, 2]
    st, out = sim.call('POST', '/_sim/tags',
                       {'tags': [{'id': 7, 'name': '新品试用'}]})
    assert st == 200
    st, out = api(sim, 'GET', TAGS, token=tok)
    assert out['tags'] == [{'id': 7, 'name': '新品试用', 'count': 0}]
    assert sim.call('POST', '/_sim/tags', {'tags': [{'id': 'x'}]})[0] == 400
    assert sim.call('POST', '/_sim/users/oTagged2/tags',
                    {'tagid_list': ['1']})[0] == 400
    assert errcode(api(sim, 'GET', TAGS)) in (40001, 41001)


# --- kf accounts and sessions ------------------------------------------------

def kfcall(sim, tok, op, body):
    return errcode(api(sim, 'POST', '/customservice/kfaccount/' + op, body,
                       tok))


def kflist(sim, tok):
    st, body = api(sim, 'GET', '/cgi-bin/customservice/getkflist',
                   token=tok)
    return {k['kf_account']: k for k in body['kf_list']}


def test_kfaccount(sim, tok):
    add = lambda acct, nick='n': kfcall(sim, tok, 'add', {  # noqa: E731
        'kf_account': acct, 'nickname': nick})
    assert add('a1@simwx', '客服一') == 0
    assert add('a1@simwx') == 65406
    assert add('toolongprefix@simwx') == 65404
    assert add('no_at_sign') == 65404
    assert add('bad-char@simwx') == 65404
    assert add('@simwx') == 65404
    assert add('a2@simwx', '') == 65403
    assert add('a2@simwx', 'x' * 17) == 65403
    assert add('a2@simwx', 'x' * 16) == 0
    k = kflist(sim, tok)
    assert set(k) == {'a1@simwx', 'a2@simwx'}
    assert k['a1@simwx']['kf_nick'] == '客服一'
    assert k['a1@simwx']['kf_id'] != k['a2@simwx']['kf_id']
    assert 'kf_headimgurl' in k['a1@simwx']
    assert kfcall(sim, tok, 'update', {'kf_account': 'a1@simwx',
                                       'nickname': 'Renamed'}) == 0
    assert kfcall(sim, tok, 'update', {'kf_account': 'zz@simwx',
                                       'nickname': 'x'}) == 65401
    assert kfcall(sim, tok, 'update', {'kf_account': 'a1@simwx',
                                       'nickname': ''}) == 65403
    assert kflist(sim, tok)['a1@simwx']['kf_nick'] == 'Renamed'
    # Delete: POST body, and the legacy GET form.
    assert kfcall(sim, tok, 'del', {'kf_account': 'a1@simwx'}) == 0
    assert kfcall(sim, tok, 'del', {'kf_account': 'a1@simwx'}) == 65401
    assert errcode(api(sim, 'GET', '/customservice/kfaccount/del',
                       token=tok, query={'kf_account': 'a2@simwx'})) == 0
    assert kflist(sim, tok) == {}
    # The account limit.
    sim.config(kf_max=2)
    assert add('b1@simwx') == 0 and add('b2@simwx') == 0
    assert add('b3@simwx') == 65405


def test_kf_invite_and_online(sim, tok):
    assert kfcall(sim, tok, 'add', {'kf_account': 'c1@simwx',
                                    'nickname': 'C1'}) == 0
    inv = lambda wx, acct='c1@simwx': kfcall(  # noqa: E731
        sim, tok, 'inviteworker', {'kf_account': acct, 'invite_wx': wx})
    assert inv('agentwx01', 'nobody@simwx') == 65401
    assert inv('1bad') == 65409
    assert inv('agentwx01') == 0
    assert inv('agentwx01') == 65408
    assert inv('agentwx02') == 65411
    k = kflist(sim, tok)['c1@simwx']
    assert k['invite_wx'] == 'agentwx01' and k['invite_status'] == 'waiting'
    assert k['invite_expire_time'] > time.time()
    st, out = sim.call('POST', '/_sim/kf_invite', {'kf_account': 'c1@simwx',
                                                   'action': 'accept'})
    assert st == 200 and out['kf_wx'] == 'agentwx01'
    assert inv('agentwx03') == 65412
    k = kflist(sim, tok)['c1@simwx']
    assert k['kf_wx'] == 'agentwx01' and 'invite_status' not in k
    assert kfcall(sim, tok, 'add', {'kf_account': 'c2@simwx',
                                    'nickname': 'C2'}) == 0
    assert inv('agentwx01', 'c2@simwx') == 65407
    # Online list.
    st, body = api(sim, 'GET', '/cgi-bin/customservice/getonlinekflist',
                   token=tok)
    assert body == {'kf_online_list': []}
    st, out = sim.call('POST', '/_sim/kf_online', {'kf_account': 'c1@simwx',
                                                   'status': 1})
    assert st == 200
    st, body = api(sim, 'GET', '/cgi-bin/customservice/getonlinekflist',
                   token=tok)
    (one,) = body['kf_online_list']
    assert one['kf_account'] == 'c1@simwx' and one['status'] == 1
    assert one['accepted_case'] == 0
    st, out = sim.call('POST', '/_sim/kf_online', {'kf_account': 'nope@x',
                                                   'status': 1})
    assert st == 404


def test_kf_headimg(sim, tok):
    kfcall(sim, tok, 'add', {'kf_account': 'h1@simwx', 'nickname': 'H'})
    body, ctype = multipart(b'\xff\xd8\xff' + b'j' * 100, 'head.jpg')
    st, out = api(sim, 'POST', '/customservice/kfaccount/uploadheadimg',
                  token=tok, query={'kf_account': 'h1@simwx'}, raw=body,
                  headers={'Content-Type': ctype})
    assert out['errcode'] == 0
    url = kflist(sim, tok)['h1@simwx']['kf_headimgurl']
    path = urllib.parse.urlsplit(url).path
    st, data = sim.call('GET', path)
    assert st == 200 and data == b'\xff\xd8\xff' + b'j' * 100


def test_kfsession(sim, tok):
    for a in ('s1@simwx', 's2@simwx'):
        kfcall(sim, tok, 'add', {'kf_account': a, 'nickname': a[:2]})
    sim.inbound('oSess')

    def sess(op, acct, openid='oSess'):
        return errcode(api(sim, 'POST', '/customservice/kfsession/' + op,
                           {'kf_account': acct, 'openid': openid}, tok))

    def get(path, **q):
        return api(sim, 'GET', '/customservice/kfsession/' + path,
                   token=tok, query=q)[1]

    assert sess('create', 'nobody@simwx') == 65401
    assert sess('create', 's1@simwx') == 65402           # not bound
    sim.call('POST', '/_sim/kf_invite', {})              # 404, ignored
    kfcall(sim, tok, 'inviteworker', {'kf_account': 's1@simwx',
                                      'invite_wx': 'agentwxs1'})
    sim.call('POST', '/_sim/kf_invite', {'kf_account': 's1@simwx'})
    assert sess('create', 's1@simwx') == 65415           # offline
    sim.call('POST', '/_sim/kf_online', {'kf_account': 's1@simwx',
                                         'status': 1})
    sim.call('POST', '/_sim/kf_online', {'kf_account': 's2@simwx',
                                         'status': 1})
    assert sess('create', 's1@simwx', 'oStranger') == 40003
    # Waiting queue, then a session takes the user out of it.
    st, q = sim.call('POST', '/_sim/waitcase', {'openid': 'oSess'})
    assert get('getwaitcase')['count'] == 1
    assert get('getwaitcase')['waitcaselist'][0]['openid'] == 'oSess'
    assert sess('create', 's1@simwx') == 0
    assert get('getwaitcase') == {'count': 0, 'waitcaselist': []}
    assert sess('create', 's1@simwx') == 0               # idempotent
    assert sess('create', 's2@simwx') == 65414
    s = get('getsession', openid='oSess')
    assert s['kf_account'] == 's1@simwx' and s['createtime'] > 0
    lst = get('getsessionlist', kf_account='s1@simwx')['sessionlist']
    assert [x['openid'] for x in lst] == ['oSess']
    assert get('getsessionlist', kf_account='s2@simwx')['sessionlist'] == []
    assert get('getsessionlist', kf_account='zz@simwx')['errcode'] == 65401
    st, body = api(sim, 'GET', '/cgi-bin/customservice/getonlinekflist',
                   token=tok)
    acc = {k['kf_account']: k['accepted_case']
           for k in body['kf_online_list']}
    assert acc == {'s1@simwx': 1, 's2@simwx': 0}
    assert sess('close', 's2@simwx') == 65413            # not theirs
    assert sess('close', 's1@simwx') == 0
    assert sess('close', 's1@simwx') == 65413
    assert get('getsession', openid='oSess') == {'createtime': 0,
                                                 'kf_account': ''}
    # every create / close is logged with its result, for the tests
    st, kf = sim.call('GET', '/_sim/kf')
    log = [(e['op'], e['kf_account'], e['openid'], e['errcode'])
           for e in kf['log']]
    assert log[-3:] == [('close', 's2@simwx', 'oSess', 65413),
                        ('close', 's1@simwx', 'oSess', 0),
                        ('close', 's1@simwx', 'oSess', 65413)]
    assert ('create', 's1@simwx', 'oStranger', 40003) in log
    # WeChat releases an idle session after 30 minutes.
    assert sess('create', 's2@simwx') == 0
    advance(sim, 1801)
    assert get('getsession', openid='oSess')['kf_account'] == ''
    # Deleting an agent ends its sessions.
    sim.inbound('oSess')
    assert sess('create', 's2@simwx') == 0
    kfcall(sim, tok, 'del', {'kf_account': 's2@simwx'})
    assert get('getsession', openid='oSess')['kf_account'] == ''


def test_msgrecord(sim, tok):
    sim.config(send_quota=50)
    sim.inbound('oRec')
    for i in range(5):
        assert send(sim, tok, 'oRec', 'text', {'content': 'm%d' % i}) == 0
    P = '/customservice/msgrecord/getmsglist'
    now = int(time.time())
    bad = [
        {'starttime': now - 86401, 'endtime': now, 'msgid': 1, 'number': 10},
        {'starttime': now, 'endtime': now - 1, 'msgid': 1, 'number': 10},
        {'starttime': now - 60, 'endtime': now, 'msgid': 1, 'number': 10001},
        {'starttime': now - 60, 'endtime': now, 'msgid': 1, 'number': 0},
        {'starttime': now - 60, 'endtime': now, 'msgid': 0, 'number': 10},
        {'starttime': 'x', 'endtime': now, 'msgid': 1, 'number': 10},
    ]
    for b in bad:
        assert errcode(api(sim, 'POST', P, b, tok)) == 65416, b
    win = {'starttime': now - 3600, 'endtime': now + 3600}
    st, r = api(sim, 'POST', P, dict(win, msgid=1, number=3), tok)
    assert r['number'] == 3
    assert [x['text'] for x in r['recordlist']] == ['m0', 'm1', 'm2']
    assert all(x['opercode'] == 2002 and x['openid'] == 'oRec'
               for x in r['recordlist'])
    st, r2 = api(sim, 'POST', P, dict(win, msgid=r['msgid'], number=3), tok)
    assert [x['text'] for x in r2['recordlist']] == ['m3', 'm4']
    assert r2['number'] == 2


# --- media -------------------------------------------------------------------

def test_media_round_trip(sim, tok):
    data = os.urandom(3000)
    body, ctype = multipart(data, 'pic.png', 'image/png')
    st, out = api(sim, 'POST', '/cgi-bin/media/upload', token=tok,
                  query={'type': 'image'}, raw=body,
                  headers={'Content-Type': ctype})
    assert st == 200 and out['type'] == 'image' and out['created_at'] > 0
    mid = out['media_id']
    st, got = api(sim, 'GET', '/cgi-bin/media/get', token=tok,
                  query={'media_id': mid})
    assert st == 200 and got == data
    conn = http.client.HTTPConnection('127.0.0.1', sim.port, timeout=5)
    conn.request('GET', '/cgi-bin/media/get?' + urllib.parse.urlencode(
        {'access_token': tok, 'media_id': mid}))
    r = conn.getresponse()
    assert r.getheader('Content-Type') == 'image/png'
    assert 'attachment' in r.getheader('Content-disposition')
    assert r.read() == data
    conn.close()
    st, out = api(sim, 'GET', '/cgi-bin/media/get', token=tok,
                  query={'media_id': 'unknown'})
    assert out['errcode'] == 40007


def test_media_errors(sim, tok):
    def up(mtype, data, name='a.jpg', ctype='image/jpeg', field='media'):
        body, ct = multipart(data, name, ctype, field)
        return errcode(api(sim, 'POST', '/cgi-bin/media/upload', token=tok,
                           query={'type': mtype}, raw=body,
                           headers={'Content-Type': ct}))
    assert up('file', b'x') == 40004
    assert up('image', b'x', field='other') == 41005
    assert up('image', b'x', name='a.exe') == 40005
    assert up('thumb', b'x' * (64 * 1024 + 1)) == 40006
    assert up('voice', b'x' * 10, 'v.amr', 'audio/amr') == 0
    body, ct = multipart(b'thumb-bytes')
    st, out = api(sim, 'POST', '/cgi-bin/media/upload', token=tok,
                  query={'type': 'thumb'}, raw=body,
                  headers={'Content-Type': ct})
    assert out['thumb_media_id'] == out['media_id']
    assert errcode(api(sim, 'POST', '/cgi-bin/media/upload', token=tok,
                       query={'type': 'image'}, raw=b'{}')) == 41005


def test_sim_media_seed(sim, tok):
    data = os.urandom(500)
    st, out = sim.call('POST', '/_sim/media', {
        'media_id': 'inbound-img-1', 'content_type': 'image/jpeg',
        'data_b64': base64.b64encode(data).decode()})
    assert st == 200 and out['media_id'] == 'inbound-img-1'
    st, got = api(sim, 'GET', '/cgi-bin/media/get', token=tok,
                  query={'media_id': 'inbound-img-1'})
    assert got == data
    st, out = sim.call('POST', '/_sim/media', {'data_b64': '@@@'})
    assert st == 400


def test_body_limits(sim, tok):
    sim.inbound('oBig')
    big = json.dumps({'touser': 'oBig', 'msgtype': 'text',
                      'text': {'content': 'x' * (65 * 1024)}}).encode()
    st, out = api(sim, 'POST', SEND, token=tok, raw=big)
    assert st == 413
    # Media may be larger (up to 10 MiB).
    body, ct = multipart(b'v' * (200 * 1024), 'v.mp4', 'video/mp4')
    st, out = api(sim, 'POST', '/cgi-bin/media/upload', token=tok,
                  query={'type': 'video'}, raw=body,
                  headers={'Content-Type': ct})
    assert st == 200 and out['type'] == 'video'


# --- faults ------------------------------------------------------------------

def test_fault_errcode_burst(sim, tok):
    sim.inbound('oF')
    f = sim.fault(path=SEND, kind='errcode', errcode=-1, count=2)
    assert f['id'] >= 1
    st, faults = sim.call('GET', '/_sim/faults')
    assert len(faults) == 1 and faults[0]['count'] == 2
    assert send(sim, tok, 'oF') == -1
    assert send(sim, tok, 'oF') == -1
    assert send(sim, tok, 'oF') == 0                     # burst over
    assert sim.call('GET', '/_sim/faults')[1] == []
    assert len(sim.sent()) == 1
    # `after` lets calls through first; other paths are untouched.
    sim.fault(path=SEND, kind='errcode', errcode=45009, after=1)
    assert probe(sim, tok) == 0
    assert send(sim, tok, 'oF') == 0
    assert send(sim, tok, 'oF') == 45009
    assert send(sim, tok, 'oF') == 0
    # Several queued faults apply in order.
    sim.fault(path=SEND, kind='errcode', errcode=-1)
    sim.fault(path=SEND, kind='errcode', errcode=40001)
    assert send(sim, tok, 'oF') == -1
    assert send(sim, tok, 'oF') == 40001
    st, calls = sim.call('GET', '/_sim/calls', query={'path': SEND})
    assert calls['results']['-1'] == 3 and calls['results']['40001'] == 1


def test_fault_http_and_token_endpoint(sim):
    sim.fault(path='/cgi-bin/token', kind='http', status=502)
    st, body = classic(sim)
    assert st == 502 and b'502' in body
    assert 'access_token' in classic(sim)[1]
    sim.fault(path='/cgi-bin/stable_token', kind='errcode', errcode=-1)
    assert stable(sim)[1]['errcode'] == -1
    assert 'access_token' in stable(sim)[1]
    sim.fault(kind='http', status=503)                   # any API path
    assert classic(sim)[0] == 503
    st, calls = sim.call('GET', '/_sim/calls')
    assert calls['paths']['/cgi-bin/token']['results'] == {
        'http502': 1, '0': 1, 'http503': 1}


def test_fault_drop(sim, tok):
    sim.inbound('oDrop')
    sim.fault(path=SEND, kind='drop')
    with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
        api(sim, 'POST', SEND, {'touser': 'oDrop', 'msgtype': 'text',
                                'text': {'content': 'x'}}, tok)
    assert sim.sent() == []                              # no effect
    sim.fault(path=SEND, kind='drop_after')              # effect, no answer
    with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
        api(sim, 'POST', SEND, {'touser': 'oDrop', 'msgtype': 'text',
                                'text': {'content': 'y'}}, tok)
    assert len(sim.sent()) == 1
    assert send(sim, tok, 'oDrop') == 0
    # A raw keep-alive connection sees EOF where the answer should be.
    sim.fault(path='/cgi-bin/token', kind='drop')
    s = socket.create_connection(('127.0.0.1', sim.port), timeout=5)
    s.sendall(b'GET /cgi-bin/token HTTP/1.1\r\nHost: x\r\n\r\n')
    assert s.recv(100) == b''
    s.close()


def test_fault_delay(sim, tok):
    sim.fault(path='/cgi-bin/customservice/getkflist', kind='delay',
              delay_ms=400)
    t0 = time.monotonic()
    assert probe(sim, tok) == 0                          # then handled
    assert time.monotonic() - t0 >= 0.38
    assert sim.call('GET', '/_sim/faults')[1] == []       # used up
    assert probe(sim, tok) == 0


def test_fault_validation(sim):
    for bad in ({'kind': 'explode'}, {'path': '/_sim/sent'},
                {'count': 0}, {'status': 42, 'kind': 'http'},
                {'after': 'x'}):
        st, out = sim.call('POST', '/_sim/fault', bad)
        assert st == 400 and 'error' in out, bad
    sim.fault(kind='errcode', count=5)
    st, out = sim.call('POST', '/_sim/faults/clear')
    assert out == {'cleared': 1}


# --- control side ------------------------------------------------------------

def test_calls_and_token_usage(sim):
    t = sim.token()
    sim.inbound('oCalls')
    send(sim, t, 'oCalls')
    send(sim, t, 'oCalls')
    probe(sim, t)
    calls = sim.calls()
    assert calls['paths']['/cgi-bin/token']['count'] == 1
    assert calls['paths'][SEND]['count'] == 2
    ts = calls['paths'][SEND]['ts']
    assert len(ts) == 2 and ts[0] <= ts[1]
    assert calls['tokens'][t]['count'] == 3
    assert calls['tokens'][t]['paths'][SEND] == 2
    assert [i['family'] for i in calls['issued']] == ['classic']


def test_reset(sim, tok):
    sim.config(send_quota=1, expires_in=10)
    sim.inbound('oReset')
    send(sim, tok, 'oReset')
    kfcall(sim, tok, 'add', {'kf_account': 'r1@simwx', 'nickname': 'R'})
    sim.fault(kind='errcode', count=3)
    advance(sim, 1000)
    assert sim.reset() == {'ok': True}
    assert sim.sent() == []
    assert sim.call('GET', '/_sim/faults')[1] == []
    assert sim.call('GET', '/_sim/users')[1] == {}
    assert sim.calls()['paths'] == {}
    assert probe(sim, tok) == 40014                      # tokens gone
    t2 = sim.token()
    assert kflist(sim, t2) == {}
    cfg = sim.call('GET', '/_sim/config')[1]
    assert cfg['send_quota'] == 5 and cfg['expires_in'] == 7200
    assert cfg['appid'] == APPID and cfg['token'] == TOKEN  # identity kept
    assert abs(sim.call('GET', '/_sim/clock')[1]['offset']) < 1e-9


def test_config_validation(sim):
    st, out = sim.call('POST', '/_sim/config', {'no_such_knob': 1})
    assert st == 400
    st, out = sim.call('POST', '/_sim/config', {'send_quota': -1})
    assert st == 400
    st, out = sim.call('POST', '/_sim/config', {'strict_media': 1})
    assert st == 400
    st, out = sim.call('POST', '/_sim/config', {'window_s': 60,
                                                'app_id': APPID})
    assert st == 200 and out['window_s'] == 60
    st, out = sim.call('GET', '/_sim/nothing')
    assert st == 404
    st, out = sim.call('POST', '/_sim/inbound', {'openid': 'bad id!'})
    assert st == 400
    st, out = sim.call('POST', '/_sim/inbound', raw=b'not json')
    assert st == 400


def test_concurrent_sends(sim, tok):
    sim.config(send_quota=1000)
    users = ['oConc%d' % i for i in range(8)]
    for u in users:
        sim.inbound(u)
    errors = []

    def worker(u):
        for _ in range(10):
            try:
                if send(sim, tok, u) != 0:
                    errors.append(u)
            except Exception as e:   # noqa: BLE001
                errors.append(repr(e))
    threads = [threading.Thread(target=worker, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    sent = sim.sent()
    assert len(sent) == 80 and len({s['id'] for s in sent}) == 80
    assert sim.calls()['tokens'][tok]['count'] == 80


def test_cli_sigterm():
    port = free_port()
    p = subprocess.Popen([sys.executable, os.path.join(HERE,
                                                        'wechat_api_sim.py'),
                          '--port', str(port), '--appid', 'wxCli',
                          '--secret', 'cliSecret'],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        ok = False
        while time.monotonic() < deadline and p.poll() is None:
            try:
                c = http.client.HTTPConnection('127.0.0.1', port, timeout=1)
                c.request('GET', '/cgi-bin/token?grant_type=client_credential'
                          '&appid=wxCli&secret=cliSecret')
                body = json.loads(c.getresponse().read())
                c.close()
                ok = 'access_token' in body
                break
            except OSError:
                time.sleep(0.05)
        assert ok
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 0
        err = p.stderr.read().decode()
        assert 'listening on http://127.0.0.1:%d' % port in err
        assert 'secret=***' in err and 'cliSecret' not in err.split(
            'listening')[1].split('\n', 1)[1]
        assert 'stopped' in err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)


# --- the user side: pushes to a tiny backend ---------------------------------

class Backend:
    """Plays our backend: records each push and answers as told."""

    def __init__(self):
        self.pushes = []
        self.answer = lambda push: (200, b'success')
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(n)
                q = dict(urllib.parse.parse_qsl(
                    urllib.parse.urlsplit(self.path).query))
                push = {'path': self.path, 'query': q, 'body': body,
                        'ctype': self.headers.get('Content-Type')}
                outer.pushes.append(push)
                status, out = outer.answer(push)
                self.send_response(status)
                self.send_header('Content-Type', 'application/xml')
                self.send_header('Content-Length', str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), H)
        self.httpd.daemon_threads = True
        self.url = 'http://127.0.0.1:%d/wechat' % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={'poll_interval': 0.1},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def backend(sim):
    b = Backend()
    sim.config(callback=b.url, callback_retries=0)
    yield b
    b.close()
    sim.config(callback='')


def _check_signed(push):
    q = push['query']
    assert q['signature'] == wc.sign(TOKEN, q['timestamp'], q['nonce'])
    assert abs(int(q['timestamp']) - time.time()) < 60
    return q


def test_user_push_plain(sim, backend, tok):
    def answer(push):
        f = wc.parse_fields(push['body'])
        return 200, wc.build_xml([
            ('ToUserName', f['FromUserName']), ('FromUserName', ORIGINAL_ID),
            ('CreateTime', int(time.time())), ('MsgType', 'text'),
            ('Content', 'echo: ' + f['Content'])]).encode()
    backend.answer = answer
    out = sim.user_send('oPushA', type='text', content='你好 ]]> <x>')
    assert out['status'] == 200 and out['attempts'] == 1
    assert out['reply']['kind'] == 'plain'
    assert out['reply']['fields']['Content'] == 'echo: 你好 ]]> <x>'
    (push,) = backend.pushes
    q = _check_signed(push)
    assert q['openid'] == 'oPushA' and 'encrypt_type' not in q
    f = wc.parse_fields(push['body'])
    assert f['ToUserName'] == ORIGINAL_ID and f['MsgType'] == 'text'
    assert f['MsgId'] == out['msg']['MsgId']
    # Our answer was 200: the user now has an open window.
    assert send(sim, tok, 'oPushA') == 0


def test_user_push_safe_mode(sim, backend):
    def answer(push):
        q = push['query']
        env = wc.parse_fields(push['body'])
        assert set(env) == {'ToUserName', 'Encrypt'}
        assert q['msg_signature'] == wc.msg_sign(TOKEN, q['timestamp'],
                                                 q['nonce'], env['Encrypt'])
        inner, _ = wc.decrypt(AES_KEY, APPID, env['Encrypt'])
        f = wc.parse_fields(inner)
        reply = wc.build_xml([
            ('ToUserName', f['FromUserName']), ('FromUserName', ORIGINAL_ID),
            ('CreateTime', int(time.time())), ('MsgType', 'text'),
            ('Content', 'got ' + f['MsgType'])])
        enc = wc.encrypt(AES_KEY, APPID, reply.encode())
        ts, nonce = str(int(time.time())), '12345'
        return 200, wc.build_xml([
            ('Encrypt', enc),
            ('MsgSignature', wc.msg_sign(TOKEN, ts, nonce, enc)),
            ('TimeStamp', ts), ('Nonce', nonce)]).encode()
    backend.answer = answer
    out = sim.user_send('oPushS', type='text', content='secret', mode='safe')
    assert out['status'] == 200
    assert out['reply']['kind'] == 'encrypted'
    assert out['reply']['fields']['Content'] == 'got text'
    (push,) = backend.pushes
    q = _check_signed(push)
    assert q['encrypt_type'] == 'aes'
    inner, _ = wc.decrypt(AES_KEY, APPID,
                          wc.parse_fields(push['body'])['Encrypt'])
    assert wc.parse_fields(inner)['Content'] == 'secret'
    # Compat mode: the plaintext and the Encrypt element together.
    backend.answer = lambda push: (200, b'success')
    out = sim.user_send('oPushS', type='event', event='CLICK',
                        event_key='MENU_1', mode='compat')
    assert out['reply']['kind'] == 'success'
    f = wc.parse_fields(backend.pushes[-1]['body'])
    assert f['Event'] == 'CLICK' and f['EventKey'] == 'MENU_1'
    assert 'Encrypt' in f and 'MsgId' not in f


def test_user_push_media_and_events(sim, backend, tok):
    out = sim.user_send('oPushM', type='image')
    f = wc.parse_fields(backend.pushes[-1]['body'])
    assert f['MsgType'] == 'image' and f['MediaId'] and f['PicUrl']
    st, data = api(sim, 'GET', '/cgi-bin/media/get', token=tok,
                   query={'media_id': f['MediaId']})
    assert st == 200 and data[:2] == b'\xff\xd8'         # a placeholder JPEG
    out = sim.user_send('oPushM', type='voice', media_id='myvoice1')
    assert wc.parse_fields(backend.pushes[-1]['body'])['MediaId'] == \
        'myvoice1'
    out = sim.user_send('oPushM', type='event', event='unsubscribe')
    assert out['status'] == 200
    assert send(sim, tok, 'oPushM') == 45015
    sim.user_send('oPushM', type='event', event='subscribe')
    assert send(sim, tok, 'oPushM') == 0
    st, out = sim.call('POST', '/_sim/users/oPushM/send', {'type': 'fax'})
    assert st == 400


def test_user_push_rejected_not_recorded(sim, backend, tok):
    backend.answer = lambda push: (403, b'{"error":{}}')
    out = sim.user_send('oPushR', type='text', content='x')
    assert out['status'] == 403 and out['reply']['kind'] == 'other'
    # a follower (user/info knows it) but no message recorded: no window
    assert send(sim, tok, 'oPushR') == 45015


def test_user_push_timeout_retries(sim, backend):
    calls = []

    def answer(push):
        calls.append(1)
        if len(calls) == 1:
            time.sleep(1.2)                  # past the deadline below
        return 200, b'success'
    backend.answer = answer
    out = sim.user_send('oPushT', type='text', content='slow', retries=1,
                        timeout_s=0.6, msgid='1234567890123456789')
    assert out['attempts'] == 2 and out['status'] == 200
    assert 'error' in out['attempt_log'][0]
    ids = [wc.parse_fields(p['body'])['MsgId'] for p in backend.pushes]
    assert ids == ['1234567890123456789'] * 2            # same message


def test_user_push_no_backend(sim):
    sim.config(callback='http://127.0.0.1:%d/wechat' % free_port(),
               callback_retries=1)
    out = sim.user_send('oPushN', type='text', content='x')
    assert out['status'] is None and out['attempts'] == 2
    st, out = sim.call('POST', '/_sim/config', {'callback': ''})
    st, out = sim.call('POST', '/_sim/users/oPushN/send',
                       {'type': 'text', 'content': 'x'})
    assert st == 409


def test_user_push_transfer_and_kf_session(sim, backend, tok):
    kfcall(sim, tok, 'add', {'kf_account': 't1@simwx', 'nickname': 'T'})
    sim.call('POST', '/_sim/kf_online', {'kf_account': 't1@simwx',
                                         'status': 1})

    def transfer(acct=None):
        fields = [('ToUserName', 'oPushK'), ('FromUserName', ORIGINAL_ID),
                  ('CreateTime', int(time.time())),
                  ('MsgType', 'transfer_customer_service')]
        xml = wc.build_xml(fields)
        if acct:
            xml = xml.replace('</xml>', '<TransInfo><KfAccount>%s'
                              '</KfAccount></TransInfo></xml>' % acct)
        return lambda push: (200, xml.encode())
    backend.answer = transfer()
    out = sim.user_send('oPushK', type='text', content='need a human')
    assert out['transfer'] == 'waiting'
    st, w = api(sim, 'GET', '/customservice/kfsession/getwaitcase', token=tok)
    assert w['count'] == 1 and w['waitcaselist'][0]['openid'] == 'oPushK'
    backend.answer = transfer('t1@simwx')
    out = sim.user_send('oPushK', type='text', content='again')
    assert out['transfer'] == 'session'
    st, s = api(sim, 'GET', '/customservice/kfsession/getsession', token=tok,
                query={'openid': 'oPushK'})
    assert s['kf_account'] == 't1@simwx'
    # In a WeChat-side session, messages go there, not to our URL.
    n = len(backend.pushes)
    out = sim.user_send('oPushK', type='text', content='to the agent')
    assert out['routed'] == 'kf_session' and out['status'] is None
    assert len(backend.pushes) == n
    out = sim.user_send('oPushK', type='event', event='CLICK',
                        event_key='K')
    assert out['status'] == 200 and len(backend.pushes) == n + 1
    st, pushes = sim.call('GET', '/_sim/pushes')
    assert [p['transfer'] for p in pushes][:2] == ['waiting', 'session']


def test_stable_force_interval(sim):
    sim.config(stable_force_interval_s=30)
    assert 'access_token' in stable(sim, force=True)[1]
    assert stable(sim, force=True)[1]['errcode'] == 45009
    advance(sim, 31)
    assert 'access_token' in stable(sim, force=True)[1]


def test_chunked_request_body(sim, tok):
    sim.inbound('oChunk')
    body = json.dumps({'touser': 'oChunk', 'msgtype': 'text',
                       'text': {'content': 'chunked'}}).encode()
    half = len(body) // 2
    chunks = b''.join(b'%x\r\n%s\r\n' % (len(c), c)
                      for c in (body[:half], body[half:])) + b'0\r\n\r\n'
    s = socket.create_connection(('127.0.0.1', sim.port), timeout=5)
    s.sendall(b'POST %s?access_token=%s HTTP/1.1\r\nHost: x\r\n'
              b'Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n'
              % (SEND.encode(), tok.encode()) + chunks)
    resp = b''
    for _ in range(100):
        data = s.recv(65536)
        if not data:
            break
        resp += data
    s.close()
    assert resp.startswith(b'HTTP/1.1 200')
    assert json.loads(resp.split(b'\r\n\r\n', 1)[1])['errcode'] == 0
    assert sim.sent()[0]['body']['text']['content'] == 'chunked'
