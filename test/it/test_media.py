"""The media store, end to end: a user sends an image, voice or video
through the WeChat simulator; `wxkf jobs` fetches it with media/get into
[media] dir (inside the stack's directory) and records it; the agent the
user was routed to downloads it with its token, nobody else can, and no
path leaves the media dir."""

import base64
import http.client
import os
import secrets
import string
import sys

import pytest
import requests

from conftest import ACTIVE_STACKS, AES_KEY, APP_ID, ORIGINAL_ID, TOKEN, \
    Stack, assert_error, wait_until
from test_routing import Agent, add_agent

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'sim'))
from wechat_api_sim import SimServer  # noqa: E402
from audio import tone, tone_speex  # noqa: E402

SECRET = 'simSecret0123456789abcdef'
MEDIA_GET = '/cgi-bin/media/get'
P = 'wxkf:{%s}:' % APP_ID
ID_CHARS = string.ascii_letters + string.digits + '_-'


class MediaStack(Stack):
    """A stack whose [media] dir is inside its own directory."""

    def _write_conf(self):
        self.media_dir = os.path.join(self.dir, 'media')
        self.extra.setdefault('media', {})['dir'] = self.media_dir
        super()._write_conf()


@pytest.fixture(scope='module')
def sim():
    s = SimServer(appid=APP_ID, secret=SECRET).start()
    yield s
    s.stop()


@pytest.fixture(scope='module')
def mstack(sim):
    # run_stack's lifecycle, with MediaStack.
    st = MediaStack('media', workers=2, extra={
        'wechat': {'api_base': sim.base_url, 'app_secret': SECRET,
                   'api_retries': '0'},
        'routing': {'default_capacity': '50'},
    })
    ACTIVE_STACKS.append(st)
    hits = []
    try:
        st.start()
        sim.config(callback=st.url, token=TOKEN, aes_key=AES_KEY,
                   original_id=ORIGINAL_ID)
        yield st
    finally:
        ACTIVE_STACKS.remove(st)
        st.stop()
        hits = st.sanitizer_reports() if st.started else []
        if hits:
            st.failed = True
        st.cleanup()
    assert not hits, 'sanitizer reports:\n' + '\n'.join(hits[:20])


@pytest.fixture(scope='module')
def agents(mstack):
    out = []
    for acct in ('media_a', 'media_b'):
        a = Agent(mstack, acct, add_agent(mstack, acct))
        a.status('online')
        out.append(a)
    return out


def admin(stack):
    return {'Authorization': 'Bearer ' + stack.admin_token}


def new_id(prefix):
    return prefix + ''.join(secrets.choice(ID_CHARS) for _ in range(40))


def seed(sim, media_id, content_type, data):
    st, out = sim.call('POST', '/_sim/media', {
        'media_id': media_id, 'content_type': content_type,
        'data_b64': base64.b64encode(data).decode()})
    assert st == 200, out


def jpeg_like(n=5000):
    return b'\xff\xd8\xff\xe0\x00\x10JFIF\x00' + secrets.token_bytes(n) + \
        b'\xff\xd9'


def user_sends(sim, openid, **kw):
    out = sim.user_send(openid, mode='safe', **kw)
    assert out['status'] == 200, out
    return out


def owner_and_other(agents, openid):
    mine = [a for a in agents if openid in a.sessions()]
    assert len(mine) == 1, 'the user should have exactly one agent'
    return mine[0], [a for a in agents if a is not mine[0]][0]


def stored(stack, media_id):
    """The media hash once the file is on disk, else None."""
    h = stack.redis.hgetall(P + 'media:' + media_id)
    if not h.get('path'):
        return None
    path = os.path.join(stack.media_dir, h['path'])
    return h if os.path.isfile(path) else None


def wait_stored(stack, media_id):
    return wait_until(lambda: stored(stack, media_id), 20, 0.2,
                      'wxkf jobs to store %s' % media_id)


def media_events(stack, kind, media_id):
    return [f for _id, f in stack.entries()
            if f.get('type') == kind and f.get('media_id') == media_id]


def raw_get(stack, path, headers=None):
    """GET with the path sent exactly as given (no client normalising)."""
    c = http.client.HTTPConnection('127.0.0.1', stack.port, timeout=10)
    try:
        c.request('GET', path, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def test_image_is_stored_and_served_to_its_agent_only(sim, mstack, agents):
    media_id = new_id('img')
    blob = jpeg_like()
    seed(sim, media_id, 'image/jpeg', blob)
    openid = 'oMedia' + secrets.token_hex(10)
    user_sends(sim, openid, type='image', media_id=media_id)
    owner, other = owner_and_other(agents, openid)

    h = wait_stored(mstack, media_id)
    assert h['openid'] == openid and h['content_type'] == 'image/jpeg'
    assert h['path'].endswith('/%s.jpg' % media_id)
    assert int(h['size']) == len(blob)
    with open(os.path.join(mstack.media_dir, h['path']), 'rb') as f:
        assert f.read() == blob
    ev = media_events(mstack, 'media_stored', media_id)
    assert len(ev) == 1 and ev[0]['path'] == h['path'], ev

    r = owner.get('/api/v1/media/' + media_id)
    assert r.status_code == 200, r.text[:300]
    assert r.content == blob
    assert r.headers['Content-Type'] == 'image/jpeg'
    assert r.headers['Content-Length'] == str(len(blob))
    assert r.headers['X-Content-Type-Options'] == 'nosniff'
    assert r.headers['Cache-Control'].startswith('private')
    assert r.headers.get('X-Request-Id')
    # the agent's feed says it is there
    feed = owner.get('/api/v1/me/events').json()['events']
    assert any(e['type'] == 'media_stored' and e['media_id'] == media_id
               for e in feed)

    assert_error(other.get('/api/v1/media/' + media_id), 403, 'not_yours')
    r = requests.get(mstack.base + '/api/v1/media/' + media_id,
                     headers=admin(mstack), timeout=10)
    assert r.status_code == 200 and r.content == blob
    r = requests.get(mstack.base + '/api/v1/media/' + media_id, timeout=10)
    assert_error(r, 401, 'unauthorized')
    r = requests.get(mstack.base + '/api/v1/media/' + media_id,
                     headers={'Authorization': 'Bearer wxa_' + '0' * 64},
                     timeout=10)
    assert_error(r, 401, 'unauthorized')
    assert_error(owner.get('/api/v1/media/' + new_id('unknown')), 404,
                 'no_media')


def test_no_path_leaves_the_media_dir(sim, mstack, agents):
    hdr = dict(agents[0].h)
    for path in ('/api/v1/media/..%2F..%2Fetc%2Fpasswd',
                 '/api/v1/media/%2e%2e%2f%2e%2e%2fetc%2fpasswd',
                 '/api/v1/media/../../etc/passwd',
                 '/api/v1/media/..',
                 '/api/v1/media/a.jpg',
                 '/api/v1/media/' + 'x' * 65,
                 '/api/v1/media/%00'):
        st, body = raw_get(mstack, path, hdr)
        assert st in (400, 404), (path, st, body[:200])
        assert b'root:' not in body, path
    # even a hash pointing outside is refused
    mstack.redis.hset(P + 'media:planted', mapping={
        'path': '../../../../etc/passwd', 'openid': 'oX'})
    r = requests.get(mstack.base + '/api/v1/media/planted',
                     headers=admin(mstack), timeout=10)
    assert_error(r, 404, 'no_media')
    mstack.redis.delete(P + 'media:planted')


def test_voice_and_video_with_its_thumb(sim, mstack, agents):
    voice_id, video_id, thumb_id = new_id('v'), new_id('mv'), new_id('th')
    amr = b'#!AMR\n' + secrets.token_bytes(300)
    mp4 = b'\x00\x00\x00\x18ftypmp42' + secrets.token_bytes(2000)
    thumb = jpeg_like(200)
    seed(sim, voice_id, 'audio/amr', amr)
    seed(sim, video_id, 'video/mp4', mp4)
    seed(sim, thumb_id, 'image/jpeg', thumb)
    openid = 'oMedia' + secrets.token_hex(10)
    user_sends(sim, openid, type='voice', media_id=voice_id)
    user_sends(sim, openid, type='video', media_id=video_id,
               thumb_media_id=thumb_id)
    owner, _ = owner_and_other(agents, openid)
    for mid, data, ctype in ((voice_id, amr, 'audio/amr'),
                             (video_id, mp4, 'video/mp4'),
                             (thumb_id, thumb, 'image/jpeg')):
        h = wait_stored(mstack, mid)
        assert h['content_type'] == ctype
        r = owner.get('/api/v1/media/' + mid)
        assert r.status_code == 200 and r.content == data, mid
        assert r.headers['Content-Type'] == ctype
    # random frames are no AMR the decoder takes: no playable copy, and
    # nothing else has one
    for mid in (voice_id, video_id):
        assert_error(owner.get('/api/v1/media/' + mid + '?format=wav'), 404,
                     'no_playable')


def test_voice_is_served_playable_as_wav(sim, mstack, agents):
    """A real AMR-NB voice (2 s, made with opencore-amrnb's encoder): wxkf
    jobs keeps the original and writes a WAV the browser plays."""
    voice_id = new_id('play')
    amr = tone(2.0, 523)
    seed(sim, voice_id, 'audio/amr', amr)
    openid = 'oMedia' + secrets.token_hex(10)
    user_sends(sim, openid, type='voice', media_id=voice_id)
    owner, other = owner_and_other(agents, openid)
    h = wait_stored(mstack, voice_id)
    assert h['play_path'] == h['path'][:-len('amr')] + 'wav', h
    assert h['play_ms'] == '2000' and h['play_size'] == str(44 + 32000), h
    ev = media_events(mstack, 'media_stored', voice_id)
    assert ev and ev[0]['play_type'] == 'audio/wav', ev
    assert ev[0]['play_ms'] == '2000', ev

    r = owner.get('/api/v1/media/' + voice_id + '?format=wav')
    assert r.status_code == 200, r.text[:300]
    assert r.headers['Content-Type'] == 'audio/wav'
    assert r.headers['Content-Length'] == str(44 + 32000)
    assert r.content[:4] == b'RIFF' and r.content[8:16] == b'WAVEfmt '
    assert int.from_bytes(r.content[24:28], 'little') == 8000
    assert int.from_bytes(r.content[40:44], 'little') == 32000
    assert r.headers['Content-Disposition'].endswith('.wav"')
    r = owner.get('/api/v1/media/' + voice_id)
    assert r.status_code == 200 and r.content == amr, 'the original is kept'
    assert r.headers['Content-Type'] == 'audio/amr'

    assert_error(other.get('/api/v1/media/' + voice_id + '?format=wav'),
                 403, 'not_yours')
    r = requests.get(mstack.base + '/api/v1/media/' + voice_id +
                     '?format=wav', timeout=10)
    assert_error(r, 401, 'unauthorized')
    r = requests.get(mstack.base + '/api/v1/media/' + voice_id +
                     '?format=wav', headers=admin(mstack), timeout=10)
    assert r.status_code == 200 and r.headers['Content-Type'] == 'audio/wav'
    assert_error(owner.get('/api/v1/media/' + voice_id + '?format=mp3'),
                 400, 'bad_format')
    # the quota counts both files
    assert int(mstack.redis.get(P + 'media_bytes')) >= len(amr) + 32044


@pytest.mark.parametrize('framing', ['header_byte', 'bare'])
def test_speex_voice_is_served_playable_as_wav(sim, mstack, agents,
                                               framing):
    """A real Speex wideband voice (2 s, libspeex's encoder) as WeChat
    serves speex (audio/x-speex-with-header-byte; rate=16000), or as bare
    60-byte frames: wxkf jobs keeps the original and writes a 16 kHz WAV."""
    voice_id = new_id('spx')
    spx = tone_speex(2.0, 523, header_byte=framing == 'header_byte')
    seed(sim, voice_id, 'audio/x-speex-with-header-byte; rate=16000', spx)
    openid = 'oMedia' + secrets.token_hex(10)
    user_sends(sim, openid, type='voice', media_id=voice_id)
    owner, _ = owner_and_other(agents, openid)
    h = wait_stored(mstack, voice_id)
    assert h['path'].endswith('.speex'), h
    assert h['play_path'] == h['path'][:-len('speex')] + 'wav', h
    assert h['play_ms'] == '2000' and h['play_size'] == str(44 + 64000), h
    r = owner.get('/api/v1/media/' + voice_id + '?format=wav')
    assert r.status_code == 200, r.text[:300]
    assert r.headers['Content-Type'] == 'audio/wav'
    assert int.from_bytes(r.content[24:28], 'little') == 16000
    assert int.from_bytes(r.content[40:44], 'little') == 64000
    r = owner.get('/api/v1/media/' + voice_id)
    assert r.status_code == 200 and r.content == spx, 'the original is kept'
    assert r.headers['Content-Type'] == 'audio/speex'


def test_refused_media_is_recorded_as_failed(sim, mstack, agents):
    media_id = new_id('gone')
    seed(sim, media_id, 'image/jpeg', jpeg_like(100))
    openid = 'oMedia' + secrets.token_hex(10)
    sim.fault(path=MEDIA_GET, kind='errcode', errcode=40007, count=1)
    user_sends(sim, openid, type='image', media_id=media_id)
    owner, _ = owner_and_other(agents, openid)
    ev = wait_until(lambda: media_events(mstack, 'media_failed', media_id),
                    20, 0.2, 'the media_failed event')
    assert ev[0]['errcode'] == '40007' and ev[0]['reason'] == 'wechat'
    assert_error(owner.get('/api/v1/media/' + media_id), 404,
                 'media_failed')
    assert not media_events(mstack, 'media_stored', media_id)


def send_after_failures(sim, prefix, content_type, failures):
    """A user sends an image whose first `failures` fetches get a 502."""
    media_id = new_id(prefix)
    seed(sim, media_id, content_type, jpeg_like(800))
    sim.fault(path=MEDIA_GET, kind='http', status=502, count=failures)
    user_sends(sim, 'oMedia' + secrets.token_hex(10), type='image',
               media_id=media_id)
    return media_id


def media_group(stack):
    return [g for g in stack.redis.xinfo_groups(stack.stream)
            if g['name'] == 'media']


def test_transient_failure_is_retried_by_jobs(sim, mstack, agents):
    media_id = send_after_failures(sim, 'late', 'image/png', 1)
    h = wait_stored(mstack, media_id)
    assert h['attempts'] == '1'
    assert h['path'].endswith('.png')
    assert not media_events(mstack, 'media_failed', media_id)
    assert media_group(mstack), 'the consumer group exists'
    wait_until(lambda: mstack.redis.xpending(mstack.stream, 'media')
               ['pending'] == 0, 10, 0.2, 'nothing left pending')


def test_a_media_in_backoff_does_not_hold_the_stream(sim, mstack, agents):
    """The archiver trims below the first entry a group still needs: a
    media waiting for its retries waits as a job in P media_jobs, while
    its stream entry is acknowledged at once."""
    media_id = send_after_failures(sim, 'slow', 'image/jpeg', 2)

    def retrying():
        return mstack.redis.hget(P + 'media:' + media_id, 'attempts')
    wait_until(retrying, 10, 0.1, 'a first failed fetch')
    assert not stored(mstack, media_id)
    group = media_group(mstack)[0]
    assert group['pending'] == 0, group
    assert mstack.redis.zcard(P + 'media_jobs') >= 1
    msg = [i for i, f in mstack.entries() if f.get('type') == 'msg_in'
           and media_id in f.get('payload', '')][0]
    assert tuple(map(int, group['last-delivered-id'].split('-'))) >= \
        tuple(map(int, msg.split('-'))), (group, msg)
    h = wait_stored(mstack, media_id)
    assert h['attempts'] == '2'
    wait_until(lambda: mstack.redis.zcard(P + 'media_jobs') == 0, 10, 0.2,
               'the job done')


def metric_samples(stack):
    r = requests.get(stack.base + '/metrics', timeout=10)
    assert r.status_code == 200, r.text[:300]
    out = {}
    for line in r.text.splitlines():
        if line and not line.startswith('#'):
            name, value = line.rsplit(' ', 1)
            out[name] = float(value)
    return r.text, out


def test_media_store_metrics(sim, mstack, agents):
    media_id = new_id('met')
    blob = jpeg_like(3000)
    seed(sim, media_id, 'image/jpeg', blob)
    user_sends(sim, 'oMedia' + secrets.token_hex(10), type='image',
               media_id=media_id)
    wait_stored(mstack, media_id)
    wait_until(lambda: mstack.redis.zcard(P + 'media_jobs') == 0, 10, 0.2,
               'no job left')
    text, s = metric_samples(mstack)
    assert s['wxkf_media_bytes'] == int(mstack.redis.get(P + 'media_bytes'))
    assert s['wxkf_media_bytes'] >= len(blob)
    assert s['wxkf_media_files'] == mstack.redis.zcard(P + 'media_files')
    assert s['wxkf_media_files'] >= 1
    assert s['wxkf_media_jobs'] == 0
    assert s['wxkf_media_quota_bytes'] == 10240 * 1024 * 1024
    assert s['wxkf_media_quota_refused_total'] == 0
    assert '# TYPE wxkf_media_removed_total counter' in text
