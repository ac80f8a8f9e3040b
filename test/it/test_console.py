"""The agent console (nginx/html) in a real browser: Debian's Chromium driven
by test/browser/console.test.mjs (playwright-core) against a private stack
and the WeChat simulator.

The scenario: agent A signs in and goes online; a simulated user writes (a
signed plaintext callback) and the message appears in A's console (the
latency is measured and printed); A answers and the reply reaches the
simulator's custom/send with A's kf_account; a reply WeChat refuses shows
as failed with its errcode; A transfers the session to agent B, who is
signed in on a phone-sized screen and sees it; an admin sees both agents
and the stats; a new user's profile (looked up by `wxkf jobs`) is shown
with its past session and transcript, the display name, the remark
(WeChat's refusal in Chinese) and a note are saved. Screenshots (1366x768 and 390x844) are kept under
test/browser/artifacts/, with the script's output in console-test.log.

Fails (never skips) when node or /usr/bin/chromium is missing: `make
test` installs both, and test/browser/setup.sh the npm package."""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import (APP_ID, ORIGINAL_ID, REPO, TOKEN, run_sim_stack,
                      sim_server, wxkf_bin)
from test_routing import add_agent

BROWSER_DIR = os.path.join(REPO, 'test', 'browser')
ARTIFACTS = os.path.join(BROWSER_DIR, 'artifacts')
CHROMIUM = os.environ.get('CHROMIUM', '/usr/bin/chromium')
NODE = shutil.which('node')
AGENT_A = 'ca1@simshop'
AGENT_B = 'cb1@simshop'
RUN_TIMEOUT = 540         # the whole scenario, on a loaded 2-core machine
ACCOUNT_NAME = '好物商城'      # [wechat] account_name: {account} in canned replies
STAFF_LOGIN = 'xiaob'          # `wxkf user add` (passwordLoginSteps)
STAFF_PASSWORD = '客服小B的密码 2026'


def _missing():
    if not NODE:
        return 'node is not installed (make test installs it)'
    if not os.access(CHROMIUM, os.X_OK):
        return '%s is not installed (apt-get install chromium)' % CHROMIUM
    return None


@pytest.fixture(scope='module', autouse=True)
def browser_present():
    """make test installs node and chromium (scripts/deps.sh): without them
    this test fails rather than passing unseen."""
    why = _missing()
    assert why is None, why


@pytest.fixture(scope='module')
def sim():
    yield from sim_server()


@pytest.fixture(scope='module')
def cstack(sim):
    yield from run_sim_stack('console', sim, workers=4,
                             extra={'routing': {'default_capacity': '10',
                                                'returning': '7'},
                                    'wechat': {'account_name': ACCOUNT_NAME}})


@pytest.fixture(scope='module')
def agents(sim, cstack):
    out = {}
    for acct, nick in ((AGENT_A, '小A'), (AGENT_B, '小B')):
        # a customer-service account at WeChat too
        st, body = sim.call('POST', '/customservice/kfaccount/add',
                            {'kf_account': acct, 'nickname': nick},
                            query={'access_token': sim.token()})
        assert st == 200 and body['errcode'] == 0, body
        out[acct] = add_agent(cstack, acct, nick=nick, groups=['sales'])
    # a staff user who signs in with a password as agent B
    r = subprocess.run([wxkf_bin(), 'user', 'add', '-c', cstack.conf,
                        '--login', STAFF_LOGIN, '--name', '小B',
                        '--role', 'agent', '--agent', AGENT_B],
                       input=STAFF_PASSWORD + '\n', text=True,
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return out


def node_major():
    r = subprocess.run([NODE, '--version'], capture_output=True, text=True,
                       timeout=30)
    try:
        return int(r.stdout.strip().lstrip('v').split('.')[0])
    except ValueError:
        return 0


def fresh_artifacts():
    os.makedirs(ARTIFACTS, exist_ok=True)
    for name in os.listdir(ARTIFACTS):
        if name.endswith(('.png', '.log')):
            os.remove(os.path.join(ARTIFACTS, name))


def npm_ready():
    """test/browser/node_modules holds playwright-core (setup.sh installs
    it with `npm ci` from the committed lockfile)."""
    if os.path.isdir(os.path.join(BROWSER_DIR, 'node_modules',
                                  'playwright-core')):
        return
    r = subprocess.run(['sh', os.path.join(BROWSER_DIR, 'setup.sh')],
                       capture_output=True, text=True, timeout=600,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, 'test/browser/setup.sh failed:\n%s\n%s' % (
        r.stdout[-3000:], r.stderr[-3000:])


def test_console_in_a_real_browser(sim, cstack, agents):
    # playwright-core 1.61 (test/browser/package.json) runs on Debian 12's
    # own node 18; the pin is chosen for that (test/browser/README.md).
    assert node_major() >= 18, 'playwright-core needs node >= 18 (%s)' % NODE
    npm_ready()
    fresh_artifacts()
    env = dict(os.environ)
    env.update({
        'WXKF_BASE': cstack.base,
        'WXKF_SIM': sim.base_url,
        'WXKF_ADMIN_TOKEN': cstack.admin_token,
        'WXKF_AGENT_A': AGENT_A,
        'WXKF_AGENT_A_TOKEN': agents[AGENT_A],
        'WXKF_AGENT_B': AGENT_B,
        'WXKF_AGENT_B_TOKEN': agents[AGENT_B],
        'WXKF_WECHAT_TOKEN': TOKEN,
        'WXKF_APP_ID': APP_ID,
        'WXKF_ORIGINAL_ID': ORIGINAL_ID,
        'WXKF_ACCOUNT_NAME': ACCOUNT_NAME,
        'WXKF_ARTIFACTS': ARTIFACTS,
        'WXKF_STAFF_LOGIN': STAFF_LOGIN,
        'WXKF_STAFF_PASSWORD': STAFF_PASSWORD,
        'CHROMIUM': CHROMIUM,
        # reportsSteps builds the reports of the last days by hand
        'WXKF_BIN': wxkf_bin(),
        'WXKF_CONF': cstack.conf,
    })
    try:
        r = subprocess.run([NODE, 'console.test.mjs'], cwd=BROWSER_DIR,
                           env=env, capture_output=True, text=True,
                           timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL)
        rc, out = r.returncode, r.stdout + r.stderr
    except subprocess.TimeoutExpired as e:
        rc = 124
        out = '%s%s\n(timed out after %d s)' % (
            e.stdout or '', e.stderr or '', RUN_TIMEOUT)
        if isinstance(out, bytes):
            out = out.decode('utf-8', 'replace')
    with open(os.path.join(ARTIFACTS, 'console-test.log'), 'w',
              encoding='utf-8') as f:
        f.write(out)
    sys.stdout.write('\n--- test/browser/console.test.mjs ---\n%s\n' % out)
    for line in out.splitlines():
        if line.startswith(('FIGURES', 'NOTE')) or 'LATENCY' in line:
            sys.stderr.write('console.test: %s\n' % line.strip())
    assert rc == 0, 'console.test.mjs exited %d:\n%s' % (rc, out[-8000:])
