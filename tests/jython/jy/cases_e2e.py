"""End-to-end Jython cases: the python3 library (loaded as Ignition loads it) against a real
sidecar with real workers, through each transport in PY3_TRANSPORTS (default py4j and zmq).

Run by test_e2e_jython.py, which serves the CTL requests (stop/start the sidecar, breaker).
The cases run in file order; the sidecar-down case is last.
"""
import datetime
import decimal
import os
import threading
import time

import jarray
import java.lang
import java.math
import java.net
import java.util
from java.lang import Class as JClass
from java.util.concurrent import CountDownLatch, TimeUnit

import harness
from harness import ctl, raises, save_project
from ignition_double import DoubleDataset

TRANSPORTS = os.environ.get('PY3_TRANSPORTS', 'py4j,zmq').split(',')
SYSTEM = harness.SYSTEM


def p3():
    return harness.MODULES['python3']


def each_transport(fn):
    """Runs fn(transport) for every transport, after a simulated save selecting it."""
    for tr in TRANSPORTS:
        save_project(TRANSPORT=tr)
        try:
            fn(tr)
        except AssertionError, e:
            raise AssertionError('[%s] %s' % (tr, e))


def sample_dataset():
    cls = JClass.forName
    return DoubleDataset(
        ['id', 'name', 'temp', 'when'],
        [cls('java.lang.Integer'), cls('java.lang.String'), cls('java.lang.Double'),
         cls('java.util.Date')],
        [[1, u'pump', 20.5, java.util.Date(1700000000123)],
         [2, u'valve', -1.0, java.util.Date(1700000060000)]])


class FakePyDataSet(object):
    """Like Ignition's PyDataSet: wraps a dataset, exposes it through getUnderlyingDataset."""
    def __init__(self, ds):
        self._ds = ds

    def getUnderlyingDataset(self):
        return self._ds


def setup_module():
    save_project()
    harness.BASELINE = None


# --------------------------------------------------------------------------- done-when


def test_mean_and_dataset_round_trip():
    def case(tr):
        v = p3().call('statistics:mean', [[1, 2, 3]])
        assert v == 2 and isinstance(v, int), repr(v)
        ds = p3().call('jyhelpers:echo', [sample_dataset()])
        assert list(ds.getColumnNames()) == ['id', 'name', 'temp', 'when'], ds
        assert ds.getRowCount() == 2
        assert ds.getValueAt(1, 1) == 'valve'
        assert ds.getValueAt(0, 3).getTime() == 1700000000123
    each_transport(case)


# --------------------------------------------------------------------------- types


def test_round_trip_every_type():
    dt_naive = datetime.datetime(2023, 11, 14, 22, 13, 20, 123000)
    values = [
        (None, None), (True, True), (False, False), (0, 0), (-1, -1), (2 ** 31, 2 ** 31),
        (2 ** 63 - 1, 2 ** 63 - 1), (-2 ** 63, -2 ** 63), (2 ** 64 - 1, 2 ** 64 - 1),
        (2 ** 70, 2 ** 70), (-2 ** 70, -2 ** 70), (1.5, 1.5), (-2.25e300, -2.25e300),
        (u'h\xe9llo \u20ac', u'h\xe9llo \u20ac'), ('plain', u'plain'), (u'', u''),
        ([1, [2, [3]]], [1, [2, [3]]]), ((1, 'a'), [1, u'a']),
        ({'a': 1, 'b': {'c': [None]}}, {u'a': 1, u'b': {u'c': [None]}}),
        (java.util.ArrayList([1, 2]), [1, 2]),
    ]
    m = java.util.LinkedHashMap()
    m.put('k', 7)

    def case(tr):
        for sent, expected in values:
            got = p3().call('jyhelpers:echo', [sent])
            assert got == expected and type(got) == type(expected) or \
                (got == expected and isinstance(expected, (int, long))), \
                'sent %r got %r (%s)' % (sent, got, type(got))
        assert p3().call('jyhelpers:echo', [m]) == {u'k': 7}
        b = p3().call('jyhelpers:echo', [jarray.array([0, 1, 127, -128, -1], 'b')])
        assert b.typecode == 'b' and list(b) == [0, 1, 127, -128, -1], b
        b2 = p3().call('jyhelpers:echo', [bytearray('\x00\xff')])
        assert list(b2) == [0, -1], b2
        d = p3().call('jyhelpers:echo', [java.util.Date(1700000000123)])
        assert isinstance(d, java.util.Date) and d.getTime() == 1700000000123, d
        d2 = p3().call('jyhelpers:echo', [dt_naive])
        assert isinstance(d2, java.util.Date) and d2.getTime() == 1700000000123, d2
        bd = p3().call('jyhelpers:echo', [java.math.BigDecimal('12.50')])
        assert isinstance(bd, java.math.BigDecimal) and bd.toString() == '12.50', bd
        bd2 = p3().call('jyhelpers:echo', [decimal.Decimal('-0.001')])
        assert bd2.toString() == '-0.001', bd2
        bi = p3().call('jyhelpers:echo', [java.math.BigInteger('1' + '0' * 30)])
        assert bi == 10 ** 30, bi
        # What the worker saw: the documented CPython types.
        seen = p3().call('jyhelpers:describe', [[
            java.util.Date(0), dt_naive, java.math.BigDecimal('1.5'), 2 ** 70,
            jarray.array([1], 'b'), sample_dataset(), FakePyDataSet(sample_dataset()),
            {'k': (1,)}, u'x', 1.0, True, None]])
        assert seen == ['datetime(UTC)', 'datetime(UTC)', 'Decimal', 'int', 'bytes', 'Dataset',
                        'Dataset', {u'k': ['int']}, 'str', 'float', 'bool', 'NoneType'], seen
    each_transport(case)


def test_dataset_to_pandas_and_back():
    def case(tr):
        out = p3().call('jyhelpers:scale_frame', [sample_dataset(), 2])
        assert list(out.getColumnNames()) == ['id', 'name', 'temp', 'when', 'temp_x'], out
        assert out.getRowCount() == 2
        assert out.getValueAt(0, 4) == 41.0 and out.getValueAt(1, 4) == -2.0
        assert out.getValueAt(0, 1) == 'pump'
        assert isinstance(out.getValueAt(0, 3), java.util.Date)
        assert out.getValueAt(0, 3).getTime() == 1700000000123, out.getValueAt(0, 3)
        out2 = p3().call('jyhelpers:scale_frame', [FakePyDataSet(sample_dataset()), 3])
        assert out2.getValueAt(1, 4) == -3.0
    each_transport(case)


def test_numpy_values_become_plain():
    def case(tr):
        v = p3().call('jyhelpers:numpy_values')
        assert v == {u'i': 5, u'f': 1.5, u'arr': [0, 1, 2], u'm': [[1.0, 0.0], [0.0, 1.0]]}, v
    each_transport(case)


def test_execute_full_ping_health_diagnostics():
    def case(tr):
        assert p3().execute('x * 2', {'x': 21}) == 42
        r = p3().executeFull("print('hi'); result = len(s)", {'s': u'abc'}, timeout=5000)
        assert r['value'] == 3 and r['stdout'] == 'hi\n', r
        assert isinstance(r['worker'], int) and r['duration'] >= 0, r
        assert p3().ping()['state'] == 'running'
        h = p3().health()
        assert h['status'] in ('HEALTHY', 'DEGRADED'), h['status']
        assert 'workers' in p3().diagnostics('help')
    each_transport(case)


def test_diagnostics_commands():
    def case(tr):
        p3().execute('1 + 1')
        h = p3().diagnostics('health')
        assert h['report'].startswith('=== Python3 Process Pool Health Report ==='), h['report']
        assert 'Health Score:' in h['report'] and h['pool_size'] == 2, h
        calls = p3().diagnostics('history', limit=5)['calls']
        assert calls and calls[-1]['what'] == '1 + 1' and calls[-1]['outcome'] == 'ok', calls
        threads = p3().diagnostics('threads')
        assert threads['workers'] and 'read_frame' in threads['workers'][0]['stack'], threads
        assert 'MiB' in p3().diagnostics('memory')['report']
        assert 'performance' in p3().diagnostics('help')
        e = raises(p3().BadRequest, p3().diagnostics, 'nonsense')
        assert 'nonsense' in str(e), str(e)
        e = raises(p3().BadRequest, p3().diagnostics, 'history', limit=-1)
        assert "'limit'" in str(e), str(e)
    each_transport(case)


# --------------------------------------------------------------------------- errors


def test_user_error_is_python_error():
    def case(tr):
        e = raises(p3().PythonError, p3().call, 'jyhelpers:fail', ['boom'])
        assert e.remoteType == 'ValueError' and 'boom' in e.message, (e.remoteType, e.message)
        assert 'jyhelpers' in e.traceback and 'ValueError' in str(e), e.traceback
        assert isinstance(e, p3().Python3Error)
    each_transport(case)


def _outcomes():
    """What a set of calls gives: values, and errors as (class, text, details)."""
    class Opaque(object):
        pass
    calls = [(p3().call, ('jyhelpers:echo', [[1, 2.5, u'x', None, True, {'a': [1, (2, 3)]},
                                              12345678901234567890, jarray_bytes()]]), {}),
             (p3().call, ('operator:add', [1, 2]), {'timeout': 5000}),
             (p3().execute, ('x * 2', {'x': 21}), {}),
             (p3().call, ('jyhelpers:fail', ['boom']), {}),
             (p3().call, ('jyhelpers:echo', [{'a': [0, Opaque()]}]), {}),
             (p3().call, ('no_colon_here',), {}),
             (p3().call, ('operator:add', [1, 2]), {'pool': 'gpu'}),
             (p3().ping, (), {})]
    out = []
    for fn, args, kwargs in calls:
        try:
            value = fn(*args, **kwargs)
            if fn is p3().ping:
                value = sorted(value)  # its uptime differs
            out.append(('value', _plain(value)))
        except p3().Python3Error, e:
            details = dict(e.details)
            details.pop('worker', None)
            out.append((type(e).__name__, str(e).split('--- Python 3 traceback')[0],
                        sorted(details.items())))
    full = p3().callFull('operator:add', [1, 2])
    out.append(('full', full['value'], full['stdout'], full['stderr'], full['sidecar']))
    return out


def _plain(value):
    """value with its byte arrays as lists (arrays compare by identity)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return dict((k, _plain(v)) for k, v in value.items())
    if hasattr(value, 'tostring'):
        return list(value)
    return value


def jarray_bytes():
    return jarray.array([1, -2, 127], 'b')


def test_the_helper_jars_path_and_the_jython_path_agree():
    # The same calls, served by the helper jar's Caller (no Jython attempt at all on success)
    # and by the pure-Jython path (a gateway without the jar): same values, same errors.
    def case(tr):
        conn = harness.MODULES['py3sidecar.client']._connection()
        assert conn.caller is not None and conn.sidecars[0].transport.link is not None
        seen = harness.counting_attempts(conn)
        with_jar = _outcomes()
        served = len(seen)
        assert p3().call('operator:add', [1, 2]) == 3 and len(seen) == served, seen
        harness.pure_jython()
        try:
            seen = harness.counting_attempts(conn)
            without = _outcomes()
            assert p3().call('operator:add', [1, 2]) == 3 and seen, 'not the Jython path'
        finally:
            save_project(TRANSPORT=tr)
        assert with_jar == without, (with_jar, without)
        assert with_jar[0][1][-1] == [1, -2, 127] and with_jar[3][0] == 'PythonError', with_jar
        assert with_jar[4][0] == 'TypeConversionError' and with_jar[-1][-1] == 'local', with_jar
    each_transport(case)


def test_timeout_kills_the_call():
    def case(tr):
        t0 = time.time()
        e = raises(p3().Timeout, p3().call, 'time:sleep', [10], timeout=300)
        took = time.time() - t0
        assert 0.25 < took < 5, took
        assert 'timed out' in str(e), e
        assert p3().call('operator:add', [1, 2]) == 3  # the pool serves on
    each_transport(case)


def test_client_side_deadline_when_the_sidecar_is_silent():
    from org.zeromq import ZMQ
    # py4j: a socket that accepts (kernel backlog) and never answers; zmq: a ROUTER that never
    # replies. The library's own deadline must end the call.
    silent = java.net.ServerSocket(0, 50, java.net.InetAddress.getByName('127.0.0.1'))
    ctx = ZMQ.context(1)
    router = ctx.socket(ZMQ.ROUTER)
    router.setLinger(0)
    zport = router.bindToRandomPort('tcp://127.0.0.1')
    try:
        def case(tr):
            # a JeroMQ ROUTER speaks NULL (ZMTP/2.0): the JeroMQ transport reaches it
            save_project(TRANSPORT=tr, PY4J_PYTHON_PORT=silent.getLocalPort(),
                         ZMQ_ENDPOINT='tcp://127.0.0.1:%d' % zport, TOKEN='t', ZMQ_MECHANISM='null',
                         DEFAULT_TIMEOUT_MS=1000, CLIENT_GRACE_MS=200)
            t0 = time.time()
            e = raises(p3().Timeout, p3().call, 'operator:add', [1, 2], timeout=300)
            took = time.time() - t0
            assert took < 3.0, took
            assert e.details.get('client_side'), e.details
        each_transport(case)
    finally:
        silent.close()
        router.close()
        ctx.term()
        save_project()


def test_worker_crash_is_worker_crashed():
    def case(tr):
        e = raises(p3().WorkerCrashed, p3().execute, 'import os; os._exit(3)')
        assert e.details.get('exit_code') == 3, e.details
        assert 'crashed' in str(e), e
        assert p3().call('operator:add', [2, 2]) == 4
    each_transport(case)


def test_poison_request_is_quarantined():
    def case(tr):
        code = 'import os\nos._exit(5)  # poison via %s' % tr  # one fingerprint per transport
        for _ in range(2):  # python3.quarantine.crashes (default 2)
            e = raises(p3().WorkerCrashed, p3().execute, code, {'n': 1})
            assert e.details.get('exit_code') == 5, e.details
        e = raises(p3().Quarantined, p3().execute, code, {'n': 1})
        assert isinstance(e, p3().Python3Error) and e.kind == 'quarantined', e
        assert 'quarantined' in str(e) and e.fingerprint and e.retryAfter > 0, (str(e), e.details)
        assert p3().call('operator:add', [2, 3]) == 5  # everyone else is served
        cleared = ctl(cmd='quarantine', action='clear', fingerprint=e.fingerprint)
        assert cleared == [e.fingerprint], cleared
        raises(p3().WorkerCrashed, p3().execute, code, {'n': 1})  # lifted: it runs again
        ctl(cmd='quarantine', action='clear')
    each_transport(case)


def test_bad_requests():
    def case(tr):
        e = raises(p3().BadRequest, p3().call, 'no_colon_here')
        assert 'target' in str(e), e
        e = raises(p3().BadRequest, p3().call, 'operator:add', [1, 2], timeout=10 * 3600 * 1000)
        assert 'timeout' in str(e), e
        e = raises(p3().TypeConversionError, p3().call, 'jyhelpers:echo',
                   [{'a': [0, java.lang.Thread()]}])
        assert "args[0]['a'][1]" in str(e) and 'java.lang.Thread' in str(e), e
        e = raises(p3().BadRequest, p3().call, 'operator:add', [1, 2], timeout=0)
    each_transport(case)


def test_named_pool_per_call():
    def case(tr):
        side = p3().execute("import os; os.environ.get('POOL_ROLE')", pool='side')
        assert side == u'side', side
        assert p3().execute("import os; os.environ.get('POOL_ROLE')") is None
        assert p3().call('operator:add', [1, 2], pool='side') == 3
        full = p3().callFull('operator:mul', [6, 7], pool='side')
        assert full['value'] == 42, full
        e = raises(p3().BadRequest, p3().call, 'operator:add', [1, 2], pool='gpu')
        assert "no pool named 'gpu'" in str(e) and 'side' in str(e), e
        box = []
        latch = CountDownLatch(1)

        def done(value):
            box.append(value)
            latch.countDown()
        p3().callAsync('operator:sub', [5, 2], onSuccess=done, pool='side')
        assert latch.await(10, TimeUnit.SECONDS) and box == [3], box
    each_transport(case)


def test_wrong_token_is_unauthorized():
    def case(tr):
        save_project(TRANSPORT=tr, TOKEN='not-the-token')
        e = raises(p3().Unauthorized, p3().call, 'operator:add', [1, 2])
        assert 'token' in str(e), e
    try:
        each_transport(case)
    finally:
        save_project()


def test_circuit_open():
    def case(tr):
        ctl(cmd='breaker', command='open')
        try:
            e = raises(p3().CircuitOpen, p3().call, 'operator:add', [1, 2])
            assert 'circuit open' in str(e) and 'retry_after' in e.details, (str(e), e.details)
        finally:
            ctl(cmd='breaker', command='close')
        assert p3().call('operator:add', [1, 2]) == 3
    each_transport(case)


def test_overloaded_when_the_queue_is_full():
    def case(tr):
        errors = []

        def sleeper():
            try:
                p3().call('time:sleep', [0.5])
            except Exception, e:
                errors.append(e)
        # 2 workers busy + 4 queued = the queue is full (blocking calls from 6 gateway threads).
        threads = [threading.Thread(target=sleeper) for _ in range(6)]
        for t in threads:
            t.start()
        deadline = time.time() + 5

        def full():
            pool = p3().health()['pool']
            return pool['workers_by_state']['busy'] >= 2 and pool['queue']['length'] >= 4
        while not full():
            assert time.time() < deadline, 'the pool never filled up'
            time.sleep(0.01)
        e = raises(p3().Overloaded, p3().call, 'operator:add', [1, 2])
        assert 'overloaded' in str(e), e
        for t in threads:
            t.join(10)
        assert not [t for t in threads if t.isAlive()], 'calls hung'
        assert not errors, errors
    each_transport(case)


# --------------------------------------------------------------------------- threads, async


def test_async_callbacks():
    def case(tr):
        latch = CountDownLatch(2)
        got = {}

        def ok(v):
            got['value'] = v
            got['thread'] = java.lang.Thread.currentThread().getName()
            latch.countDown()

        def err(e):
            got['error'] = e
            latch.countDown()
        caller = java.lang.Thread.currentThread().getName()
        f = p3().callAsync('operator:mul', [6, 7], onSuccess=ok, onError=err)
        p3().executeAsync('1/0', onSuccess=ok, onError=err)
        assert f is not None
        assert latch.await(10, TimeUnit.SECONDS), got
        assert got['value'] == 42 and got['thread'] != caller, got
        assert isinstance(got['error'], p3().PythonError), got
        assert got['error'].remoteType == 'ZeroDivisionError', got['error'].remoteType
    each_transport(case)


def test_concurrent_calls_from_many_threads():
    def case(tr):
        results = {}
        failures = []

        def work(n):
            try:
                for i in range(20):
                    v = p3().call('operator:add', [n * 1000, i])
                    if v != n * 1000 + i:
                        failures.append((n, i, v))
                results[n] = True
            except Exception, e:
                failures.append((n, repr(e)))
        # 6 threads: 2 workers + a queue of 4 hold them all (more would be `overloaded`).
        threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not [t for t in threads if t.isAlive()], 'threads hung'
        assert not failures and len(results) == 6, failures
    each_transport(case)


# --------------------------------------------------------------------------- reload


def test_reload_leaks_no_threads_or_sockets():
    def warm():
        for tr in TRANSPORTS:
            save_project(TRANSPORT=tr)
            assert p3().call('operator:add', [1, 1]) == 2
            latch = CountDownLatch(1)
            p3().callAsync('operator:add', [1, 1], onSuccess=lambda v: latch.countDown())
            assert latch.await(10, TimeUnit.SECONDS)
    warm()
    threads_before, sockets_before = harness.threads(), harness.sockets()
    for _ in range(4):
        warm()
    # The last save's connection is open (it is the one in use); all earlier ones are closed.
    deadline = time.time() + 5
    while True:
        threads_after, sockets_after = harness.threads(), harness.sockets()
        if len(threads_after) <= len(threads_before) and sockets_after[0] <= sockets_before[0]:
            break
        assert time.time() < deadline, ('leak: threads %s -> %s, sockets %s -> %s'
                                        % (threads_before, threads_after, sockets_before,
                                           sockets_after))
        time.sleep(0.05)
    assert sockets_after[1] == 0, 'the gateway must not listen on any port: %s' % (sockets_after,)
    p3().close()


# --------------------------------------------------------------------------- health poll, down/up


def _tags():
    folder = '[default]Python3Sidecar'
    return dict((p[len(folder) + 1:], v) for p, v in SYSTEM.tag.values.items()
                if p.startswith(folder + '/'))


def test_health_poll_writes_tags():
    save_project()
    poll = harness.MODULES['py3sidecar.healthpoll']
    values = poll.run()
    tags = _tags()
    assert values is not None and tags['Reachable'] is True, tags
    assert tags['Status'] in ('HEALTHY', 'DEGRADED'), tags
    assert tags['WorkersTotal'] >= 1 and tags['QueueLength'] == 0, tags
    assert tags['BreakerState'] == 'closed', tags
    assert tags['Pools'].startswith('primary=%s ' % tags['Status']), tags
    assert isinstance(tags['LastPoll'], java.util.Date)
    # the monitoring block: calls served just before (the other cases) show as a rate and a p99
    assert tags['AlertLevel'] == 'OK' and tags['AlertsActive'] == 0, tags
    assert tags['CallsPerSecond'] > 0 and tags['LatencyP99Ms'] >= tags['LatencyP50Ms'] > 0, tags
    created = len(SYSTEM.tag.configured)
    poll.run()
    assert len(SYSTEM.tag.configured) == created, 'tags created twice'


def test_health_poll_summarizes_alerts_and_metrics():
    """The tag values from a health report that carries open alerts (the alert manager's
    records, as the health op reports them) and the monitoring figures."""
    poll = harness.MODULES['py3sidecar.healthpoll']
    report = {'status': 'DEGRADED', 'reason': '1 of 2 workers ready',
              'pool': {'size': {'live': 1}, 'workers': [], 'queue': {'length': 3}},
              'monitoring': {'calls_per_second': 12.5, 'p50_seconds': 0.0004,
                             'p99_seconds': 0.0125,
                             'alerts': {'level': 'CRITICAL', 'active': 2,
                                        'last': {'level': 'CRITICAL',
                                                 'title': 'worker 3 died'}}}}
    values = poll.summarize(report)
    assert values['AlertLevel'] == 'CRITICAL' and values['AlertsActive'] == 2, values
    assert values['LastAlert'] == 'CRITICAL worker 3 died', values
    assert values['CallsPerSecond'] == 12.5 and values['QueueLength'] == 3, values
    assert abs(values['LatencyP50Ms'] - 0.4) < 1e-9 and abs(values['LatencyP99Ms'] - 12.5) < 1e-9
    # an older sidecar without the block: zeros, never an error
    old = poll.summarize({'status': 'HEALTHY', 'pool': {}})
    assert old['AlertLevel'] == '' and old['CallsPerSecond'] == 0.0, old
    assert old['Pools'] == 'primary=HEALTHY 0/0', old


def test_health_poll_shows_every_pool():
    """The Pools tag: the primary first, then each named pool (a Dask cluster by workers)."""
    poll = harness.MODULES['py3sidecar.healthpoll']
    report = {'status': 'DEGRADED',
              'pool': {'status': 'DEGRADED', 'size': {'ready': 1, 'target': 2}},
              'pools': {'ml': {'kind': 'local', 'status': 'HEALTHY',
                               'size': {'ready': 1, 'target': 1}},
                        'cluster': {'kind': 'dask', 'status': 'UNHEALTHY', 'workers': 0}}}
    assert poll.summarize(report)['Pools'] == (
        'primary=DEGRADED 1/2 cluster=UNHEALTHY dask:0 ml=HEALTHY 1/1'), report


def test_sidecar_down_then_back_up():
    """Per transport: a working connection, the sidecar stops (calls fail fast with
    Unavailable, the health poll writes UNREACHABLE and does not raise), the sidecar starts
    again (py4j on another port: found through the connection file) and the SAME connection
    serves again, without a project save."""
    poll = harness.MODULES['py3sidecar.healthpoll']

    def case(tr):
        save_project(TRANSPORT=tr, CONNECT_TIMEOUT_MS=500)
        assert p3().call('operator:add', [1, 1]) == 2
        ctl(cmd='stop')
        for _ in range(2):  # the second one after py4j dropped its stale per-thread socket
            t0 = time.time()
            e = raises(p3().Unavailable, p3().call, 'operator:add', [1, 2])
            assert time.time() - t0 < 2.0, time.time() - t0
            assert 'unavailable' in str(e), e
        del SYSTEM.util.log_records[:]
        values = poll.run()  # never raises
        assert values['Status'] == 'UNREACHABLE' and _tags()['Reachable'] is False, values
        assert _tags()['Status'] == 'UNREACHABLE' and _tags()['LastError'], _tags()
        assert [r for r in SYSTEM.util.log_records if r[1] == 'WARN'], SYSTEM.util.log_records
        ctl(cmd='start')
        assert p3().call('statistics:mean', [[1, 2, 3]]) == 2
        poll.run()
        assert _tags()['Reachable'] is True and _tags()['Status'] != 'UNREACHABLE', _tags()
    each_transport(case)
    p3().close()
