"""Covers: bridge.client, bridge.zmq_server, sidecar.pool.local.

The hot path: client -> ZeroMQ -> sidecar -> worker pipe -> back, against
``ProcessPoolExecutor(1).submit(...).result()`` doing the same work in the same run."""

import operator
from concurrent.futures import ProcessPoolExecutor

import pytest

from benchmarks.conftest import FIGURES, record
from benchmarks.measure import per_second


@pytest.fixture(scope="module")
def ppe():
    with ProcessPoolExecutor(1) as executor:
        executor.submit(operator.add, 0, 0).result()  # warm: the worker process exists
        yield executor


@pytest.fixture(scope="module")
def client(bench_sidecar):
    return bench_sidecar.client(timeout=10)


def test_ours_execute(benchmark, client):
    assert benchmark(lambda: client.execute("1+1").value) == 2
    record("ours_execute", benchmark)


def test_ppe_eval(benchmark, ppe):
    assert benchmark(lambda: ppe.submit(eval, "1+1").result()) == 2
    record("ppe_eval", benchmark)


def test_ours_call(benchmark, client):
    assert benchmark(lambda: client.call("operator:add", 1, 2)) == 3
    record("ours_call", benchmark)


def test_ppe_add(benchmark, ppe):
    assert benchmark(lambda: ppe.submit(operator.add, 1, 2).result()) == 3
    record("ppe_add", benchmark)




def test_throughput_2_workers_8_threads(bench_sidecar):
    client = bench_sidecar.client(timeout=10)
    assert client.call("operator:add", 1, 2) == 3
    with ProcessPoolExecutor(2) as executor:
        executor.submit(operator.add, 0, 0).result()
        FIGURES["ppe2_per_s"] = per_second(lambda: executor.submit(operator.add, 1, 2).result(),
                                           seconds=1.0)
    FIGURES["ours_per_s"] = per_second(lambda: client.call("operator:add", 1, 2), seconds=1.0)
    assert FIGURES["ours_per_s"] > 0 and FIGURES["ppe2_per_s"] > 0
