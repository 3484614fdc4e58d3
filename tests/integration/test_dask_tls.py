"""Covers: sidecar.routing.dask_pool.

A ``kind: dask`` pool against a real Dask cluster that speaks tls:// only (a scheduler and a
worker on loopback, a throwaway CA made in tmp_path): calls served over TLS with distributed's
security settings (python3.pools.<name>.tls-ca-file/-cert-file/-key-file); a plain tcp:// client
and a client trusting another CA are never connected, and their calls are `unavailable`."""

from __future__ import annotations

import time

import distributed  # noqa: F401  (the test extra has it: missing, this fails)
import pytest

from bridge import codec
from sidecar.loop import Loop
from sidecar.pool.call import Call
from sidecar.routing.dask_pool import DaskPool, DaskPoolSettings
from sidecar.testing_tls import make_test_certificates

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_test_certificates(tmp_path_factory.mktemp("dask-tls-certs"))


@pytest.fixture(scope="module")
def tls_cluster(certs, tmp_path_factory):
    from dask_cluster import Cluster

    cluster = Cluster(workers=1, log_dir=tmp_path_factory.mktemp("dask-tls"),
                      tls=(certs.ca, certs.cert, certs.key))
    try:
        yield cluster.start()
    finally:
        cluster.close()


def run_until(loop: Loop, done, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    loop.run(until=lambda: done() or time.monotonic() > deadline)


def call(loop: Loop, pool: DaskPool, request: dict, within: float = 30.0) -> dict:
    replies: list[dict] = []
    payload = codec.packb({"v": 1, "id": 1, **request})
    pool.submit(Call(1, payload, 10.0, lambda data: replies.append(codec.unpackb(data)),
                     loop.clock()))
    run_until(loop, lambda: replies, within)
    assert replies, f"no reply within {within}s; snapshot {pool.snapshot()}"
    return replies[0]


def pool_for(address: str, ca, certs, connect_timeout: float = 5.0) -> tuple[Loop, DaskPool]:
    loop = Loop()
    pool = DaskPool(loop, DaskPoolSettings(
        name="cluster", address=address, connect_timeout=connect_timeout,
        tls_ca_file=str(ca), tls_cert_file=str(certs.cert), tls_key_file=str(certs.key)))
    pool.start()
    return loop, pool


def test_calls_are_served_by_a_tls_cluster(tls_cluster, certs):
    assert tls_cluster.address.startswith("tls://")
    loop, pool = pool_for(tls_cluster.address, certs.ca, certs)
    try:
        run_until(loop, lambda: pool.connected, 30)
        assert pool.connected, pool.snapshot()
        reply = call(loop, pool, {"op": "call", "target": "operator:add", "args": [20, 22]})
        assert reply["ok"] and reply["value"] == 42, reply
        assert pool.snapshot()["workers"] == 1
    finally:
        pool.terminate()
        loop.close()


@pytest.mark.parametrize("how", ["plain tcp://", "another CA"])
def test_a_client_without_the_right_tls_is_never_connected(tls_cluster, certs, how):
    if how == "plain tcp://":
        loop = Loop()
        pool = DaskPool(loop, DaskPoolSettings(
            name="cluster", address=tls_cluster.address.replace("tls://", "tcp://"),
            connect_timeout=2.0))
        pool.start()
    else:
        loop, pool = pool_for(tls_cluster.address, certs.other_ca, certs, connect_timeout=2.0)
    try:
        run_until(loop, lambda: pool.last_error, 30)
        assert not pool.connected and pool.last_error, pool.snapshot()
        reply = call(loop, pool, {"op": "call", "target": "operator:add", "args": [1, 2]})
        assert not reply["ok"] and reply["error"]["kind"] == "unavailable", reply
    finally:
        pool.terminate()
        loop.close()
