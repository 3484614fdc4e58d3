"""TRANSPORT = 'unix' from Jython (the helper jar's UnixPool) against a real sidecar's
Unix-socket front, a silent TEST DOUBLE of it, and connection files without a Unix endpoint.

Run by test_unix_jython.py; the settings (PY3_SETTINGS) select TRANSPORT 'unix' and the real
sidecar's connection file; CTL 'info' names the other files.
"""
import threading
import time

import java.lang

import harness
from harness import ctl, raises, save_project

INFO = {}


def p3():
    return harness.MODULES['python3']


def setup_module():
    INFO.update(ctl(cmd='info'))
    save_project()


def _transport():
    return harness.MODULES['py3sidecar.client']._connection().sidecars[0].transport


def test_values_both_ways_served_by_the_helper_jar():
    conn = harness.MODULES['py3sidecar.client']._connection()
    assert _transport().name == 'unix' and conn.caller is not None
    seen = harness.counting_attempts(conn)
    assert p3().call('operator:add', [1, 2]) == 3
    assert seen == [], 'a success went the Jython way: %s' % seen
    value = {u'list': [1, 2.5, None, True], u'nested': {u'k': [u'v']}, u'text': u'\u00e9'}
    got = p3().call('builtins:dict', [value])
    assert got[u'list'] == [1, 2.5, None, True] and got[u'text'] == u'\u00e9', got
    big = u'x' * (3 << 20)  # long frames both ways
    assert p3().call('builtins:len', [big]) == len(big)
    assert p3().execute('s * 2', {'s': u'ab' * 200}) == u'ab' * 400
    assert p3().ping()['pid'] > 0
    assert p3().clientStatus()[0]['address'].startswith('unix:'), p3().clientStatus()


def test_large_frames_leave_no_large_native_buffer_on_the_thread():
    from java.lang.management import BufferPoolMXBean, ManagementFactory
    direct = [b for b in ManagementFactory.getPlatformMXBeans(BufferPoolMXBean)
              if b.getName() == 'direct'][0]
    before = direct.getMemoryUsed()
    big = u'y' * (8 << 20)
    assert p3().call('builtins:len', [big]) == len(big)  # 8 MiB out
    assert len(p3().call('operator:mul', [u'z', 8 << 20])) == 8 << 20  # 8 MiB back
    grown = direct.getMemoryUsed() - before  # the JDK's per-thread copies of heap buffers
    assert grown < (1 << 20), 'direct memory grew by %d bytes' % grown


def test_each_error_kind():
    e = raises(p3().PythonError, p3().call, 'operator:truediv', [1, 0])
    assert 'ZeroDivisionError' in str(e), e
    e = raises(p3().Timeout, p3().call, 'time:sleep', [10], timeout=300)
    assert 'timed out' in str(e) and not e.details.get('client_side'), e
    e = raises(p3().WorkerCrashed, p3().execute, 'import os; os._exit(3)')
    assert e.details.get('exit_code') == 3, e.details
    e = raises(p3().BadRequest, p3().call, 'no-colon-here', [])
    assert p3().call('operator:add', [2, 2]) == 4  # the pool and the link serve on


def test_concurrent_threads_each_get_their_own_reply():
    errors, results = [], {}

    def run(i):
        try:
            for j in range(20):
                assert p3().call('operator:add', [i, j]) == i + j
            results[i] = True
        except Exception, e:  # noqa: E999 (Jython 2.7)
            errors.append(e)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and len(results) == 6, errors


def test_self_test_knows_the_unix_transport():
    result = p3().selfTest()
    checks = dict((c['name'], c) for c in result['checks'])
    assert checks['unix link']['ok'] and 'Java 16+' in checks['unix link']['detail'], \
        result['report']
    assert 'jar py4j' not in checks and result['ok'], result['report']


def test_client_side_deadline_closes_the_connection():
    save_project(CONNECTION_FILE=INFO['files']['silent'], DEFAULT_TIMEOUT_MS=300,
                 CLIENT_GRACE_MS=200)
    try:
        before = ctl(cmd='closed-by-client')
        t0 = time.time()
        e = raises(p3().Timeout, p3().call, 'operator:add', [1, 2], timeout=300)
        assert time.time() - t0 < 3.0, time.time() - t0
        assert e.details.get('client_side'), e.details
        link = _transport().link
        assert link.idlePeek() is None, 'a timed-out connection was pooled again'
        deadline = time.time() + 5
        while ctl(cmd='closed-by-client') <= before:  # closed: a late reply reaches no one
            assert time.time() < deadline, 'the timed-out connection was left open'
            time.sleep(0.05)
    finally:
        save_project()


def test_project_saves_leak_no_sockets():
    def warm():
        save_project()
        for _ in range(3):
            assert p3().call('operator:add', [1, 1]) == 2
    warm()
    before = harness.sockets()[0]
    for _ in range(4):
        warm()
    deadline = time.time() + 5
    while harness.sockets()[0] > before:  # each save closes the previous connection's pool
        assert time.time() < deadline, 'leak: sockets %d -> %d' % (before, harness.sockets()[0])
        time.sleep(0.05)


def test_wrong_token_is_unauthorized():
    save_project(TOKEN='not-the-token')
    try:
        e = raises(p3().Unauthorized, p3().call, 'operator:add', [1, 2])
        assert 'token' in str(e), e
    finally:
        save_project()


def test_no_unix_endpoint_names_transport_and_the_fix():
    for name, words in (('disabled', 'python3.bridge.unix.enabled'),
                        ('failing', 'Address in use')):
        save_project(CONNECTION_FILE=INFO['files'][name])
        try:
            e = raises(p3().Unavailable, p3().call, 'operator:add', [1, 2])
            assert "TRANSPORT = 'unix'" in str(e) and words in str(e), (name, e)
        finally:
            save_project()


def test_failover_entry_over_unix_needs_its_connection_file():
    save_project(FAILOVER_SIDECARS=[{'NAME': 'b', 'TRANSPORT': 'unix', 'TOKEN': 't'}])
    try:
        e = raises(p3().BadRequest, p3().call, 'operator:add', [1, 2])
        assert 'CONNECTION_FILE' in str(e) and "'unix'" in str(e), e
    finally:
        save_project()


def test_closing_the_transport_under_a_call_ends_it_as_link_lost():
    # a project save closes the transport while its calls run: over the Unix socket and over
    # ZeroMQ (the jar's PLAIN dealer) alike, LinkLost, never a raw Java exception
    import json
    t = harness.MODULES['py3sidecar.transport']
    token = harness.MODULES['py3sidecar.client']._connection().sidecars[0].token
    zmq_endpoint = json.loads(open(INFO['connection_file']).read())['zmq']['endpoint']
    payload = harness.MODULES['py3sidecar.codec'].encode_request(
        {'v': 1, 'id': 9, 'token': token, 'op': 'call', 'target': 'time:sleep', 'args': [3]})
    for make in (lambda: harness.MODULES['py3sidecar.unixlink'].UnixTransport(
                     _transport().path, 1000),
                 lambda: harness.MODULES['py3sidecar.zmtp'].PlainZmqTransport(
                     zmq_endpoint, token, 1000)):
        tr = make()
        box = []

        def call():
            try:
                box.append(tr.request(payload, 10000))
            except Exception, e:  # noqa: E999 (Jython 2.7)
                box.append(e)
            except java.lang.Throwable, e:
                box.append(e)
        th = threading.Thread(target=call)
        th.start()
        ctl(cmd='busy')
        t0 = time.time()
        tr.close()
        th.join(10)
        assert box and isinstance(box[0], t.LinkLost), (tr.name, box)
        assert time.time() - t0 < 2, (tr.name, time.time() - t0)
        deadline = time.time() + 10
        while ctl(cmd='idle') is False:  # the worker's sleep ends before the next case
            assert time.time() < deadline, 'the worker stayed busy'
            time.sleep(0.05)


def test_restart_between_calls_the_request_goes_out_on_a_fresh_connection():
    save_project()
    assert p3().call('operator:add', [1, 1]) == 2
    pooled = _transport().link.idlePeek()
    assert pooled is not None
    ctl(cmd='restart')  # the pooled connection's peer is gone: its send fails (EPIPE)
    assert p3().call('operator:add', [2, 3]) == 5
    assert _transport().link.idlePeek() is not pooled


def test_sidecar_killed_mid_call_is_sent_true():
    save_project()
    assert p3().call('operator:add', [1, 1]) == 2
    box = []

    def call():
        try:
            box.append(p3().call('time:sleep', [20], timeout=30000))
        except p3().Python3Error, e:
            box.append(e)
    t = threading.Thread(target=call)
    t.start()
    ctl(cmd='kill')  # once the call is running in the worker
    t0 = time.time()
    t.join(10)
    assert box, 'the call did not end when the sidecar was killed'
    assert time.time() - t0 < 5, time.time() - t0
    e = box[0]
    assert isinstance(e, p3().Unavailable), e
    assert e.details.get('sent') is True and 'effects are unknown' in str(e), (e, e.details)
    ctl(cmd='restart')
    deadline = time.time() + 10
    while True:  # the breaker lets a probe through once the connection file changed
        try:
            assert p3().call('operator:add', [1, 2]) == 3
            break
        except p3().Unavailable:
            assert time.time() < deadline, 'the sidecar was not served again after a restart'
            time.sleep(0.1)


def teardown_module():
    p3().close()
