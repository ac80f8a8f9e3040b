"""The documentation names only files that exist.

Every repository path written in a tracked Markdown file (README.md,
docs/*.md, test/*/README.md), every bare `name.md` a page in docs/ points
at, and every docs/ page named in the sources (comments in lib/, fcgi/,
test/) must be in the tree; a module named without its extension
(`lib/agent`) must have its .c or .h. No stack is started.

Run: /usr/bin/python3 -m pytest -q test/it/test_docs.py
"""

import glob
import os
import re
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..'))

TOP = r'(?:fcgi|lib|sql|nginx|scripts|systemd|test|docs|\.ci)'
# A path starts at a top-level folder (optionally after ../), not inside
# another path, URL or variable (/usr/lib/..., $(REL)/..., @BINDIR@/...).
PATH = re.compile(r'(?<![\w/.\-$@{}])((?:\.\./)*' + TOP +
                  r'/[A-Za-z0-9_.*/@\-]*[A-Za-z0-9_*/])(<)?')
DOC = re.compile(r'(?<![\w/.\-$@{}])((?:\.\./)*docs/[A-Za-z0-9_\-]+\.md)')
BARE_MD = re.compile(r'(?<![\w/.\-$@{}])([a-z][a-z0-9_\-]*\.md)\b')
MIGRATION = re.compile(r'^sql/\d{4}$')  # "sql/0002" names a migration
# Paths that exist only in a running stack's folder, not in the tree.
RUNTIME = {'nginx/nginx.conf'}


def tracked(*patterns):
    out = subprocess.run(['git', 'ls-files', '--', *patterns], cwd=REPO,
                         capture_output=True, text=True, check=True, timeout=30)
    return out.stdout.split()


def exists(base, p):
    full = os.path.normpath(os.path.join(REPO, base, p))
    if glob.glob(full):
        return True
    if any(os.path.exists(full + ext) for ext in ('.c', '.h')):
        return True
    return bool(MIGRATION.match(p) and glob.glob(full + '_*.sql'))


def missing_in(f, text, pattern, base_of):
    out = []
    for m in pattern.finditer(text):
        p = m.group(1).rstrip('/').rstrip('.')
        if m.lastindex and m.lastindex > 1 and m.group(2):
            continue                    # test/fuzz/fuzz_<name>.c
        if p in RUNTIME:
            continue
        if not exists(base_of(p), p):
            line = text.count('\n', 0, m.start()) + 1
            out.append(f'{f}:{line}: {p}')
    return out


def read(f):
    with open(os.path.join(REPO, f), encoding='utf-8') as fh:
        return fh.read()


def rel_base(f):
    return lambda p: os.path.dirname(f) if p.startswith('../') else '.'


def test_markdown_names_existing_files():
    files = tracked('*.md')
    assert 'README.md' in files and 'docs/architecture.md' in files
    bad = []
    for f in files:
        text = read(f)
        bad += missing_in(f, text, PATH, rel_base(f))
        if f.startswith('docs/'):
            bad += missing_in(f, text, BARE_MD, lambda p: 'docs')
    assert not bad, 'paths that do not exist:\n' + '\n'.join(bad)


def test_sources_name_existing_docs():
    files = [f for f in tracked('*.c', '*.h', '*.lua', '*.py', '*.sh',
                                '*.sql', '*.in', 'Makefile')
             if not f.startswith('test/data/')]
    assert 'lib/store.h' in files
    bad = []
    for f in files:
        bad += missing_in(f, read(f), DOC, rel_base(f))
    assert not bad, 'docs pages that do not exist:\n' + '\n'.join(bad)
