"""Fixtures shared by the integration tests: real Dask clusters on loopback
(``dask_cluster.py``), started only by the tests that ask for them."""

from __future__ import annotations

import pytest


def _cluster(workers: int, log_dir):
    from dask_cluster import Cluster

    cluster = Cluster(workers=workers, log_dir=log_dir)
    try:
        yield cluster.start()
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A scheduler and two workers, shared by a module's tests."""
    yield from _cluster(2, tmp_path_factory.mktemp("dask"))


@pytest.fixture
def solo_cluster(tmp_path):
    """A scheduler and one worker of the test's own, for tests that kill or stop them."""
    yield from _cluster(1, tmp_path)
