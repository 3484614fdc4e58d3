"""Network-fault cases: the python3 library (both transports) through a fault-injecting TCP
proxy (tests/faults/proxy.py) in front of a real sidecar, by fixed ports.

Run by tests/faults/test_faults_jython.py, which serves the CTL requests (inject a fault, heal,
check the ledger). Each faulted call ends with its value or a typed python3 error within its
deadline (+ grace + slack); the library reconnects by itself once the network heals; no call
runs twice (the worker appends each call's tag to a ledger file; the CPython side counts).
"""
import os
import time

import harness
from harness import ctl, save_project

TRANSPORTS = os.environ.get('PY3_TRANSPORTS', 'py4j,zmq').split(',')
INFO = {}
TIMEOUT_MS = 1000
GRACE_MS = 500
SLACK_S = 1.5
MARK = "open(ledger, 'a').write(tag + '\\n'); tag"
OUTCOMES = []  # [tag, kind, sent], checked by the CPython side
COUNTER = [0]


def p3():
    return harness.MODULES['python3']


def setup_module():
    INFO.update(ctl(cmd='info'))


def save(tr):
    save_project(TRANSPORT=tr, CONNECTION_FILE=None, PY4J_PYTHON_PORT=INFO['py4j_proxy_port'],
                 ZMQ_ENDPOINT=INFO['zmq_proxy_endpoint'], TOKEN_FILE=INFO['token_file'],
                 DEFAULT_TIMEOUT_MS=TIMEOUT_MS, CLIENT_GRACE_MS=GRACE_MS,
                 CONNECT_TIMEOUT_MS=500, BREAKER_OPEN_MS=300, FAILOVER_SIDECARS=[])


def marked(label):
    """One marked call: (kind, seconds); kind 'ok' or the python3 error's kind."""
    COUNTER[0] += 1
    tag = '%s-%d' % (label, COUNTER[0])
    t0 = time.time()
    try:
        value = p3().execute(MARK, {'ledger': INFO['ledger'], 'tag': tag})
        assert value == tag, (value, tag)
        kind, sent = 'ok', None
    except p3().Python3Error, e:
        kind, sent = e.kind, e.details.get('sent')
    OUTCOMES.append([tag, kind, sent])
    return tag, kind, time.time() - t0


def recovers(label, within_s=10.0):
    deadline = time.time() + within_s
    while True:
        tag, kind, _ = marked(label)
        if kind == 'ok':
            return
        assert time.time() < deadline, 'no successful call %gs after the fault (%s)' % (
            within_s, kind)


def _fault_case(fault, reset_may_miss=False):
    for tr in TRANSPORTS:
        save(tr)
        tag, kind, took = marked('%s-%s-before' % (tr, fault))
        assert kind == 'ok', (tr, kind)
        ctl(cmd='fault', which=tr, fault=fault)
        tag, kind, took = marked('%s-%s' % (tr, fault))
        try:
            assert took <= (TIMEOUT_MS + GRACE_MS) / 1000.0 + SLACK_S, (tr, fault, took)
            if fault == 'latency-small':
                assert kind == 'ok', (tr, kind)
            elif not (reset_may_miss and kind == 'ok'):
                assert kind in ('unavailable', 'timeout'), (tr, fault, kind)
        finally:
            ctl(cmd='heal', which=tr)
        recovers('%s-%s-after' % (tr, fault))
        ctl(cmd='check', outcomes=OUTCOMES, fault=fault, tag=tag, kind=kind, which=tr)


def test_added_latency():
    _fault_case('latency-small')
    _fault_case('latency-large')


def test_reset_mid_request():
    _fault_case('reset-request', reset_may_miss=True)


def test_reset_mid_reply():
    _fault_case('reset-reply', reset_may_miss=True)


def test_half_open():
    _fault_case('half-open')


def test_stall():
    _fault_case('stall')


def teardown_module():
    p3().close()
