"""The agent limits have one definition, in lib/agent.h; the console's
form fields (nginx/html/index.html) repeat them as min/max attributes, and
this checks that they agree. No stack is started.

Run: /usr/bin/python3 -m pytest -q test/it/test_limits.py
"""

import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..'))


def read(path):
    with open(os.path.join(REPO, path), encoding='utf-8') as f:
        return f.read()


def defines():
    out = {}
    for m in re.finditer(r'^#define (AGENT_\w+) (\d+)\b', read('lib/agent.h'),
                         re.M):
        out[m.group(1)] = int(m.group(2))
    return out


def inputs(name):
    """(min, max) of every <input name=...> of that name in the console."""
    found = []
    for tag in re.findall(r'<input\b[^>]*>', read('nginx/html/index.html')):
        if re.search(r'\bname="%s"' % name, tag):
            lo = re.search(r'\bmin="(\d+)"', tag)
            hi = re.search(r'\bmax="(\d+)"', tag)
            assert lo and hi, tag
            found.append((int(lo.group(1)), int(hi.group(1))))
    return found


def test_console_weight_fields_use_the_agent_h_limits():
    d = defines()
    fields = inputs('weight')
    assert len(fields) == 2         # add and edit
    for lo, hi in fields:
        assert (lo, hi) == (d['AGENT_WEIGHT_MIN'], d['AGENT_WEIGHT_MAX'])


def test_console_capacity_fields_use_the_agent_h_limit():
    d = defines()
    fields = inputs('capacity')
    assert len(fields) == 2
    for lo, hi in fields:
        assert lo in (0, 1)         # 0 (or empty on add) = the default
        assert hi == d['AGENT_CAPACITY_MAX']
