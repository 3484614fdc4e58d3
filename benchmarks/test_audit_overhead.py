"""Covers: sidecar.observability.audit, sidecar.observability.metrics, bridge.zmq_server.

What the audit log (python3.audit) costs a call, measured in the same run: the loop's share
(a MeteredCall answered with and without its AuditEntry, the writer thread running), and trivial
round trips of two real sidecars side by side, one with the audit log and one without, with the
CPU each sidecar process spent per call (its writer thread included)."""

from __future__ import annotations

import statistics
import time

import psutil
import pytest
import zmq

from benchmarks.conftest import FIGURES, LINES, RATIOS, record
from bridge.zmq_server import ZmqFront
from sidecar.observability.audit import AuditFile, AuditLog, AuditWriter
from sidecar.observability.metrics import MeteredCall, Metrics
from sidecar.testing import SidecarProcess

RATIOS.extend([
    ("MeteredCall with vs without its audit line (create + answer)", "audited_answer",
     "unaudited_answer"),
    ("ZeroMQ receive with the peer vs recv_multipart", "zmq_receive_with_peer",
     "zmq_receive_recv_multipart"),
    ("execute('1+1') audit on vs off", "audit_on_execute", "audit_off_execute"),
    ("call('operator:add') audit on vs off", "audit_on_call", "audit_off_call"),
])
METRICS = Metrics()
PAYLOAD = b"\x83\xa2id\x01\xa2ok\xc3\xa5value\x02"
REQUEST = {"v": 1, "id": 1, "op": "execute", "code": "1+1"}
CPU_CALLS = 2000


def _sink(data: bytes) -> None:
    pass


@pytest.fixture(scope="module")
def audit(tmp_path_factory):
    log = AuditLog(tmp_path_factory.mktemp("audit") / "audit.log", queue_size=1 << 20)
    assert log.open()
    yield log
    log.close()


def answer(audit_log: AuditLog | None) -> None:
    call = MeteredCall(METRICS, "execute", 1, b"", 1.0, _sink, 0.0)
    if audit_log is not None:
        call.audited = audit_log.entry(REQUEST, "zmq:tcp://127.0.0.1")
    call.answer(PAYLOAD)


def test_unaudited_answer(benchmark):
    benchmark(answer, None)
    record("unaudited_answer", benchmark)


def test_audited_answer(benchmark, audit):
    benchmark(answer, audit)
    record("audited_answer", benchmark)
    assert audit.dropped == 0


def test_writer_per_line(benchmark, tmp_path):
    """The writer thread's work per line (sha256, JSON, its share of one write per batch),
    measured in this thread: 1000 lines a round, as a busy second would queue them."""
    log = AuditLog(tmp_path / "audit.log")
    writer = AuditWriter(log, AuditFile(log.path, log.max_bytes, log.backups))
    entry = log.entry(REQUEST, "zmq:tcp://127.0.0.1")
    item = (time.time(), None, 0.0001, entry.peer, entry.op, entry.pool, entry.what, None, None)

    def write_batch() -> None:
        log.pending.extend([item] * 1000)
        writer.write_pending()
    benchmark(write_batch)
    writer.file.close()
    if benchmark.stats is not None:
        FIGURES["audit_writer_per_line"] = benchmark.stats.stats.median / 1000


@pytest.fixture(scope="module")
def router_pair():
    context = zmq.Context.instance()
    router, dealer = context.socket(zmq.ROUTER), context.socket(zmq.DEALER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealer.connect(f"tcp://127.0.0.1:{port}")
    front = ZmqFront(None, None, f"tcp://127.0.0.1:{port}", 1 << 20, context)
    yield router, dealer, front
    router.close(0)
    dealer.close(0)


@pytest.mark.parametrize("how", ["recv_multipart", "with_peer"])
def test_zmq_receive(benchmark, router_pair, how):
    """The ZeroMQ front's receive: pyzmq's recv_multipart (before) against ZmqFront.receive,
    which also tells the peer (a Peer-Address read once per connection, then a dict lookup)."""
    router, dealer, front = router_pair

    def one_message_waiting():
        dealer.send(PAYLOAD)
        assert router.poll(5000)
        return (), {}
    receive = (lambda: router.recv_multipart(zmq.NOBLOCK)) if how == "recv_multipart" else (
        lambda: front.receive(router))
    benchmark.pedantic(receive, setup=one_message_waiting, rounds=3000, warmup_rounds=10)
    record(f"zmq_receive_{how}", benchmark)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    config = {"pool": {"initial-size": 1, "min-size": 1, "max-size": 1},
              "scaling": {"enabled": False}}
    on = SidecarProcess(config, workdir=str(tmp_path_factory.mktemp("audit-on"))).start()
    off = SidecarProcess({**config, "audit": {"enabled": False}},
                         workdir=str(tmp_path_factory.mktemp("audit-off"))).start()
    yield on, off
    on.stop()
    off.stop()


def interleaved(pair, fn_of, rounds: int = 15, calls: int = 150) -> tuple[float, float]:
    """Median seconds per call of each sidecar, in alternating blocks (which goes first
    alternates too), so a loaded machine slows both alike."""
    on, off = (fn_of(proc.client(timeout=10)) for proc in pair)
    times: dict[str, list[float]] = {"on": [], "off": []}
    for i in range(rounds):
        order = (("on", on), ("off", off)) if i % 2 else (("off", off), ("on", on))
        for name, fn in order:
            started = time.perf_counter()
            for _ in range(calls):
                fn()
            times[name].append((time.perf_counter() - started) / calls)
    return statistics.median(times["on"]), statistics.median(times["off"])


@pytest.mark.parametrize("op", ["execute", "call"])
def test_round_trip_on_vs_off(pair, op):
    if op == "execute":
        on, off = interleaved(pair, lambda client: lambda: client.execute("1+1"))
    else:
        on, off = interleaved(pair, lambda client: lambda: client.call("operator:add", 1, 2))
    FIGURES[f"audit_on_{op}"], FIGURES[f"audit_off_{op}"] = on, off


def sidecar_cpu_per_call(proc: SidecarProcess, calls: int) -> float:
    client, process = proc.client(timeout=10), psutil.Process(proc.proc.pid)
    before = process.cpu_times()
    for _ in range(calls):
        client.call("operator:add", 1, 2)
    after = process.cpu_times()
    return (after.user + after.system - before.user - before.system) / calls


def test_sidecar_cpu_per_call(pair):
    on, off = pair
    rounds = {"on": [], "off": []}
    for _ in range(5):  # interleaved, so load on the machine hits both alike
        rounds["on"].append(sidecar_cpu_per_call(on, CPU_CALLS))
        rounds["off"].append(sidecar_cpu_per_call(off, CPU_CALLS))
    cpu_on, cpu_off = statistics.median(rounds["on"]), statistics.median(rounds["off"])
    written = on.probe().health()["audit"]
    assert written["dropped"] == 0 and written["written"] >= 5 * CPU_CALLS
    LINES.append(f"audit log: sidecar CPU per call('operator:add') {cpu_on * 1e6:.1f} us on vs "
                 f"{cpu_off * 1e6:.1f} us off (ratio {cpu_on / cpu_off:.2f}x; medians of 5 "
                 f"interleaved rounds of {CPU_CALLS}, the writer thread included)")
    if {"audited_answer", "unaudited_answer", "audit_writer_per_line"} <= FIGURES.keys():
        added = FIGURES["audited_answer"] - FIGURES["unaudited_answer"]
        writer = FIGURES["audit_writer_per_line"]
        LINES.append(f"audit log: the loop's share +{added * 1e6:.2f} us per call (AuditEntry + "
                     f"deque append); the writer thread's {writer * 1e6:.2f} us per line; "
                     f"together {100 * (added + writer) / cpu_off:.1f}% of the sidecar's CPU "
                     f"per trivial call with the audit log off ({cpu_off * 1e6:.1f} us)")
