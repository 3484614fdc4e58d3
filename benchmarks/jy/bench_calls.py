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


def measure(name, fn, n=N):
    for _ in xrange(WARM):
        fn()
    ts = [0] * n
    for i in xrange(n):
        t = System.nanoTime()
        fn()
        ts[i] = System.nanoTime() - t
    ts.sort()
    print 'FIG %s %.1f %.1f' % (name, ts[n // 2] / 1000.0, ts[n * 99 // 100] / 1000.0)
    sys.stdout.flush()


def codec_only():
    env = {'v': 1, 'id': 5, 'op': 'call', 'token': 'x' * 43, 'timeout': 30.0,
           'target': 'operator:add', 'args': [1, 2]}
    reply = codec.encode({'id': 5, 'ok': True, 'value': 3, 'stdout': '', 'stderr': '',
                          'worker': 1, 'ms': 0.01})
    measure('jython_codec_encode_request', lambda: codec.encode_request(env))
    measure('jython_codec_decode_reply', lambda: codec.decode(reply))


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


def library(transport):
    harness.save_project(TRANSPORT=transport)
    assert python3.call('operator:add', [1, 2]) == 3
    measure('python3_call_%s' % transport, lambda: python3.call('operator:add', [1, 2]))
    measure('python3_ping_%s' % transport, lambda: python3.ping())
    python3.close()


codec_only()
bare_py4j()
bare_zmq()
for tr in json.loads(os.environ.get('BENCH_TRANSPORTS', '["py4j", "zmq"]')):
    library(tr)
print 'DONE'
