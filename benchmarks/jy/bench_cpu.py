"""Jython 2.7: CPU of the calling thread per python3.call (run by benchmarks/cpu_per_call.py).

argv: N (calls per figure). Environment: PY3_LIBRARY_DIR, PY3_HARNESS_DIR, PY3_SETTINGS (JSON:
CONNECTION_FILE), BENCH_ECHO_PY4J_PORT, BENCH_TOKEN, BENCH_TRANSPORTS (py4j,zmq,unix: the
library's TRANSPORTs; one the library cannot use, e.g. an older tree's without 'unix', is left
out with a `SKIP transport reason` line).
Each figure: prints `BEGIN name`, waits for `GO` on stdin (the parent reads the sidecar's CPU),
runs N calls, prints `END name N thread_us wall_us` (per call) and waits for `OK`. `ROUND`
after each round, `DONE` at the end. Rounds: 3 (the parent takes the median).
"""
import os
import sys

import jarray
from java.lang import System
from java.lang.management import ManagementFactory

sys.path.insert(0, os.environ['PY3_HARNESS_DIR'])
import harness  # noqa: E402  (loads the library as Ignition does, with the system.* double)

N = int(sys.argv[1])
WARM = max(3000, N)
ROUNDS = 3
python3 = harness.MODULES['python3']
THREADS = ManagementFactory.getThreadMXBean()


def figure(name, fn):
    print 'BEGIN %s' % name
    sys.stdout.flush()
    assert sys.stdin.readline().strip() == 'GO'
    cpu0 = THREADS.getCurrentThreadCpuTime()
    t0 = System.nanoTime()
    for _ in xrange(N):
        fn()
    wall = System.nanoTime() - t0
    cpu = THREADS.getCurrentThreadCpuTime() - cpu0
    print 'END %s %d %.3f %.3f' % (name, N, cpu / 1000.0 / N, wall / 1000.0 / N)
    sys.stdout.flush()
    assert sys.stdin.readline().strip() == 'OK'


def echo():
    from py4j import ClientServer
    from java.util.function import BiFunction
    b = ClientServer.ClientServerBuilder().pythonPort(int(os.environ['BENCH_ECHO_PY4J_PORT']))
    b = b.autoStartJavaServer(False).enableMemoryManagement(False)
    cs = b.authToken(os.environ['BENCH_TOKEN']).build()
    proxy = cs.getPythonServerEntryPoint([BiFunction])
    payload = jarray.array([1, 2, 3], 'b')
    return cs, lambda: proxy.apply('request', payload)


def call():
    return python3.call('operator:add', [1, 2])


transports = [t for t in os.environ.get('BENCH_TRANSPORTS', 'py4j').split(',') if t]
echo_server, echo_call = echo()
for _ in xrange(WARM):
    echo_call()
for transport in list(transports):
    harness.save_project(TRANSPORT=transport)
    try:
        assert call() == 3
    except Exception, e:  # noqa: E999 (Jython 2.7)
        print 'SKIP %s %s' % (transport, str(e).replace('\n', ' ')[:300])
        transports.remove(transport)
        continue
    for _ in xrange(WARM):
        call()
for _ in xrange(ROUNDS):
    figure('py4j_echo', echo_call)
    for transport in transports:
        harness.save_project(TRANSPORT=transport)
        assert call() == 3
        for _ in xrange(500):  # the save re-ran the library: its connection is new
            call()
        figure('jython_%s' % transport, call)
    print 'ROUND'
    sys.stdout.flush()
python3.close()
echo_server.shutdown()
print 'DONE'
sys.stdout.flush()
