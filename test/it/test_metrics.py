"""GET /metrics on the real stack: the counters of every worker and of
`wxkf jobs` added up (not per worker), the gauges read at scrape time, the
Prometheus text format, a request id and a slow-request line in the logs,
and the callback still one Redis round trip."""

import re

import pytest
import requests

from conftest import assert_error, run_sim_stack, sim_server, wait_until
from test_routing import Agent, add_agent

SAMPLE = re.compile(r'^([a-z_:][a-z0-9_:]*)(\{([a-z_]+="([^"\\]|\\.)*",?)*\})?'
                    r' (-?[0-9.e+-]+|\+Inf|NaN)$')


@pytest.fixture(scope='module')
def sim():
    yield from sim_server()


@pytest.fixture(scope='module')
def mstack(sim):
    yield from run_sim_stack('metrics', sim, workers=4, extra={
        'routing': {'default_capacity': '2', 'queue_timeout': '0'},
        'api': {'auth_failures_per_min': '3'},
        'log': {'slow_ms': '1'},
    })


def scrape(stack):
    r = requests.get(stack.base + '/metrics', timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers['Content-Type'].startswith('text/plain; version=0.0.4')
    return r.text


def parse(text):
    """{(name, frozenset of label pairs): value}; checks every line."""
    out, helps, types = {}, set(), set()
    for line in text.splitlines():
        if line.startswith('# HELP '):
            name = line.split()[2]
            assert name not in helps, 'HELP twice: ' + name
            helps.add(name)
        elif line.startswith('# TYPE '):
            name = line.split()[2]
            assert name not in types, 'TYPE twice: ' + name
            types.add(name)
        else:
            m = SAMPLE.match(line)
            assert m, 'not a sample line: %r' % line
            name = m.group(1)
            labels = frozenset(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"',
                                          m.group(2) or ''))
            out[(name, labels)] = float(m.group(5))
    return out, types


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples, name, **labels):
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items()
               if n == name and want <= set(ls))


def test_counters_add_up_over_all_workers(mstack, sim):
    a1 = Agent(mstack, 'm1', add_agent(mstack, 'm1'))
    a2 = Agent(mstack, 'm2', add_agent(mstack, 'm2'))
    a1.status('online')
    a2.status('online')
    n = 24
    for i in range(n):
        out = sim.user_send('oMet%02d' % (i % 6), type='text',
                            content='m%d' % i, mode='safe')
        assert out['status'] == 200, out
    # 6 users, capacity 2 + 2: 4 assigned, 2 queued, the rest sticky/queued
    s = a1.sessions()
    assert s, 'm1 got no user'
    r = a1.post('/api/v1/sessions/%s/messages' % s[0],
                {'msgtype': 'text', 'text': {'content': 'hi'}})
    assert r.status_code == 200, r.text
    for _ in range(4):          # the brake: 3 failures, then 429
        requests.get(mstack.base + '/api/v1/me', timeout=5,
                     headers={'Authorization': 'Bearer nope'})
    mstack.redis.delete('wxkf:{%s}:authfail:127.0.0.1' % mstack.app_id)

    def counted():
        smp, _ = parse(scrape(mstack))
        return smp if value(smp, 'wxkf_http_requests_total', route='/wechat',
                            status='200') >= n and \
            value(smp, 'wxkf_wechat_api_calls_total',
                  api='/cgi-bin/message/custom/send', errcode='0') >= 1 \
            else None
    smp = wait_until(counted, 10, interval=0.5, what='counts flushed')
    # exact: every worker's counts, each once (/wechat also had the
    # simulator's GET verification)
    assert value(smp, 'wxkf_callback_duration_seconds_count') == n
    assert value(smp, 'wxkf_callback_duration_seconds_bucket',
                 le='+Inf') == n
    assert 0 < value(smp, 'wxkf_callback_duration_seconds_sum') < n * 5
    assert value(smp, 'wxkf_messages_total', direction='in',
                 type='text') == n
    assert value(smp, 'wxkf_messages_total', direction='out',
                 type='text') == 1
    outcomes = {o: value(smp, 'wxkf_routing_outcomes_total', outcome=o,
                         policy='round_robin')
                for o in ('assigned', 'sticky', 'queued', 'offline')}
    assert sum(outcomes.values()) == n, outcomes
    assert outcomes['assigned'] == 4 and outcomes['queued'] >= 2, outcomes
    assert value(smp, 'wxkf_wechat_api_calls_total',
                 api='/cgi-bin/message/custom/send', errcode='0') == 1
    assert total(smp, 'wxkf_wechat_token_refreshes_total') >= 1
    assert value(smp, 'wxkf_ratelimit_rejections_total', kind='auth') >= 1
    assert value(smp, 'wxkf_http_requests_total',
                 route='/api/v1/me', status='401') == 3
    # gauges, read at scrape time
    assert value(smp, 'wxkf_agents', status='online') == 2
    assert value(smp, 'wxkf_sessions_active') == 4
    assert value(smp, 'wxkf_queue_length', group='_all') == 2
    assert value(smp, 'wxkf_agent_online_rate') == 1.0
    assert ('wxkf_archiver_lag_seconds', frozenset()) in smp
    assert value(smp, 'wxkf_wechat_api_budget_left', api='send') > 0


def test_every_family_is_declared_once(mstack):
    text = scrape(mstack)
    _, types = parse(text)
    for fam in ('wxkf_http_requests_total', 'wxkf_callback_duration_seconds',
                'wxkf_messages_total', 'wxkf_routing_outcomes_total',
                'wxkf_wechat_api_calls_total', 'wxkf_redis_errors_total',
                'wxkf_postgres_errors_total', 'wxkf_queue_length',
                'wxkf_agents', 'wxkf_archiver_lag_seconds'):
        assert fam in types, fam
    assert '# TYPE wxkf_callback_duration_seconds histogram' in text


def test_slow_requests_are_logged_with_their_request_id(mstack, sim):
    out = sim.user_send('oMetSlow', type='text', content='slow?', mode='safe')
    assert out['status'] == 200
    logs = open(mstack.dir + '/logs/wxkf.log').read()
    slow = [l for l in logs.splitlines() if 'ev=slow' in l]
    assert slow, 'no slow-request line with slow_ms = 1'
    assert all(re.search(r'rid=[0-9a-f]{32} ', l) for l in slow)
    assert any('route=/wechat' in l for l in slow)


def test_metrics_is_for_this_machine_only(mstack):
    # nginx: allow 127.0.0.1 / ::1, deny all — here every client is local,
    # so check the rule is in the rendered config
    conf = open(mstack.dir + '/nginx/nginx.conf').read()
    block = conf[conf.index('location = /metrics'):]
    block = block[:block.index('}')]
    assert 'allow 127.0.0.1;' in block and 'deny all;' in block
    assert_error(requests.post(mstack.base + '/metrics', timeout=5), 405)
