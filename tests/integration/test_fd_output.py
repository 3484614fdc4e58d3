"""Covers: sidecar.process.fd_output, sidecar.process.spawn.

Workers' fd 1/2 output is bounded: rate-limited into the sidecar's log
(``python3.worker.output-log-rate``) or discarded (``python3.worker.fd-output``), counted in
``health``, and the loop keeps serving while a worker floods it."""

import threading
import time

import pytest

from sidecar.testing import SidecarProcess, wait_until

RATE = 16 * 1024
FLOOD = 100 << 20
FLOOD_CODE = ("import os\nchunk = b'fd-flood ' * (1 << 17) + b'\\n'\n"
              f"for _ in range({FLOOD} // len(chunk) + 1):\n"
              "    os.write(1 if _ % 2 else 2, chunk)\n'flooded'")


def start(tmp_path_factory, name: str, worker: dict) -> SidecarProcess:
    proc = SidecarProcess({"pool": {"initial-size": 2, "min-size": 1, "max-size": 2},
                           "worker": worker, "circuit-breaker": {"enabled": False},
                           "scaling": {"enabled": False}},
                          workdir=str(tmp_path_factory.mktemp(name)))
    return proc.start()


def fd_counters(sidecar: SidecarProcess) -> dict:
    return sidecar.pool()["fd_output"]


@pytest.fixture(scope="module")
def logging_sidecar(tmp_path_factory):
    proc = start(tmp_path_factory, "fdlog", {"fd-output": "log", "output-log-rate": RATE})
    yield proc
    proc.stop()


def test_100_mb_to_fd_1_and_2_stays_out_of_the_log_and_is_counted(logging_sidecar):
    sidecar = logging_sidecar
    size_before = sidecar.log_path.stat().st_size
    flood = sidecar.client(timeout=60.0)
    outcome: dict = {}
    started = time.monotonic()
    thread = threading.Thread(target=lambda: outcome.update(value=flood.execute(FLOOD_CODE).value))
    thread.start()
    # While one worker floods its pipe, the loop serves the other worker's calls.
    other = sidecar.client(timeout=10.0)
    served = 0
    while thread.is_alive() and served < 200:
        assert other.call("operator:add", served, 1) == served + 1
        served += 1
    thread.join(60)
    assert outcome.get("value") == "flooded"
    counters = wait_until(lambda: (lambda c: c if c["logged_bytes"] + c["dropped_bytes"]
                                   >= FLOOD else None)(fd_counters(sidecar)), 20,
                          message="every flooded byte logged or counted as dropped")
    elapsed = time.monotonic() - started
    grown = sidecar.log_path.stat().st_size - size_before
    # The bucket lets RATE bytes/s (and one second of burst) through, plus a little for the
    # sidecar's own lines (the dropped-bytes summary): nowhere near the 100 MB written.
    assert grown <= RATE * (elapsed + 2) + 64 * 1024, (grown, elapsed)
    assert counters["dropped_bytes"] >= FLOOD - RATE * (elapsed + 2)
    assert "fd-flood" in sidecar.log()  # what fits the rate is still logged, with its worker
    assert "output-log-rate" in sidecar.log()  # ... and the drop is said, once per interval
    assert sidecar.client().execute("6 * 7").value == 42


def test_fd_output_discard_logs_nothing_and_counts_it(tmp_path_factory):
    sidecar = start(tmp_path_factory, "fddiscard", {"fd-output": "discard"})
    try:
        client = sidecar.client()
        assert client.execute("import os\nos.write(1, b'discarded-bytes\\n' * 65536)\n"
                              "os.write(2, b'discarded-bytes\\n' * 65536)\n1").value == 1
        want = 2 * 16 * 65536
        counters = wait_until(lambda: (lambda c: c if c["dropped_bytes"] >= want else None)(
            fd_counters(sidecar)), 10, message="discarded bytes counted")
        assert counters["logged_bytes"] == 0 and counters["mode"] == "discard"
        assert "discarded-bytes" not in sidecar.log()
        assert client.execute("1 + 1").value == 2
    finally:
        sidecar.stop()
