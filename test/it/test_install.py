"""The installed layout (docs/operations.md, "Install"): `make install
PREFIX=/usr DESTDIR=...` puts the binary, the migrations, the nginx
templates, the console, the docs with the sample config, two systemd units,
a sysusers.d entry and /etc/default/wxkf in place; the units pass
`systemd-analyze verify`; the production nginx template, changed where it
says CHANGE as an operator would, passes `nginx -t`; and the INSTALLED
binary, with the installed console and migrations, serves a stack: `wxkf
check`, WeChat's signed GET verification and a signed callback.
"""

import filecmp
import glob
import grp
import os
import re
import shutil
import stat
import subprocess
import tempfile

import pytest
import requests

from conftest import REPO, Stack

MAKE_TIMEOUT = 600          # may build build/rel/wxkf first
TOOL_TIMEOUT = 60
UNITS = ('wxkf-fcgi.service', 'wxkf-jobs.service')
CONSOLE = sorted(os.path.basename(p) for p in glob.glob(
    os.path.join(REPO, 'nginx', 'html', '*'))
    if re.search(r'\.(html|js|css|svg)$', p))


def make_install(*args):
    out = subprocess.run(['make', '-s', '-C', REPO, 'install'] + list(args),
                         stdin=subprocess.DEVNULL, capture_output=True,
                         text=True, timeout=MAKE_TIMEOUT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


@pytest.fixture(scope='module')
def tmp():
    d = tempfile.mkdtemp(prefix='wxkf-it-install-', dir='/tmp')
    os.chmod(d, 0o755)          # the stack's nginx (nobody) reads in here
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope='module')
def dest(tmp):
    """make install PREFIX=/usr DESTDIR=<tmp>/dest, as a package build."""
    d = os.path.join(tmp, 'dest')
    make_install('PREFIX=/usr', 'DESTDIR=' + d)
    return d


@pytest.fixture(scope='module')
def real(tmp):
    """make install into a real prefix (no DESTDIR): the units then name
    files that exist here, as systemd-analyze verify wants."""
    r = os.path.join(tmp, 'real')
    make_install('PREFIX=' + r + '/usr', 'SYSCONFDIR=' + r + '/etc')
    return r


def read(path):
    with open(path, encoding='utf-8') as f:
        return f.read()


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_install_puts_every_part_in_place(dest):
    usr = os.path.join(dest, 'usr')
    wxkf = os.path.join(usr, 'bin', 'wxkf')
    assert mode(wxkf) == 0o755
    v = subprocess.run([wxkf, 'version'], capture_output=True, text=True,
                       timeout=TOOL_TIMEOUT)
    assert v.returncode == 0 and v.stdout.startswith('wxkf ')
    share = os.path.join(usr, 'share', 'wxkf')
    assert sorted(os.listdir(os.path.join(share, 'sql'))) == sorted(
        os.path.basename(p) for p in glob.glob(os.path.join(REPO, 'sql',
                                                            '*.sql')))
    assert sorted(os.listdir(os.path.join(share, 'html'))) == CONSOLE
    match, mismatch, errors = filecmp.cmpfiles(
        os.path.join(REPO, 'nginx', 'html'), os.path.join(share, 'html'),
        CONSOLE, shallow=False)
    assert (mismatch, errors) == ([], [])
    assert sorted(os.listdir(os.path.join(share, 'nginx'))) == [
        'wxkf-production.conf', 'wxkf.conf.in']
    doc = os.path.join(usr, 'share', 'doc', 'wxkf')
    assert filecmp.cmp(os.path.join(REPO, 'docs', 'wxkf.conf.sample'),
                       os.path.join(doc, 'wxkf.conf.sample'), shallow=False)
    assert os.path.isfile(os.path.join(doc, 'operations.md'))
    for u in UNITS:
        assert mode(os.path.join(usr, 'lib', 'systemd', 'system', u)) == \
            0o644
    assert os.path.isfile(os.path.join(usr, 'lib', 'sysusers.d',
                                       'wxkf.conf'))
    # /run/wxkf exists from boot, before nginx binds Nchan's socket there
    assert re.search(r'^d /run/wxkf 0750 wxkf www-data -$', read(
        os.path.join(usr, 'lib', 'tmpfiles.d', 'wxkf.conf')), re.M)
    # read by systemd as root; may hold secrets (WXKF_WECHAT_APP_SECRET)
    assert mode(os.path.join(dest, 'etc', 'default', 'wxkf')) == 0o600
    # nothing else, and nothing outside PREFIX but /etc/default/wxkf
    assert sorted(os.listdir(dest)) == ['etc', 'usr']
    assert os.listdir(os.path.join(dest, 'etc')) == ['default']


def test_rendered_files_name_the_prefix_and_keep_no_placeholder(dest):
    usr = os.path.join(dest, 'usr')
    rendered = [os.path.join(usr, 'lib', 'systemd', 'system', u)
                for u in UNITS]
    rendered += [os.path.join(dest, 'etc', 'default', 'wxkf'),
                 os.path.join(usr, 'share', 'wxkf', 'nginx',
                              'wxkf-production.conf')]
    for p in rendered:
        assert not re.search(r'@[A-Z_]+@', read(p)), p
        assert dest not in read(p), p
    prod = read(rendered[-1])
    assert re.search(r'^\s*root /usr/share/wxkf/html;', prod, re.M)



def unit(dest, name):
    """A unit's [Service] settings: {key: [values]}, continuations joined."""
    text = read(os.path.join(dest, 'usr', 'lib', 'systemd', 'system', name))
    text = text.replace('\\\n', ' ')
    out = {}
    for line in text.splitlines():
        m = re.match(r'^([A-Za-z]+)=(.*)$', line)
        if m:
            out.setdefault(m.group(1), []).append(re.sub(r'\s+', ' ',
                                                         m.group(2)))
    return out


def test_fcgi_unit_runs_spawn_fcgi_and_multiwatch_with_the_worker_count(
        dest):
    u = unit(dest, 'wxkf-fcgi.service')
    assert u['ExecStart'] == [
        '/usr/bin/spawn-fcgi -n -s /run/wxkf/wxkf.sock -M 0660 -- '
        '/usr/bin/multiwatch -f ${WXKF_WORKERS} -s TERM -- '
        '/usr/bin/wxkf fcgi -c ${WXKF_CONF}']
    assert u['EnvironmentFile'] == ['-/etc/default/wxkf']
    env = read(os.path.join(dest, 'etc', 'default', 'wxkf'))
    assert re.search(r'^WXKF_WORKERS=\d+$', env, re.M)
    assert re.search(r'^WXKF_CONF=/etc/wxkf/wxkf.conf$', env, re.M)
    j = unit(dest, 'wxkf-jobs.service')
    assert j['ExecStart'] == ['/usr/bin/wxkf jobs -c ${WXKF_CONF}']
    for s in (u, j):
        assert s['User'] == ['wxkf'] and s['Group'] == ['www-data']
        assert s['NoNewPrivileges'] == ['yes']
        assert s['ProtectSystem'] == ['strict']
        assert s['Restart'] == ['on-failure']
        assert s['ReadWritePaths'] == ['/var/lib/wxkf /var/log/wxkf']
        assert s['RuntimeDirectory'] == ['wxkf']
        assert s['RuntimeDirectoryPreserve'] == ['yes']


def test_units_pass_systemd_analyze_verify(real, tmp):
    units = [os.path.join(real, 'usr', 'lib', 'systemd', 'system', u)
             for u in UNITS]
    out = subprocess.run(['systemd-analyze', 'verify'] + units,
                         capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    # verify exits 0 on settings it ignores: any word from it is a finding
    assert out.returncode == 0 and out.stdout + out.stderr == '', \
        out.stdout + out.stderr
    # and it does find a broken setting in a unit like these
    broken = os.path.join(tmp, 'wxkf-broken.service')
    with open(broken, 'w') as f:
        f.write(read(units[1]).replace('ProtectSystem=', 'ProtectSytem='))
    out = subprocess.run(['systemd-analyze', 'verify', broken],
                         capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    assert "Unknown key 'ProtectSytem'" in out.stdout + out.stderr


def test_sysusers_and_tmpfiles_make_the_user_and_run_dir(dest, tmp):
    """In a scratch root (a copy of this machine's users), systemd's own
    tools create what the units need: the wxkf user in group www-data,
    and /run/wxkf 0750 wxkf:www-data."""
    root = os.path.join(tmp, 'sysusers-root')
    os.makedirs(os.path.join(root, 'etc'), exist_ok=True)
    for f in ('passwd', 'group', 'shadow', 'gshadow'):
        if os.path.exists('/etc/' + f):
            shutil.copy('/etc/' + f, os.path.join(root, 'etc', f))
    lib = os.path.join(dest, 'usr', 'lib')
    for cmd in (['systemd-sysusers', '--root=' + root,
                 os.path.join(lib, 'sysusers.d', 'wxkf.conf')],
                ['systemd-tmpfiles', '--root=' + root, '--create',
                 os.path.join(lib, 'tmpfiles.d', 'wxkf.conf')]):
        out = subprocess.run(cmd, capture_output=True, text=True,
                             timeout=TOOL_TIMEOUT)
        assert out.returncode == 0, out.stdout + out.stderr
    users = dict((ln.split(':')[0], ln.split(':')) for ln in
                 read(os.path.join(root, 'etc', 'passwd')).splitlines())
    gid = grp.getgrnam('www-data').gr_gid
    assert 'wxkf' in users and int(users['wxkf'][3]) == gid
    assert users['wxkf'][5] == '/var/lib/wxkf'
    st = os.stat(os.path.join(root, 'run', 'wxkf'))
    assert stat.S_IMODE(st.st_mode) == 0o750
    assert (st.st_uid, st.st_gid) == (int(users['wxkf'][2]), gid)


def test_install_keeps_an_edited_environment_file(tmp):
    d = os.path.join(tmp, 'again')
    make_install('PREFIX=/usr', 'DESTDIR=' + d)
    env = os.path.join(d, 'etc', 'default', 'wxkf')
    with open(env, 'a') as f:
        f.write('WXKF_WORKERS=12\n')
    make_install('PREFIX=/usr', 'DESTDIR=' + d)
    assert read(env).endswith('WXKF_WORKERS=12\n')


# --- the production nginx template ---------------------------------------

def render_production(template, tmp):
    """What docs/operations.md tells an operator: change the lines marked
    CHANGE (server name, certificates, worker pools, the monitoring
    network, the socket folder) and the log folder. Returns the path."""
    ssl = os.path.join(tmp, 'ssl')
    logs = os.path.join(tmp, 'ngx-logs')
    run = os.path.join(tmp, 'ngx-run')
    for d in (ssl, logs, run):
        os.makedirs(d, exist_ok=True)
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048',
                    '-nodes', '-days', '2', '-subj', '/CN=kf.test',
                    '-keyout', os.path.join(ssl, 'privkey.pem'),
                    '-out', os.path.join(ssl, 'fullchain.pem')],
                   check=True, capture_output=True, timeout=TOOL_TIMEOUT)
    text = read(template)
    changes = [('kf.example.com', 'kf.test'),
               ('/etc/ssl/wxkf/', ssl + '/'),
               ('10.0.0.11:9000', '127.0.0.1:9001'),
               ('10.0.0.12:9000', '127.0.0.1:9002'),
               ('/run/wxkf/', run + '/')]
    for old, new in changes:
        lines = [ln for ln in text.splitlines() if old in ln and
                 not ln.lstrip().startswith('#')]
        assert lines, old
        # every line the operator must change says so
        assert all(ln.rstrip().endswith('# CHANGE') for ln in lines), lines
        text = text.replace(old, new)
    text = text.replace('/var/log/nginx/', logs + '/')
    out = os.path.join(tmp, 'wxkf-production.conf')
    with open(out, 'w') as f:
        f.write(text)
    return out


def nginx_t(tmp, site, nchan=True):
    """nginx -t with a private prefix on a main config shaped like
    Debian's: Nchan loaded, mime types, and the site inside http {}."""
    prefix = os.path.join(tmp, 'ngx') + '/'
    os.makedirs(prefix, exist_ok=True)
    main = os.path.join(prefix, 'nginx.conf')
    temp = ''.join('    %s_temp_path %s%s;\n' % (k, prefix, k)
                   for k in ('client_body', 'fastcgi', 'proxy', 'scgi',
                             'uwsgi'))
    with open(main, 'w') as f:
        f.write(('load_module /usr/lib/nginx/modules/ngx_nchan_module.so;\n'
                 if nchan else '') +
                'pid %snginx.pid;\nerror_log %serror.log;\n'
                'events {}\nhttp {\n    include /etc/nginx/mime.types;\n'
                '%s    include %s;\n}\n' % (prefix, prefix, temp, site))
    return subprocess.run(['nginx', '-t', '-p', prefix, '-c', main, '-e',
                           prefix + 'error.log'], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True,
                          timeout=TOOL_TIMEOUT)


def test_production_nginx_template_passes_nginx_t(dest, tmp):
    site = render_production(os.path.join(
        dest, 'usr', 'share', 'wxkf', 'nginx', 'wxkf-production.conf'), tmp)
    out = nginx_t(tmp, site)
    assert out.returncode == 0, out.stderr
    assert 'syntax is ok' in out.stderr and 'test is successful' in \
        out.stderr
    # the check reads the template for real: without Nchan it fails there
    out = nginx_t(tmp, site, nchan=False)
    assert out.returncode != 0
    assert 'unknown directive "nchan_' in out.stderr


# --- the installed binary serves a stack ----------------------------------

class InstalledStack(Stack):
    """A private stack (scripts/stack.sh) whose workers, jobs and
    migrations are the installed binary, serving the installed console."""

    def __init__(self, root):
        self.root = root
        super().__init__('installed')

    def env(self):
        e = super().env()
        e['WXKF_BIN'] = os.path.join(self.root, 'usr', 'bin', 'wxkf')
        e['HTML_DIR'] = os.path.join(self.root, 'usr', 'share', 'wxkf',
                                     'html')
        return e


@pytest.fixture(scope='module')
def installed_stack(dest):
    st = InstalledStack(dest)
    try:
        st.start()
        yield st
    finally:
        st.stop()
        st.cleanup()


def test_installed_binary_checks_the_stack(installed_stack, dest):
    out = subprocess.run([os.path.join(dest, 'usr', 'bin', 'wxkf'), 'check',
                          '-c', installed_stack.conf], capture_output=True,
                         text=True, timeout=TOOL_TIMEOUT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert 'redis: ok' in out.stdout and 'postgres: ok' in out.stdout


def test_installed_workers_answer_wechat(installed_stack, dest):
    st = installed_stack
    # the workers are the installed binary
    exe = os.path.realpath('/proc/%d/exe' % st.worker_pids()[0])
    assert exe == os.path.join(dest, 'usr', 'bin', 'wxkf')
    wx = st.user()
    r = wx.verify('installed-echo')
    assert r.status_code == 200 and r.text == 'installed-echo'
    r = wx.send_text('hello from an installed worker')
    assert r.status_code == 200 and r.text == 'success'
    assert st.msg_count() == 1
    r = requests.get(st.base + '/', timeout=10)
    assert r.status_code == 200
    with open(os.path.join(dest, 'usr', 'share', 'wxkf', 'html',
                           'index.html'), 'rb') as f:
        assert r.content == f.read()
