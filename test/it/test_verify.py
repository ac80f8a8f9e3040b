"""GET /wechat: server URL verification (protocol section 2)."""

import time

import pytest

from conftest import assert_error, wc


def test_valid_signature_echoes_echostr(stack, wx, nothing_stored):
    echostr = '4375120948345356249'
    r = wx.verify(echostr)
    assert r.status_code == 200, r.text
    assert r.content == echostr.encode()
    assert r.headers.get('Content-Type', '').startswith('text/plain')
    assert r.headers.get('X-Request-Id')


def test_echostr_with_letters_is_echoed_exactly(stack, wx):
    echostr = 'AbC-_.~xyz0123456789'
    r = wx.verify(echostr)
    assert r.status_code == 200 and r.text == echostr


def test_timestamp_inside_window_is_accepted(stack, wx):
    r = wx.verify('1234', timestamp=int(time.time()) - 200)
    assert r.status_code == 200 and r.text == '1234'


def test_wrong_signature_is_403(stack, wx, nothing_stored):
    q = wx.verify_query('5912403856213847')
    good = q['signature']
    q['signature'] = good[:-1] + ('0' if good[-1] != '0' else '1')
    r = wx.request('GET', q)
    assert_error(r, 403, 'bad_signature')
    assert '5912403856213847' not in r.text


def test_missing_signature_is_403(stack, wx, nothing_stored):
    q = wx.verify_query('5912403856213847')
    del q['signature']
    assert_error(wx.request('GET', q), 403, 'bad_signature')


def test_uppercase_signature_is_403(stack, wx, nothing_stored):
    q = wx.verify_query('5912403856213847')
    q['signature'] = q['signature'].upper()
    assert_error(wx.request('GET', q), 403, 'bad_signature')


def test_signature_with_other_token_is_403(stack, wx, nothing_stored):
    q = wx.verify_query('77')
    q['signature'] = wc.sign('SomeOtherToken', q['timestamp'], q['nonce'])
    assert_error(wx.request('GET', q), 403, 'bad_signature')


@pytest.mark.parametrize('skew', [-400, 400, -86400 * 365])
def test_stale_timestamp_is_403(stack, wx, nothing_stored, skew):
    r = wx.verify('99', timestamp=int(time.time()) + skew)
    assert_error(r, 403, 'stale_timestamp')


@pytest.mark.parametrize('ts', ['abc', '12ab', '', '-1'])
def test_non_numeric_timestamp_is_403(stack, wx, nothing_stored, ts):
    r = wx.verify('99', timestamp=ts)      # validly signed over ts
    assert_error(r, 403, codes=('bad_signature', 'stale_timestamp'))


def test_every_response_has_a_distinct_request_id(stack, wx):
    ids = {wx.verify('1').headers.get('X-Request-Id') for _ in range(3)}
    assert None not in ids and len(ids) == 3
