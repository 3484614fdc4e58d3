"""Covers: benchmarks.before_tree, benchmarks.client_driver, benchmarks.cpu_before_after,
benchmarks.relay_floor, benchmarks.throughput_before.

The before/after machinery: each tree's sidecar is called by its own tree's client
in a driver process (9f4ee9f's NULL front refuses today's PLAIN client, which is why), the
ratio is paired per round, a missing before tree is skipped with a message, and both bare
relays echo the request and cost their process CPU. No time is asserted.
"""

from __future__ import annotations

import subprocess

import msgpack
import pytest

from benchmarks import cpu_before_after, throughput_before
from benchmarks.before_tree import BEFORE_COMMIT, TreeClient, TreeSidecar, start_pair, stop_pair
from benchmarks.cpu_per_call import REQUEST, cpu_ns
from benchmarks.relay_floor import KINDS, Relays
from bridge.client import Client
from bridge.protocol import SidecarError
from sidecar.testing import PROJECT_ROOT

CONFIG = {"pool": {"initial-size": 1, "min-size": 1, "max-size": 1, "spares": 0},
          "scaling": {"enabled": False}}


@pytest.fixture(scope="module")
def before_tree(tmp_path_factory):
    """9f4ee9f's tree, extracted as `make before-tree` does (skipped in a clone without it)."""
    has = subprocess.run(["git", "cat-file", "-e", f"{BEFORE_COMMIT}^{{commit}}"],
                         cwd=PROJECT_ROOT, capture_output=True)
    if has.returncode != 0:
        pytest.skip(f"commit {BEFORE_COMMIT} is not in this clone")
    tree = tmp_path_factory.mktemp("before")
    archive = subprocess.Popen(["git", "archive", BEFORE_COMMIT], cwd=PROJECT_ROOT,
                               stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(tree)], stdin=archive.stdout, check=True, timeout=120)
    assert archive.wait(60) == 0
    return str(tree)


def test_each_tree_is_called_by_its_own_client(before_tree):
    sidecars, clients = start_pair(before_tree, CONFIG, workers=1)
    try:
        for name in ("after", "before"):
            start = cpu_ns(clients[name].pid)
            clients[name].calls(200)  # the driver checked operator:add(1, 2) == 3 first
            assert cpu_ns(clients[name].pid) > start, name
        # Today's client (PLAIN) cannot reach 9f4ee9f's NULL front: the before column needs
        # that tree's own client, not ours.
        theirs = sidecars["before"]
        ours = Client(theirs.endpoint, theirs.token, timeout=2,
                      connection_file=str(theirs.connection_file))
        try:
            with pytest.raises(SidecarError):
                ours.call("operator:add", 1, 2)
        finally:
            ours.close()
    finally:
        stop_pair(sidecars, clients)


def test_a_missing_before_tree_is_skipped_with_its_reason(tmp_path, capsys):
    assert cpu_before_after.open_before(str(tmp_path / "absent"), CONFIG) is None
    assert throughput_before.run(str(tmp_path / "absent")) == []
    out = capsys.readouterr().out
    assert out.count("the before column is skipped") == 2 and "git archive" in out, out


def test_a_client_driver_that_cannot_start_says_so(tmp_path):
    sidecar = TreeSidecar(PROJECT_ROOT, CONFIG, workdir=str(tmp_path)).start()
    try:
        with pytest.raises(RuntimeError, match="did not get ready"):
            TreeClient(PROJECT_ROOT, sidecar, workers=5, ready_s=2)  # 5 never come: 1 worker
    finally:
        sidecar.stop()


def test_after_over_before_is_the_median_of_paired_ratios():
    # Round 2's load burst falls on the before tree only: the medians of the us figures would
    # say after < before, the paired ratios say after = 1.1 x before in every quiet round.
    rows = [{"pipe_echo_side": 5.0, "after_sidecar": 110.0, "before_sidecar": 100.0},
            {"pipe_echo_side": 5.0, "after_sidecar": 110.0, "before_sidecar": 300.0},
            {"pipe_echo_side": 5.0, "after_sidecar": 220.0, "before_sidecar": 200.0}]
    for r in rows:
        for process in ("worker", "client"):
            r[f"after_{process}"] = r[f"before_{process}"] = 10.0
    multiples: dict[str, float] = {}
    ratios = cpu_before_after.summarize(rows, multiples)
    assert ratios["sidecar"] == pytest.approx(1.1)
    assert ratios["worker"] == ratios["client"] == 1.0
    assert multiples["after_sidecar"] == pytest.approx(22.0)
    assert multiples["before_sidecar"] == pytest.approx(40.0)


def test_both_bare_relays_echo_the_request_and_cost_their_process_cpu():
    relays = Relays(REQUEST)  # raises unless each relay echoes REQUEST itself
    try:
        figures = relays.measure(300)
        assert set(figures) == {f"relay_{kind}" for kind in KINDS}
        assert all(us > 0 for us in figures.values()), figures
        for relay in relays.relays.values():
            assert msgpack.unpackb(relay.round_trip(), raw=False) == REQUEST
    finally:
        relays.close()
    assert all(relay.proc.poll() == 0 for relay in relays.relays.values())
