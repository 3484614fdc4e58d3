"""Jython 2.7 timing of python3.call round trips (run by benchmarks/jython_bench.py).

argv: N (timed iterations per figure). Environment: PY3_LIBRARY_DIR, PY3_HARNESS_DIR,
PY3_SETTINGS (JSON: CONNECTION_FILE), BENCH_ECHO_PY4J_PORT, BENCH_ECHO_ZMQ, BENCH_TOKEN.
Prints one line per figure: `FIG name median_us p99_us`.
"""
import json
import os
import sys

import jarray
from java.lang import System

sys.path.insert(0, os.environ['PY3_HARNESS_DIR'])
import harness  # noqa: E402  (loads the library as Ignition does, with the system.* double)

N = int(sys.argv[1])
WARM = max(2000, N // 2)
python3 = harness.MODULES['python3']
codec = harness.MODULES['py3sidecar.codec']


def _fig(name, ts):
    ts.sort()
    n = len(ts)
    print 'FIG %s %.1f %.1f' % (name, ts[n // 2] / 1000.0, ts[n * 99 // 100] / 1000.0)
    sys.stdout.flush()


def measure(name, fn, n=N, floor=None):
    """Median and p99 of fn; with ``floor`` (the bare echo), the two alternate call by call
    and the floor's own figures are printed as ``name~echo``: the ratio then compares
    samples taken in the same milliseconds (this machine's load drifts by 2x within a run)."""
    for _ in xrange(WARM):
        fn()
        if floor is not None:
            floor()
    ts = [0] * n
    fs = [0] * n
    for i in xrange(n):
        t = System.nanoTime()
        fn()
        ts[i] = System.nanoTime() - t
        if floor is not None:
            t = System.nanoTime()
            floor()
            fs[i] = System.nanoTime() - t
    _fig(name, ts)
    if floor is not None:
        _fig(name + '~echo', fs)


ECHO = {}


def echo_floor():
    """The bare py4j echo of a 3-byte payload (kept open for the paired figures)."""
    if not ECHO:
        from py4j import ClientServer
        from java.util.function import BiFunction
        b = ClientServer.ClientServerBuilder().pythonPort(int(os.environ['BENCH_ECHO_PY4J_PORT']))
        b = b.autoStartJavaServer(False).enableMemoryManagement(False)
        ECHO['cs'] = cs = b.authToken(os.environ['BENCH_TOKEN']).build()
        proxy = cs.getPythonServerEntryPoint([BiFunction])
        payload = jarray.array([1, 2, 3], 'b')
        ECHO['fn'] = lambda: proxy.apply('request', payload)
    return ECHO['fn']


def codec_only(suffix=''):
    env = {'v': 1, 'id': 5, 'op': 'call', 'token': 'x' * 43, 'timeout': 30.0,
           'target': 'operator:add', 'args': [1, 2]}
    reply = codec.encode({'id': 5, 'ok': True, 'value': 3, 'stdout': '', 'stderr': '',
                          'worker': 1, 'ms': 0.01})
    measure('jython_codec_encode_request' + suffix, lambda: codec.encode_request(env))
    measure('jython_codec_decode_reply' + suffix, lambda: codec.decode(reply))


def helper(enabled):
    """The Java helper on (figures as they are) or off (figures named *_jython). A project save
    re-runs the codec module (helper on again): call this after save_project."""
    on = codec.use_java_helper(enabled)
    assert on == enabled, 'the helper jar is not on the class path'
    return '' if enabled else '_jython'


def save(enabled, **settings):
    harness.save_project(**settings)
    return helper(enabled)


def canned(enabled):
    """python3.* against a py4j front that answers at once: the library's own cost."""
    suffix = save(enabled, TRANSPORT='py4j', CONNECTION_FILE=None, PY4J_HOST='127.0.0.1',
                  PY4J_PYTHON_PORT=int(os.environ['BENCH_CANNED_PY4J_PORT']),
                  TOKEN=os.environ['BENCH_TOKEN'])
    assert python3.call('operator:add', [1, 2]) == 3
    measure('canned_call_py4j' + suffix, lambda: python3.call('operator:add', [1, 2]),
            floor=echo_floor())
    if not suffix:
        measure('canned_ping_py4j', lambda: python3.ping(), floor=echo_floor())
    python3.close()


def bare_py4j():
    from py4j import ClientServer
    from java.util.function import BiFunction
    b = ClientServer.ClientServerBuilder().pythonPort(int(os.environ['BENCH_ECHO_PY4J_PORT']))
    b = b.autoStartJavaServer(False).enableMemoryManagement(False)
    cs = b.authToken(os.environ['BENCH_TOKEN']).build()
    proxy = cs.getPythonServerEntryPoint([BiFunction])
    payload = jarray.array([1, 2, 3], 'b')
    measure('bare_py4j_echo', lambda: proxy.apply('request', payload))
    cs.shutdown()


def bare_zmq():
    from org.zeromq import ZMQ
    ctx = ZMQ.context(1)
    s = ctx.socket(ZMQ.DEALER)
    s.setLinger(0)
    s.connect(os.environ['BENCH_ECHO_ZMQ'])
    payload = jarray.array([1, 2, 3], 'b')

    def rt():
        s.send(payload, 0)
        s.recv(0)
    measure('bare_jeromq_echo', rt)
    s.close()
    ctx.term()


def library(transport, enabled=True):
    suffix = save(enabled, TRANSPORT=transport)
    assert python3.call('operator:add', [1, 2]) == 3
    floor = echo_floor() if transport == 'py4j' else None
    measure('python3_call_%s%s' % (transport, suffix), lambda: python3.call('operator:add', [1, 2]),
            floor=floor)
    measure('python3_ping_%s%s' % (transport, suffix), lambda: python3.ping(), floor=floor)
    python3.close()


def build_dataset(rows):
    """rows x 5 columns (int, double, double, str, bool) as Ignition holds one: a BasicDataset
    (the test double of tests/jython/java, column-major like Ignition's)."""
    from com.inductiveautomation.ignition.common import BasicDataset
    from java.lang import Class as JClass
    import java.lang
    names = ['id', 'temp', 'pressure', 'name', 'running']
    classes = [JClass.forName(c) for c in ('java.lang.Integer', 'java.lang.Double',
                                           'java.lang.Double', 'java.lang.String',
                                           'java.lang.Boolean')]
    data = jarray.zeros(5, java.lang.Class.forName('[Ljava.lang.Object;'))
    cols = [[java.lang.Integer(i) for i in xrange(rows)],
            [java.lang.Double(i * 0.5) for i in xrange(rows)],
            [java.lang.Double(1000.0 + i % 97) for i in xrange(rows)],
            [u'pump-%d' % (i % 1000) for i in xrange(rows)],
            [java.lang.Boolean(i % 3 == 0) for i in xrange(rows)]]
    for c in xrange(5):
        data[c] = jarray.array(cols[c], java.lang.Object)
    return BasicDataset(names, classes, data)


def measure_ms(name, fn, rounds):
    fn()  # warm-up
    fn()
    ts = []
    for _ in xrange(rounds):
        t = System.nanoTime()
        fn()
        ts.append((System.nanoTime() - t) / 1e6)
    ts.sort()
    print 'FIG %s %.1f %.1f' % (name, ts[len(ts) // 2], ts[-1])
    sys.stdout.flush()


def datasets(rows, enabled, rounds):
    suffix = save(enabled, TRANSPORT='py4j')
    ds = build_dataset(rows)
    n = python3.execute('len(ds.to_pandas())', {'ds': ds}, timeout=120000)
    assert n == rows, n
    back = python3.execute('ds', {'ds': ds}, timeout=120000)
    assert back.getRowCount() == rows and back.getValueAt(rows - 1, 3) == ds.getValueAt(rows - 1, 3)
    summary = python3.execute('ds.to_pandas().describe()', {'ds': ds}, timeout=120000)
    assert summary.getRowCount() == 8, summary.getRowCount()
    measure_ms('dataset_send' + suffix,
               lambda: python3.execute('len(ds.to_pandas())', {'ds': ds}, timeout=120000), rounds)
    measure_ms('dataset_describe' + suffix,
               lambda: python3.execute('ds.to_pandas().describe()', {'ds': ds}, timeout=120000),
               rounds)
    measure_ms('dataset_unchanged' + suffix,
               lambda: python3.execute('ds', {'ds': ds}, timeout=120000), rounds)
    if not suffix:
        measure_ms('dataset_encode_only', lambda: codec.encode_request(
            {'v': 1, 'id': 1, 'op': 'execute', 'code': 'ds', 'vars': {'ds': ds}}), rounds)
        payload = codec.encode_request({'v': 1, 'id': 1, 'op': 'execute', 'code': 'ds',
                                        'vars': {'ds': ds}})
        print 'FIG dataset_request_mib %.2f %.2f' % (len(payload) / 1048576.0,
                                                    len(payload) / 1048576.0)
        from py4j import ClientServer
        from java.util.function import BiFunction
        b = ClientServer.ClientServerBuilder().pythonPort(int(os.environ['BENCH_ECHO_PY4J_PORT']))
        b = b.autoStartJavaServer(False).enableMemoryManagement(False)
        cs = b.authToken(os.environ['BENCH_TOKEN']).build()
        proxy = cs.getPythonServerEntryPoint([BiFunction])
        measure_ms('dataset_echo_py4j', lambda: proxy.apply('request', payload), rounds)
        cs.shutdown()
    python3.close()


codec_only(helper(True))
codec_only(helper(False))
helper(True)
bare_py4j()
bare_zmq()
canned(True)
canned(False)
for tr in json.loads(os.environ.get('BENCH_TRANSPORTS', '["py4j", "zmq"]')):
    library(tr)
library('py4j', False)
ROWS = int(os.environ.get('BENCH_DATASET_ROWS', '0'))
if ROWS:
    datasets(ROWS, True, 7)
    datasets(ROWS, False, 3)
print 'DONE'
