"""Cost of the Py4J stale-socket check (a ping before a request on a socket idle for
stale_after_ms): python3.call latency back to back vs after an idle gap, same run.
Run by benchmarks/probe_cost.py; prints FIGURE lines through CTL."""
import time

import java.lang

import harness
from harness import ctl, save_project

INFO = {}


def p3():
    return harness.MODULES['python3']


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def timed():
    t0 = java.lang.System.nanoTime()
    assert p3().call('operator:add', [1, 2]) == 3
    return (java.lang.System.nanoTime() - t0) / 1000.0


def test_probe_cost():
    INFO.update(ctl(cmd='info'))
    save_project(TRANSPORT='py4j', CONNECTION_FILE=None, PY4J_PYTHON_PORT=INFO['py4j_port'],
                 TOKEN_FILE=INFO['token_file'])
    for _ in range(3000):  # JIT warm-up
        timed()
    hot = [timed() for _ in range(2000)]
    transport = p3()._connection().sidecars[0].transport
    idle = {True: [], False: []}
    for i in range(INFO['idle_rounds']):
        check = i % 2 == 0  # interleaved: the same machine load for both
        transport.stale_after_ms = 200 if check else 10 ** 9
        time.sleep(0.25)  # the idle gap being measured (past stale_after_ms = 200), not a sync
        idle[check].append(timed())
    ctl(cmd='figure', name='py4j_median_us_back_to_back', value=round(median(hot), 1))
    ctl(cmd='figure', name='py4j_median_us_after_250ms_idle_with_check',
        value=round(median(idle[True]), 1))
    ctl(cmd='figure', name='py4j_median_us_after_250ms_idle_check_off',
        value=round(median(idle[False]), 1))
    p3().close()
