"""Attacks at the edge, each a test against the real stack: oversized
headers, a client that stalls in its headers, path traversal on the
console and the API, and Redis-protocol strings in stored fields. Nothing
is stored, no worker dies, nothing outside the console's folder is
served."""

import json
import socket
import time

import requests

from conftest import assert_error


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
