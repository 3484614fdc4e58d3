"""Failover cases: the python3 library with two real sidecars, `a` (local) and `b` (backup).

Run by test_failover_jython.py, which serves the CTL requests (kill/start `a`, figures). Every
wait has a deadline; nothing sleeps to synchronise.
"""
import os
import threading
import time

import java.lang
from java.util.concurrent import CountDownLatch, TimeUnit

import harness
from harness import ctl, raises, save_project

TRANSPORTS = os.environ.get('PY3_TRANSPORTS', 'py4j,zmq').split(',')
INFO = {}


def p3():
    return harness.MODULES['python3']


def setup_module():
    INFO.update(ctl(cmd='info'))


def backup():
    b = INFO['b']
    return {'NAME': 'backup', 'PY4J_HOST': '127.0.0.1', 'PY4J_PYTHON_PORT': b['py4j_port'],
            'ZMQ_ENDPOINT': b['endpoint'], 'TOKEN_FILE': b['token_file']}


def save(tr, by_file=True, **overrides):
    """Local sidecar `a` through its connection file (by_file) or by fixed ports and token
    file; `b` as the one failover sidecar."""
    settings = dict(TRANSPORT=tr, FAILOVER_SIDECARS=[backup()], BREAKER_OPEN_MS=1000,
                    DEFAULT_TIMEOUT_MS=5000, CLIENT_GRACE_MS=1000)
    if not by_file:
        a = INFO['a']
        settings.update(CONNECTION_FILE=None, PY4J_PYTHON_PORT=a['py4j_port'],
                        ZMQ_ENDPOINT=a['endpoint'], TOKEN_FILE=a['token_file'])
    settings.update(overrides)
    save_project(**settings)


def served_by(**kw):
    r = p3().callFull('operator:add', [20, 22], **kw)
    assert r['value'] == 42, r
    return r['sidecar']


def status():
    return dict((s['name'], s) for s in p3().clientStatus())


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def each_transport(fn):
    for tr in TRANSPORTS:
        try:
            fn(tr)
        except AssertionError, e:
            raise AssertionError('[%s] %s' % (tr, e))


def test_settings_are_checked():
    save('py4j', FAILOVER_SIDECARS=[{'NAME': 'x'}])
    e = raises(p3().BadRequest, p3().call, 'operator:add', [1, 2])
    assert 'FAILOVER_SIDECARS[0]' in str(e) and 'PY4J_PYTHON_PORT' in str(e), e
    save('py4j', FAILOVER_SIDECARS=[{'HOST': 'x'}])
    e = raises(p3().BadRequest, p3().call, 'operator:add', [1, 2])
    assert "unknown key 'HOST'" in str(e), e


def test_errors_of_the_call_never_fail_over():
    def case(tr):
        save(tr)
        assert served_by() == 'local'
        e = raises(p3().PythonError, p3().execute, '1/0')
        assert e.details.get('sidecar') == 'local' and 'failover' not in e.details, e.details
        e = raises(p3().Timeout, p3().call, 'time:sleep', [5], timeout=300)
        assert e.details.get('sidecar') == 'local' and 'failover' not in e.details, e.details
        e = raises(p3().BadRequest, p3().call, 'no_colon_here')
        assert e.details.get('sidecar') == 'local', e.details
        st = status()
        assert st['local']['state'] == 'closed' and st['local']['active'], st
        assert st['backup']['state'] == 'closed' and not st['backup']['active'], st
        assert st['backup']['address'].endswith(str(INFO['b']['py4j_port'])) or tr == 'zmq', st
    each_transport(case)


def _load(threads, until_local, until_backup, on_local_done):
    """`threads` gateway threads call in a loop; after `until_local` calls served by `local`,
    on_local_done() runs (kills it); the load stops after `until_backup` calls served by
    `backup`. Returns (served: {name: count}, errors)."""
    served = {}
    errors = []
    lock = threading.Lock()
    local_done = CountDownLatch(until_local)
    backup_done = CountDownLatch(until_backup)
    stop = []

    def work(n):
        i = 0
        while not stop:
            i += 1
            try:
                r = p3().callFull('operator:add', [n * 100000, i])
                if r['value'] != n * 100000 + i:
                    raise AssertionError('wrong value %r' % (r,))
            except Exception, e:
                with lock:
                    errors.append('%s: %s' % (type(e).__name__, e))
                continue
            with lock:
                served[r['sidecar']] = served.get(r['sidecar'], 0) + 1
            (local_done if r['sidecar'] == 'local' else backup_done).countDown()

    ts = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in ts:
        t.start()
    try:
        assert local_done.await(20, TimeUnit.SECONDS), ('local never served', served, errors)
        on_local_done()
        assert backup_done.await(20, TimeUnit.SECONDS), ('backup never served', served, errors)
    finally:
        stop.append(True)
        for t in ts:
            t.join(20)
    assert not [t for t in ts if t.isAlive()], 'calls hung'
    return served, errors


def _open_overhead(tr):
    """Median time for a call to get Unavailable while the (only) sidecar's breaker is open,
    and median time of a call served by the backup while the local breaker is open."""
    save(tr, FAILOVER_SIDECARS=[], BREAKER_OPEN_MS=60000)
    raises(p3().Unavailable, p3().call, 'operator:add', [1, 2])  # the failure that opens it
    assert status()['local']['state'] == 'open', status()
    skip = []
    for _ in range(300):
        t0 = java.lang.System.nanoTime()
        try:
            p3().call('operator:add', [1, 2])
        except p3().Unavailable:
            pass
        skip.append((java.lang.System.nanoTime() - t0) / 1000.0)
    e = raises(p3().Unavailable, p3().call, 'operator:add', [1, 2])
    assert 'client circuit breaker' in str(e), e
    save(tr, BREAKER_OPEN_MS=60000)
    assert served_by() == 'backup'
    via_backup = []
    for _ in range(300):
        t0 = java.lang.System.nanoTime()
        assert served_by() == 'backup'
        via_backup.append((java.lang.System.nanoTime() - t0) / 1000.0)
    save(tr, FAILOVER_SIDECARS=[], CONNECTION_FILE=None, PY4J_PYTHON_PORT=INFO['b']['py4j_port'],
         ZMQ_ENDPOINT=INFO['b']['endpoint'], TOKEN_FILE=INFO['b']['token_file'])
    direct = []
    for _ in range(300):
        t0 = java.lang.System.nanoTime()
        assert served_by() == 'local'  # `b` as the only sidecar
        direct.append((java.lang.System.nanoTime() - t0) / 1000.0)
    return median(skip[50:]), median(via_backup[50:]), median(direct[50:])


def test_kill_the_first_mid_load_then_restart_it():
    """Under load from 4 threads the local sidecar is SIGKILLed: every call is answered (by the
    backup). While its breaker is open a call skips it in microseconds. When it restarts (its
    connection file changes) traffic returns to it."""
    poll = harness.MODULES['py3sidecar.healthpoll']

    def case(tr):
        save(tr)
        assert served_by() == 'local'
        served, errors = _load(4, 100, 100, lambda: ctl(cmd='kill'))
        total = sum(served.values()) + len(errors)
        ctl(cmd='figure', name='%s_answered_when_local_killed' % tr,
            value='%d/%d (local %d, backup %d)' % (sum(served.values()), total,
                                                   served.get('local', 0),
                                                   served.get('backup', 0)))
        assert not errors, (served, errors[:5])
        st = status()
        assert st['local']['state'] in ('open', 'half_open') and st['backup']['active'], st
        values = poll.run()
        assert values['ActiveSidecar'] == 'backup', values
        assert 'local=' in values['Sidecars'] and 'backup=closed' in values['Sidecars'], values

        skip, via_backup, direct = _open_overhead(tr)
        ctl(cmd='figure', name='%s_median_us_unavailable_while_open' % tr, value=round(skip, 1))
        ctl(cmd='figure', name='%s_median_us_failover_call_vs_backup_alone' % tr,
            value='%.1f vs %.1f' % (via_backup, direct))
        assert skip < 1000, skip  # no connect attempt: microseconds, not CONNECT_TIMEOUT_MS

        save(tr, BREAKER_OPEN_MS=60000)
        assert served_by() == 'backup'
        ctl(cmd='start')
        # The connection file changed: the local sidecar is probed at once (no 60 s wait).
        assert served_by() == 'local', status()
        assert status()['local']['state'] == 'closed', status()
        assert poll.run()['ActiveSidecar'] == 'local'
    each_transport(case)


def test_traffic_returns_after_the_open_time():
    """The local sidecar by fixed ports (no connection file): killed, then restarted; calls go
    to the backup until its breaker's open time has passed, then back to it."""
    open_ms = 1500

    def case(tr):
        save(tr, by_file=False, BREAKER_OPEN_MS=open_ms)
        assert served_by() == 'local'
        ctl(cmd='kill')
        assert served_by() == 'backup'
        opened = time.time()
        assert status()['local']['state'] == 'open', status()
        ctl(cmd='start')
        deadline = time.time() + open_ms / 1000.0 + 10
        n = 0
        while True:
            who = served_by()
            n += 1
            if who == 'local':
                break
            assert time.time() < deadline, 'traffic never returned: %s' % status()
        back = time.time() - opened
        assert back >= open_ms / 1000.0 * 0.95, back
        ctl(cmd='figure', name='%s_seconds_until_traffic_returned' % tr, value=round(back, 2))
        st = status()
        assert st['local']['state'] == 'closed' and st['local']['active'], st
    each_transport(case)


def teardown_module():
    p3().close()
