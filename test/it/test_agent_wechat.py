"""`wxkf agent add|update|remove|invite|wechat-sync` keep WeChat's
customer-service accounts (kfaccount) in step with our agents — here the
bundled simulator (test/sim/wechat_api_sim.py) in place of WeChat.

The stack is the session's shared one (its config has no app_secret); the
credentials come from the environment (WXKF_WECHAT_APP_SECRET and
WXKF_WECHAT_API_BASE override the file), so each call chooses whether
WeChat is "configured". Every account here starts with "taw"."""

import json
import os
import re
import subprocess
import sys

import psycopg2
import pytest

from conftest import APP_ID, wxkf_bin

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'sim'))
from wechat_api_sim import SimServer  # noqa: E402

SECRET = 'simSecretAgentWx0123456789'
DOMAIN = 'simshop'
TOKEN_RE = re.compile(r'^wxa_[0-9a-f]{64}$')
SANITIZER_MARKERS = ('Sanitizer', 'runtime error:')
NO_SECRET = ('wxkf agent: WeChat not updated: no [wechat] app_secret '
             'configured (agents exist in wxkf only)\n')
KF_ADD = '/customservice/kfaccount/add'
KF_UPDATE = '/customservice/kfaccount/update'
KF_DEL = '/customservice/kfaccount/del'
KF_INVITE = '/customservice/kfaccount/inviteworker'


@pytest.fixture(scope='module')
def sim():
    s = SimServer(appid=APP_ID, secret=SECRET).start()
    yield s
    s.stop()


@pytest.fixture(scope='module')
def db(stack):
    conn = psycopg2.connect(host='127.0.0.1', port=stack.pg_port,
                            dbname='wxkf', user='wxkf')
    conn.autocommit = True
    yield conn
    conn.close()


def wxkf(stack, sim, *args, secret=SECRET):
    """`wxkf agent ARGS -c CONF` with WeChat's credentials (none when
    secret is ''); never a sanitizer report."""
    env = dict(os.environ, WXKF_WECHAT_APP_SECRET=secret,
               WXKF_WECHAT_API_BASE=sim.base_url,
               WXKF_WECHAT_API_RETRIES='0')
    r = subprocess.run([wxkf_bin(), 'agent', *args, '-c', stack.conf],
                       capture_output=True, text=True, timeout=60, env=env)
    for m in SANITIZER_MARKERS:
        assert m not in r.stderr, r.stderr
    return r


def ok(stack, sim, *args, **kw):
    r = wxkf(stack, sim, *args, **kw)
    assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    return r


def add(stack, sim, account, nick, **kw):
    r = ok(stack, sim, 'add', '--account', account, '--nick', nick, **kw)
    out = json.loads(r.stdout)
    assert out['account'] == account and TOKEN_RE.match(out['token'])
    return r


def kf_list(sim):
    """WeChat's accounts as getkflist answers: {kf_account: entry}."""
    st, out = sim.call('GET', '/cgi-bin/customservice/getkflist',
                       query={'access_token': sim.token()})
    assert st == 200 and 'kf_list' in out, out
    return {k['kf_account']: k for k in out['kf_list']}


def kf_call(sim, path, body):
    st, out = sim.call('POST', path, body,
                       query={'access_token': sim.token()})
    assert st == 200 and out['errcode'] == 0, out
    return out


def api_calls(sim, path=None):
    """How many calls the simulator's API side got (token ones included),
    for one path or all."""
    paths = sim.calls()['paths']
    if path:
        return paths.get(path, {}).get('count', 0)
    return sum(p['count'] for p in paths.values())


def local_row(db, account):
    with db.cursor() as c:
        c.execute('SELECT nick FROM agents WHERE account = %s', (account,))
        rows = c.fetchall()
    return rows[0] if rows else None


# ------------------------------------------------------------ add / update

def test_add_creates_the_kf_account_with_the_nickname(stack, sim):
    acct = 'taw1@' + DOMAIN
    r = add(stack, sim, acct, '小王')
    assert r.stderr == ''
    assert kf_list(sim)[acct]['kf_nick'] == '小王'


def test_add_of_an_account_wechat_has_sets_its_nickname(stack, sim):
    acct = 'taw2@' + DOMAIN
    kf_call(sim, KF_ADD, {'kf_account': acct, 'nickname': 'Old name'})
    r = add(stack, sim, acct, 'New name')
    assert r.stderr == ''              # 65406 "exists" is not an error
    assert kf_list(sim)[acct]['kf_nick'] == 'New name'


def test_a_long_nick_is_cut_to_16_characters_for_wechat_only(stack, sim,
                                                             db):
    acct = 'taw3@' + DOMAIN
    nick = '客服' * 10                       # 20 characters, 60 bytes
    r = add(stack, sim, acct, nick)
    assert kf_list(sim)[acct]['kf_nick'] == nick[:16]
    assert local_row(db, acct) == (nick,)
    assert r.stderr.count('\n') == 1 and 'note' in r.stderr
    assert '16 characters' in r.stderr and nick[:16] in r.stderr


def test_update_of_the_nick_updates_wechat(stack, sim):
    acct = 'taw4@' + DOMAIN
    add(stack, sim, acct, 'Four')
    r = ok(stack, sim, 'update', '--account', acct, '--nick', 'Four II')
    assert json.loads(r.stdout)['nick'] == 'Four II'
    assert r.stderr == ''
    assert kf_list(sim)[acct]['kf_nick'] == 'Four II'


def test_update_without_a_nick_does_not_call_wechat(stack, sim):
    acct = 'taw5@' + DOMAIN
    add(stack, sim, acct, 'Five')
    before = api_calls(sim)
    r = ok(stack, sim, 'update', '--account', acct, '--weight', '7',
           '--group', 'sales')
    assert r.stderr == ''
    assert api_calls(sim) == before


def test_update_of_an_account_missing_at_wechat_adds_it(stack, sim):
    acct = 'taw6@' + DOMAIN
    add(stack, sim, acct, 'Six')
    kf_call(sim, KF_DEL, {'kf_account': acct})
    ok(stack, sim, 'update', '--account', acct, '--nick', 'Six again')
    assert kf_list(sim)[acct]['kf_nick'] == 'Six again'


# ------------------------------------------------------------------ remove

def test_remove_deletes_the_kf_account(stack, sim, db):
    acct = 'taw7@' + DOMAIN
    add(stack, sim, acct, 'Seven')
    assert acct in kf_list(sim)
    r = ok(stack, sim, 'remove', '--account', acct)
    assert r.stderr == ''
    assert acct not in kf_list(sim)
    assert local_row(db, acct) is None


def test_remove_of_an_account_wechat_lacks_succeeds(stack, sim):
    acct = 'taw8@' + DOMAIN
    add(stack, sim, acct, 'Eight')
    kf_call(sim, KF_DEL, {'kf_account': acct})
    r = ok(stack, sim, 'remove', '--account', acct)   # 65401 is fine
    assert r.stderr == ''


def test_remove_refused_locally_leaves_wechat_alone(stack, sim):
    acct = 'taw9@' + DOMAIN
    add(stack, sim, acct, 'Nine')
    key = 'wxkf:{%s}:load:%s' % (APP_ID, acct)
    stack.redis.sadd(key, 'oTawUser9')
    try:
        before = api_calls(sim, KF_DEL)
        r = wxkf(stack, sim, 'remove', '--account', acct)
        assert r.returncode == 1 and 'active sessions' in r.stderr
        assert api_calls(sim, KF_DEL) == before
        assert acct in kf_list(sim)
    finally:
        stack.redis.delete(key)
    ok(stack, sim, 'remove', '--account', acct)


# -------------------------------------------------- not mirrored, by design

def test_without_app_secret_every_command_says_so_once(stack, sim, db):
    acct = 'taw10@' + DOMAIN
    before = api_calls(sim)
    commands = [
        ['add', '--account', acct, '--nick', 'Ten'],
        ['update', '--account', acct, '--nick', 'Ten II'],
        ['invite', '--account', acct, '--wechat', 'wxid_taw10'],
        ['wechat-sync'],
        ['remove', '--account', acct],
    ]
    for args in commands:
        r = wxkf(stack, sim, *args, secret='')
        assert r.returncode == 0, (args, r.stderr)
        assert r.stderr == NO_SECRET, (args, r.stderr)
        if args[0] == 'add':
            assert TOKEN_RE.match(json.loads(r.stdout)['token'])
            assert local_row(db, acct) == ('Ten',)
    assert local_row(db, acct) is None
    assert api_calls(sim) == before          # WeChat never heard of it
    assert acct not in kf_list(sim)


def test_a_local_only_account_is_not_mirrored(stack, sim, db):
    acct = 'taw11'
    line = ('wxkf agent: WeChat not updated: account taw11 is not a '
            'WeChat kf_account (prefix@wechat_id)\n')
    before = api_calls(sim)
    r = add(stack, sim, acct, 'Eleven')
    assert r.stderr == line
    r = ok(stack, sim, 'update', '--account', acct, '--nick', 'Eleven II')
    assert r.stderr == line
    r = ok(stack, sim, 'remove', '--account', acct)
    assert r.stderr == line
    assert api_calls(sim) == before
    assert local_row(db, acct) is None


# ------------------------------------------------------- WeChat refuses

def test_a_wechat_refusal_after_add_exits_1_and_keeps_the_agent(stack, sim,
                                                                db):
    acct = 'taw12@' + DOMAIN
    sim.fault(path=KF_ADD, kind='errcode', errcode=65403)
    r = wxkf(stack, sim, 'add', '--account', acct, '--nick', 'Twelve')
    assert r.returncode == 1
    # The agent exists, so its token is shown first.
    out = json.loads(r.stdout)
    assert out['account'] == acct and TOKEN_RE.match(out['token'])
    assert r.stderr == ('wxkf agent: saved in wxkf, but WeChat refused: '
                        '65403 illegal nickname; run `wxkf agent '
                        'wechat-sync` to retry\n')
    assert local_row(db, acct) == ('Twelve',)
    assert acct not in kf_list(sim)
    r = ok(stack, sim, 'wechat-sync')
    assert kf_list(sim)[acct]['kf_nick'] == 'Twelve'


def test_a_wechat_refusal_after_update_and_remove_exits_1(stack, sim, db):
    acct = 'taw13@' + DOMAIN
    add(stack, sim, acct, 'Thirteen')
    sim.fault(path=KF_UPDATE, kind='errcode', errcode=65400)
    r = wxkf(stack, sim, 'update', '--account', acct, '--nick', 'XIII')
    assert r.returncode == 1
    assert json.loads(r.stdout)['nick'] == 'XIII'
    assert r.stderr.startswith('wxkf agent: saved in wxkf, but WeChat '
                               'refused: 65400 ')
    assert 'wechat-sync' in r.stderr and r.stderr.count('\n') == 1
    assert local_row(db, acct) == ('XIII',)
    sim.fault(path=KF_DEL, kind='errcode', errcode=65400)
    r = wxkf(stack, sim, 'remove', '--account', acct)
    assert r.returncode == 1
    assert r.stderr.startswith('wxkf agent: removed from wxkf, but WeChat '
                               'refused: 65400 ')
    assert r.stderr.count('\n') == 1
    assert local_row(db, acct) is None
    # It is left at WeChat, and wechat-sync lists it (never deletes it).
    r = ok(stack, sim, 'wechat-sync')
    assert 'left alone at WeChat: %s "Thirteen"' % acct in r.stdout
    assert acct in kf_list(sim)
    kf_call(sim, KF_DEL, {'kf_account': acct})


def test_wechat_unreachable_is_reported_not_hidden(stack, sim, db):
    acct = 'taw14@' + DOMAIN
    sim.fault(path=KF_ADD, kind='http', status=502)
    r = wxkf(stack, sim, 'add', '--account', acct, '--nick', 'Fourteen')
    assert r.returncode == 1
    assert json.loads(r.stdout)['account'] == acct
    assert r.stderr.startswith('wxkf agent: saved in wxkf, but WeChat not '
                               'reached: ')
    assert local_row(db, acct) == ('Fourteen',)


# ------------------------------------------------------------------ invite

def test_invite_sends_inviteworker(stack, sim):
    acct = 'taw15@' + DOMAIN
    add(stack, sim, acct, 'Fifteen')
    before = api_calls(sim, KF_INVITE)
    r = ok(stack, sim, 'invite', '--account', acct, '--wechat',
           'wxid_taw15')
    assert json.loads(r.stdout) == {'account': acct,
                                    'invite_wx': 'wxid_taw15',
                                    'invite_status': 'waiting'}
    assert r.stderr == ''
    assert api_calls(sim, KF_INVITE) == before + 1
    kf = kf_list(sim)[acct]
    assert (kf['invite_wx'], kf['invite_status']) == ('wxid_taw15',
                                                      'waiting')
    # Again: WeChat says the invitation exists (65408), and we say so.
    r = wxkf(stack, sim, 'invite', '--account', acct, '--wechat',
             'wxid_taw15')
    assert r.returncode == 1 and r.stdout == ''
    assert r.stderr.startswith('wxkf agent: WeChat refused: 65408 ')


def test_invite_refuses_bad_input_without_calling_wechat(stack, sim):
    acct = 'taw16@' + DOMAIN
    add(stack, sim, acct, 'Sixteen')
    before = api_calls(sim)
    r = wxkf(stack, sim, 'invite', '--account', 'taw99@' + DOMAIN,
             '--wechat', 'wxid_nobody')
    assert r.returncode == 1
    assert r.stderr == 'wxkf agent: no agent taw99@%s\n' % DOMAIN
    r = wxkf(stack, sim, 'invite', '--account', acct, '--wechat', 'a b')
    assert r.returncode == 1 and r.stderr.startswith('wxkf agent: wechat:')
    r = wxkf(stack, sim, 'invite', '--account', acct)
    assert r.returncode == 2 and r.stderr.count('\n') == 1
    r = wxkf(stack, sim, 'invite', '--account', acct, '--wechat', 'x',
             '--nick', 'N')
    assert r.returncode == 2
    assert api_calls(sim) == before


# ------------------------------------------------------------- wechat-sync

def test_wechat_sync_recreates_fixes_nicks_and_lists_strangers(stack, sim):
    gone, renamed = 'taw17@' + DOMAIN, 'taw18@' + DOMAIN
    stranger = 'other17@' + DOMAIN
    add(stack, sim, gone, 'Seventeen')
    add(stack, sim, renamed, 'Eighteen')
    add(stack, sim, 'taw19', 'Local only')
    kf_call(sim, KF_DEL, {'kf_account': gone})
    kf_call(sim, KF_UPDATE, {'kf_account': renamed, 'nickname': 'Changed'})
    kf_call(sim, KF_ADD, {'kf_account': stranger, 'nickname': 'Stranger'})
    r = ok(stack, sim, 'wechat-sync')
    assert r.stderr == ''
    lines = r.stdout.splitlines()
    summary = re.match(r'wechat-sync: (\d+) added, (\d+) updated, (\d+) '
                       r'unchanged, (\d+) in wxkf only \(not kf_accounts\), '
                       r'0 failed$', lines[0])
    assert summary, r.stdout
    assert int(summary.group(1)) >= 1 and int(summary.group(2)) >= 1
    assert int(summary.group(4)) >= 1
    assert ('wechat-sync: not a wxkf agent, left alone at WeChat: %s '
            '"Stranger"' % stranger) in lines
    kfs = kf_list(sim)
    assert kfs[gone]['kf_nick'] == 'Seventeen'
    assert kfs[renamed]['kf_nick'] == 'Eighteen'
    assert kfs[stranger]['kf_nick'] == 'Stranger'      # never deleted
    assert 'taw19' not in kfs
    # In step now: a second run changes nothing at WeChat.
    adds, updates = api_calls(sim, KF_ADD), api_calls(sim, KF_UPDATE)
    r = ok(stack, sim, 'wechat-sync')
    assert re.match(r'wechat-sync: 0 added, 0 updated, ', r.stdout)
    assert (api_calls(sim, KF_ADD), api_calls(sim, KF_UPDATE)) == \
        (adds, updates)
    kf_call(sim, KF_DEL, {'kf_account': stranger})


def test_wechat_sync_reports_a_failing_account_and_does_the_rest(stack,
                                                                 sim):
    a, b = 'taw20@' + DOMAIN, 'taw21@' + DOMAIN
    add(stack, sim, a, 'Twenty')
    add(stack, sim, b, 'Twenty One')
    ok(stack, sim, 'wechat-sync')      # every other agent in step first
    kf_call(sim, KF_DEL, {'kf_account': a})
    kf_call(sim, KF_DEL, {'kf_account': b})
    sim.fault(path=KF_ADD, kind='errcode', errcode=65405)
    r = wxkf(stack, sim, 'wechat-sync')
    assert r.returncode == 1
    assert ', 1 failed' in r.stdout.splitlines()[0]
    assert r.stderr.startswith('wxkf agent: wechat-sync: 1 account failed, '
                               'the first taw20@%s: WeChat refused: 65405 '
                               % DOMAIN), r.stderr
    assert b in kf_list(sim) and a not in kf_list(sim)
    ok(stack, sim, 'wechat-sync')
    assert a in kf_list(sim)


def test_wechat_sync_without_getkflist_does_nothing(stack, sim):
    sim.fault(path='/cgi-bin/customservice/getkflist', kind='errcode',
              errcode=48001)
    before = api_calls(sim, KF_ADD) + api_calls(sim, KF_UPDATE)
    r = wxkf(stack, sim, 'wechat-sync')
    assert r.returncode == 1 and r.stdout == ''
    assert r.stderr.startswith('wxkf agent: WeChat refused: 48001 ')
    assert api_calls(sim, KF_ADD) + api_calls(sim, KF_UPDATE) == before


def test_help_names_the_wechat_commands(stack):
    r = subprocess.run([wxkf_bin(), 'agent', '--help'], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0
    assert '  invite ' in r.stdout and '  wechat-sync ' in r.stdout
    assert 'app_secret' in r.stdout
