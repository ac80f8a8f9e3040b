"""Every refusal the REST API answers from lib/refusal.h's table, byte for
byte: the status and the whole body {"error":{"code","message"}} a client
(and the console, which shows the message) gets for a session action, a
session or history read, a send and a media read that is refused. One
small stack, agents with capacity 1, users routed by keyword to one agent
each; loopback only."""

import json

import pytest
import requests

from conftest import random_openid, run_stack
from test_routing import Agent, add_agent, admin


@pytest.fixture(scope='module')
def fstack():
    yield from run_stack('refusals', workers=2, extra={
        'routing': {'default_capacity': '1',
                    'keyword_groups': '[ra]:ga,[rf]:gf',
                    'queue_timeout': '0', 'first_reply_timeout': '0'},
        'presence': {'heartbeat_ttl': '3600'},
    })


@pytest.fixture(scope='module')
def people(fstack):
    """ra and rf online (rf serving one user: full), rb online with
    nobody, rc offline; u is ra's user."""
    ag = {}
    for acct, groups in (('ra', ['ga']), ('rb', ['gb']), ('rc', ['gc']),
                         ('rf', ['gf'])):
        ag[acct] = Agent(fstack, acct, add_agent(fstack, acct,
                                                 groups=groups))
    for acct in ('ra', 'rb', 'rf'):
        ag[acct].status('online')
    u, v = fstack.user(), fstack.user()
    assert u.send_text('[ra] hello').status_code == 200
    assert v.send_text('[rf] hello').status_code == 200
    assert u.openid in ag['ra'].sessions()
    assert v.openid in ag['rf'].sessions()
    return ag, u


def body(code, message):
    """What fcgi_error writes: compact JSON, non-ASCII escaped."""
    return json.dumps({'error': {'code': code, 'message': message}},
                      separators=(',', ':'), ensure_ascii=True).encode()


def refused(resp, status, code, message):
    assert (resp.status_code, resp.content) == \
        (status, body(code, message)), (resp.status_code, resp.text)
    assert resp.headers['Content-Type'].startswith('application/json')


def test_session_actions_refused(fstack, people):
    ag, u = people
    a, b = ag['ra'], ag['rb']
    nobody = random_openid()
    r = requests.post(fstack.base + '/api/v1/sessions/%s/close' % nobody,
                      headers=admin(fstack), timeout=10)
    refused(r, 404, 'no_session', 'this user has no session')
    refused(b.post('/api/v1/sessions/%s/close' % u.openid), 403,
            'not_yours', "the session is another agent's")
    path = '/api/v1/sessions/%s/transfer' % u.openid
    refused(a.post(path, {'to_agent': 'nobody'}), 404, 'unknown_agent',
            'no such agent')
    refused(a.post(path, {'to_group': 'nogroup'}), 404, 'unknown_group',
            'no such group')
    refused(a.post(path, {'to_agent': 'rc'}), 409, 'agent_offline',
            'the agent is offline')
    refused(a.post(path, {'to_agent': 'rf'}), 409, 'agent_full',
            'the agent is at capacity')
    refused(a.post(path, {'to_agent': 'ra'}), 409, 'same_agent',
            'the session is already with that agent')
    # nothing a refusal did moved the user
    assert u.openid in a.sessions()


def test_reads_refused(fstack, people):
    ag, u = people
    b = ag['rb']
    r = requests.get(fstack.base + '/api/v1/sessions/' + random_openid(),
                     headers=admin(fstack), timeout=10)
    refused(r, 404, 'no_session', 'this user has no session')
    refused(b.get('/api/v1/sessions/' + u.openid), 403, 'not_yours',
            "the session is another agent's")
    refused(b.get('/api/v1/users/%s/messages' % u.openid), 403,
            'not_yours', 'the user is not served by you')


def test_sends_refused(fstack, people):
    ag, u = people
    a, b = ag['ra'], ag['rb']
    text = {'msgtype': 'text', 'text': {'content': 'hi'}}
    refused(a.post('/api/v1/sessions/%s/messages' % u.openid,
                   {'msgtype': 'fax'}), 400, 'invalid_field',
            'field msgtype must be one of text, image, voice, video, '
            'music, news, mpnews, msgmenu, miniprogrampage')
    refused(a.post('/api/v1/sessions/%s/messages' % u.openid,
                   {'msgtype': 'text', 'text': {}}), 400, 'invalid_field',
            'field text.content must be a string of 1..2048 bytes')
    refused(b.post('/api/v1/sessions/%s/messages' % u.openid, text), 403,
            'not_yours', "the session is another agent's")
    refused(a.post('/api/v1/sessions/%s/messages' % random_openid(), text),
            404, 'no_session', 'this user has no session with you')
    # an admin may write to anyone, but not outside the user's window
    r = requests.post(fstack.base + '/api/v1/sessions/%s/messages'
                      % random_openid(), json=text, headers=admin(fstack),
                      timeout=10)
    refused(r, 409, 'outside_48h_window', 'the user has not written within '
            'the customer-service window (48 h after a message)')


def test_media_read_refused(fstack, people):
    ag, _u = people
    refused(ag['ra'].get('/api/v1/media/nosuchmedia123'), 404, 'no_media',
            'no such media, or not stored yet')
