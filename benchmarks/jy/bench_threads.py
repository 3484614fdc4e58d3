"""Jython 2.7 gateway threads calling python3.call at once (run by benchmarks/throughput.py).

argv: SECONDS THREADS... Environment: PY3_LIBRARY_DIR, PY3_HARNESS_DIR, PY3_SETTINGS (JSON:
CONNECTION_FILE). For each thread count: prints `READY n`, waits for a line on stdin (the
CPython side measures its own figure meanwhile), runs the window and prints `TPUT n calls_per_s`.
Ends with DONE.
"""
import os
import sys
import threading

from java.lang import System
from java.util.concurrent import CountDownLatch

sys.path.insert(0, os.environ['PY3_HARNESS_DIR'])
import harness  # noqa: E402  (loads the library as Ignition does, with the system.* double)

SECONDS = float(sys.argv[1])
THREADS = [int(a) for a in sys.argv[2:]]
python3 = harness.MODULES['python3']


def call():
    return python3.call('operator:add', [1, 2])


def window(n, seconds):
    counts = [0] * n
    start = CountDownLatch(1)
    state = {'stop': False}

    def loop(i):
        start.await()
        done = 0
        while not state['stop']:
            call()
            done += 1
        counts[i] = done

    ts = [threading.Thread(target=loop, args=(i,)) for i in range(n)]
    for t in ts:
        t.setDaemon(True)
        t.start()
    t0 = System.nanoTime()
    start.countDown()
    # the measuring window itself, not a synchronisation
    java_sleep_ms = int(seconds * 1000)
    from java.lang import Thread
    Thread.sleep(java_sleep_ms)
    state['stop'] = True
    for t in ts:
        t.join(60.0)
    return sum(counts) / ((System.nanoTime() - t0) / 1e9)


harness.save_project(TRANSPORT='py4j')
assert call() == 3
for _ in xrange(3000):  # JIT warm-up, one thread
    call()
window(max(THREADS), min(SECONDS, 0.5))  # and many: every gateway connection is open
for n in THREADS:
    print 'READY %d' % n
    sys.stdout.flush()
    sys.stdin.readline()
    print 'TPUT %d %.1f' % (n, window(n, SECONDS))
    sys.stdout.flush()
python3.close()
print 'DONE'
sys.stdout.flush()
