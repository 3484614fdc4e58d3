"""Reconnect cases: the python3 library with fixed ports (no connection file) against a sidecar
that is restarted under it (SIGKILL or SIGTERM, then started on the same ports).

Run by tests/faults/test_reconnect_jython.py, which serves the CTL requests (restart, count).
The first call of every thread after the restart is answered (never `Unavailable`), and no call
runs twice: each call appends one line to a file in the worker, counted on the CPython side.
"""
import os
import threading

from java.util.concurrent import CountDownLatch, TimeUnit

import harness
from harness import ctl, save_project

TRANSPORTS = os.environ.get('PY3_TRANSPORTS', 'py4j,zmq').split(',')
INFO = {}
THREADS = 4
MARK = "open(ledger, 'a').write(tag + '\\n'); tag"


def p3():
    return harness.MODULES['python3']


def setup_module():
    INFO.update(ctl(cmd='info'))


def save(tr):
    # Fixed ports and token file: what an integrator without a connection file configures.
    save_project(TRANSPORT=tr, CONNECTION_FILE=None, PY4J_PYTHON_PORT=INFO['py4j_port'],
                 ZMQ_ENDPOINT=INFO['endpoint'], TOKEN_FILE=INFO['token_file'],
                 DEFAULT_TIMEOUT_MS=5000, CLIENT_GRACE_MS=1000, CONNECT_TIMEOUT_MS=1000)


def marked(tag):
    return p3().execute(MARK, {'ledger': INFO['ledger'], 'tag': tag})


def _threads_call_after_restart(tr, how):
    """THREADS threads each make a call (opening their own connection), wait while the sidecar
    is restarted, then each makes one more call: every one must be answered."""
    save(tr)
    first = CountDownLatch(THREADS)
    go = CountDownLatch(1)
    results = {}
    lock = threading.Lock()

    def work(n):
        try:
            before = marked('%s-%s-%d-before' % (tr, how, n))
        except Exception, e:
            before = 'ERROR %s: %s' % (type(e).__name__, e)
        first.countDown()
        if not go.await(60, TimeUnit.SECONDS):
            after = 'ERROR no go'
        else:
            try:
                after = marked('%s-%s-%d-after' % (tr, how, n))
            except Exception, e:
                after = 'ERROR %s: %s' % (type(e).__name__, e)
        with lock:
            results[n] = (before, after)

    ts = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for t in ts:
        t.start()
    try:
        assert first.await(30, TimeUnit.SECONDS), 'the first calls did not finish'
        ctl(cmd='restart', how=how)
    finally:
        go.countDown()
        for t in ts:
            t.join(30)
    assert not [t for t in ts if t.isAlive()], 'calls hung'
    want = dict((n, ('%s-%s-%d-before' % (tr, how, n), '%s-%s-%d-after' % (tr, how, n)))
                for n in range(THREADS))
    assert results == want, results
    counts = ctl(cmd='ledger')
    for n in range(THREADS):
        for tag in want[n]:
            assert counts.get(tag) == 1, (tag, counts.get(tag), 'runs')


def test_first_call_per_thread_after_a_sigkill_restart():
    for tr in TRANSPORTS:
        _threads_call_after_restart(tr, 'kill')


def test_first_call_per_thread_after_a_sigterm_restart():
    for tr in TRANSPORTS:
        _threads_call_after_restart(tr, 'term')


def teardown_module():
    p3().close()
