"""Every error code the REST API can answer has a message of its own in the
console, in zh and in en (nginx/html/i18n.js, keys `err.code.<code>`), so
an agent never reads the server's English as the message (the house
style: the server's text goes to a details line only).

The codes are read from the C sources — fcgi_error() calls, the
`struct http_error` table of lib/http.c, the code maps of fcgi/api.c,
json_pack'ed error objects, lib/media.c's refusals and, where it exists,
lib/refusal.h's table — so a new code without a message fails here.

It also runs test/browser/units.test.mjs with node: the console's pure
modules (the WeChat window and send budget, emoji, links) on their own.
No stack is started.

Run: /usr/bin/python3 -m pytest -q test/it/test_console_strings.py
"""

import glob
import os
import re
import shutil
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..'))
CODE = r'[a-z][a-z0-9_]*'


def read(path):
    with open(os.path.join(REPO, path), encoding='utf-8') as f:
        return f.read()


def literals(expr):
    return set(re.findall(r'"(%s)"' % CODE, expr))


def api_codes():
    """Every JSON error code in fcgi/*.c, lib/*.c and lib/refusal.h."""
    codes = set()
    files = sorted(glob.glob(os.path.join(REPO, 'fcgi', '*.c')) +
                   glob.glob(os.path.join(REPO, 'lib', '*.c')) +
                   glob.glob(os.path.join(REPO, 'lib', 'refusal.h')))
    for path in files:
        src = open(path, encoding='utf-8').read()
        # fcgi_error(r, status, CODE, ...): the third argument's literals
        for m in re.finditer(r'\bfcgi_error\(\s*[^,()]+,\s*[^,()]+,\s*'
                             r'([^,]+?),', src):
            codes |= literals(m.group(1))
        # (struct http_error){ 403, "bad_signature", ... }
        codes |= set(re.findall(r'\(struct http_error\)\s*\{\s*\d+,\s*"(%s)"'
                                % CODE, src))
        # code maps: { "agent_full", 409, ... } and { "quota_exhausted", 409 }
        codes |= set(re.findall(r'\{\s*"(%s)",\s*[1-5]\d\d\s*[,}]' % CODE,
                                src))
        # json_pack("{s:{s:s,...}}", "error", "code", "wechat_refused", ...)
        codes |= set(re.findall(r'"code",\s*"(%s)"' % CODE, src))
        # const char *code = cond ? "outside_48h_window" : "wechat_refused";
        for m in re.finditer(r'\bconst char \*code\s*=\s*([^;]*);', src):
            codes |= literals(m.group(1))
        # lib/media.c: refuse(f, KF_..., "not_yours")
        for m in re.finditer(r'\brefuse\(\s*f,\s*\w+,\s*([^)]*)\)', src):
            codes |= literals(m.group(1))
        # lib/refusal.h: X(ID, scopes, "sub", KF_..., status, "code", ...)
        codes |= set(re.findall(r'\bX\(\s*\w+,\s*[^,]+,[\s\\]*"[^"]*",'
                                r'[\s\\]*\w+,[\s\\]*\d{3},[\s\\]*"(%s)"'
                                % CODE, src))
    return codes


def i18n_tables():
    """{'zh': {key: text}, 'en': {...}} from nginx/html/i18n.js."""
    src = read('nginx/html/i18n.js')
    out = {}
    for lang in ('zh', 'en'):
        m = re.search(r'^    %s: \{\n(.*?)^    \},' % lang, src, re.M | re.S)
        assert m, 'no %s table in i18n.js' % lang
        out[lang] = dict(re.findall(r"^        '([^']+)': '((?:[^'\\]|\\.)*)',",
                                    m.group(1), re.M))
        assert len(out[lang]) > 100, '%s: only %d strings parsed' % (
            lang, len(out[lang]))
    return out


def test_the_extraction_finds_codes_of_every_kind():
    codes = api_codes()
    # one of each way a code is written in the sources
    for c in ('agent_busy', 'bad_signature', 'agent_full', 'wechat_refused',
              'outside_48h_window', 'quota_exhausted', 'media_failed',
              'push_disabled', 'method_not_allowed', 'too_many_auth_failures'):
        assert c in codes, c
    assert len(codes) >= 40, sorted(codes)


def test_every_api_error_code_has_a_zh_and_an_en_message():
    tables = i18n_tables()
    missing = []
    for code in sorted(api_codes()):
        for lang in ('zh', 'en'):
            text = tables[lang].get('err.code.' + code, '')
            if not text.strip():
                missing.append('%s: err.code.%s' % (lang, code))
            elif lang == 'zh' and not re.search(r'[\u4e00-\u9fff]', text):
                missing.append('zh: err.code.%s is not Chinese: %s' % (code,
                                                                      text))
    assert not missing, 'nginx/html/i18n.js lacks:\n' + '\n'.join(missing)


def test_zh_and_en_have_the_same_keys():
    tables = i18n_tables()
    assert set(tables['zh']) == set(tables['en']), (
        'only zh: %s; only en: %s' % (
            sorted(set(tables['zh']) - set(tables['en'])),
            sorted(set(tables['en']) - set(tables['zh']))))


def test_console_pure_modules():
    node = shutil.which('node')
    assert node, 'node is not installed (make test installs it)'
    r = subprocess.run([node, 'units.test.mjs'],
                       cwd=os.path.join(REPO, 'test', 'browser'),
                       capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr
