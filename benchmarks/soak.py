"""The soak: 8 callers against a real sidecar while a worker is SIGKILLed every 0.5 s, with
hostile calls mixed in, and exact reply accounting.

Owns: the soak's callers (one raw DEALER socket each, so every reply is seen and counted, never
filtered by a client), the killer, the resource sampler and the verdict. Must not touch: the
sidecar's internals (a real ``py3sidecar serve`` through ``sidecar.testing``; workers are found
as the sidecar's child processes).

    python benchmarks/soak.py            # 600 s, or $PY3SIDECAR_SOAK_SECONDS
    make soak

Each caller sends one request at a time and waits for its reply (deadline: the call's timeout
plus a grace); at the end every socket is drained for late replies. Verdict: zero lost, zero
duplicated, no ``internal``, and the sidecar's RSS, fd count and thread count flat (the last
minute against the first: for runs under 4 minutes, the last quarter against the first).
Error kinds that are the documented answer to a hostile call (``crashed``, ``timeout``,
``user``, ``quarantined``, ``bad_request``, and the refusals ``overloaded``/``unavailable``
while the pool restarts workers) are counted per kind, not failures.
"""
from __future__ import annotations

import collections
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import zmq

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bridge import codec, protocol  # noqa: E402
from bridge.zmq_auth import client_security  # noqa: E402
from sidecar.testing import SidecarProcess  # noqa: E402

CALLERS = 8
KILL_EVERY = 0.5
SAMPLE_EVERY = 2.0
GRACE = 3.0
FAILING_KINDS = {protocol.INTERNAL, "lost", "duplicated", "unmatched"}

# (name, weight, request fields, timeout seconds): what the callers send.
MIX: list[tuple[str, int, dict[str, Any] | None, float]] = [
    ("plain", 60, {"op": "execute", "code": "x * 2", "vars": {"x": 21}}, 5.0),
    ("call", 15, {"op": "call", "target": "statistics:mean", "args": [[1, 2, 3]]}, 5.0),
    ("raises", 6, {"op": "execute", "code": "raise ValueError('soak')"}, 5.0),
    ("loops", 1, {"op": "execute", "code": "while True:\n    pass"}, 0.3),
    ("fd1", 5, {"op": "execute", "code": "import os; os.write(1, b'soak ' * 2000); 1"}, 5.0),
    ("crashes", 1, {"op": "execute", "code": "import os; os._exit(3)"}, 5.0),
    ("malformed", 5, None, 5.0),  # a frame that is not msgpack at all
    ("ping", 5, {"op": "ping"}, 5.0),
]
# Per caller, a worker-killing call at most this often (else a plain call is sent instead):
# with 8 callers, about 2 crashes and 4 timeouts a second on top of the killer's 2 kills.
MIN_INTERVAL = {"crashes": 4.0, "loops": 2.0, "fd1": 0.5}
CONFIG = {"pool": {"initial-size": 4, "min-size": 4, "max-size": 4, "spares": 1,
                   "queue-size": 256, "max-restarts": 600, "restart-window": "10s"},
          # The killer alone replaces 20 workers per 10 s; the shipped limit (30 per 10 s) would
          # pause replacement for most of the run and turn the soak into `unavailable` replies.
          "worker": {"kill-grace": "200ms"},
          "scaling": {"enabled": False},
          # The soak measures the pool and the reply accounting under a kill storm; the
          # breaker's policy is tested on its own (a kill storm would hold it open).
          "circuit-breaker": {"enabled": False},
          "logging": {"level": "WARNING"}}


class Book:
    """Exact accounting: every request id, the replies seen for it, per kind."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent: dict[bytes, str] = {}  # key -> mix name
        self.replies: collections.Counter = collections.Counter()
        self.kinds: collections.Counter = collections.Counter()
        self.by_mix: dict[str, collections.Counter] = collections.defaultdict(
            collections.Counter)

    def answered(self, key: bytes, kind: str) -> None:
        with self.lock:
            self.replies[key] += 1
            if self.replies[key] == 1:
                self.kinds[kind] += 1
                self.by_mix[self.sent[key]][kind] += 1


def _kind(reply: Any) -> str:
    if not isinstance(reply, dict):
        return "unmatched"
    return "ok" if reply.get("ok") else (reply.get("error") or {}).get("kind", "?")


def caller(n: int, endpoint: str, token: str, book: Book, stop: threading.Event,
           ctx: zmq.Context, seed: int, late: list[int]) -> None:
    rng = random.Random(seed)
    names, weights = [m[0] for m in MIX], [m[1] for m in MIX]
    table = {m[0]: m for m in MIX}
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    client_security(token).apply(sock)  # PLAIN at the handshake (bridge/zmq_auth.py)
    sock.connect(endpoint)
    seq = 0
    last_sent: dict[str, float] = {}
    try:
        while not stop.is_set():
            name = rng.choices(names, weights)[0]
            if name in MIN_INTERVAL:
                now = time.monotonic()
                if now - last_sent.get(name, -1e9) < MIN_INTERVAL[name]:
                    name = "plain"
                else:
                    last_sent[name] = now
            _, _, fields, timeout = table[name]
            seq += 1
            rid = f"c{n}-{seq}"
            if fields is None:
                payload = b"\xc1 not msgpack " + rid.encode()
                key = b"None:" + rid.encode()  # the reply cannot name our id
            else:
                env = dict(fields, v=protocol.VERSION, id=rid, token=token, timeout=timeout)
                payload = codec.packb(env)
                key = rid.encode()
            with book.lock:
                book.sent[key] = name
            sock.send(payload)
            deadline = time.monotonic() + timeout + GRACE
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not sock.poll(int(left * 1000)):
                    with book.lock:
                        book.kinds["lost"] += 1
                        book.by_mix[name]["lost"] += 1
                    break
                reply = codec.unpackb(sock.recv())
                rkey = (f"None:{rid}".encode() if isinstance(reply, dict)
                        and reply.get("id") is None else str(reply.get("id")).encode())
                if rkey == key:
                    book.answered(key, _kind(reply))
                    break
                late_key = rkey if rkey in book.sent else None
                if late_key is not None:
                    book.answered(late_key, _kind(reply))  # a late/duplicate reply: counted
                else:
                    late[0] += 1
        drain(sock, book, late)
    finally:
        sock.close(0)


def drain(sock: zmq.Socket, book: Book, late: list[int]) -> None:
    """Any reply still coming after the run is a late or duplicated one: count it."""
    while sock.poll(int(GRACE * 1000)):
        reply = codec.unpackb(sock.recv())
        rkey = str(reply.get("id")).encode() if isinstance(reply, dict) else b"?"
        if rkey in book.sent:
            book.answered(rkey, _kind(reply))
        else:
            late[0] += 1


WORKER_COMMANDS = ("sidecar.worker.main", "sidecar.process.template_server")


def killer(pid: int, stop: threading.Event, kills: list[int]) -> None:
    rng = random.Random(7)
    me = psutil.Process(pid)
    while not stop.wait(KILL_EVERY):
        try:
            # A worker forked from the template shows the template's command line: the killer
            # hits the template too now and then (it is respawned; spawns are plain meanwhile).
            workers = [c for c in me.children() if any(
                name in " ".join(c.cmdline()) for name in WORKER_COMMANDS)]
        except psutil.Error:
            continue
        if workers:
            try:
                os.kill(rng.choice(workers).pid, signal.SIGKILL)
                kills[0] += 1
            except (ProcessLookupError, psutil.Error):
                pass


def sampler(pid: int, stop: threading.Event, samples: list[tuple[float, int, int, int]]) -> None:
    proc = psutil.Process(pid)
    t0 = time.monotonic()
    while True:
        try:
            samples.append((time.monotonic() - t0, proc.memory_info().rss, proc.num_fds(),
                            proc.num_threads()))
        except psutil.Error:
            return
        if stop.wait(SAMPLE_EVERY):
            return


def flatness(samples: list[tuple[float, int, int, int]], seconds: float) -> dict[str, Any]:
    """First vs last window (a minute, or a quarter of a short run): medians and maxima."""
    window = 60.0 if seconds >= 240 else max(seconds / 4, SAMPLE_EVERY)
    first = [s for s in samples if s[0] <= window]
    last = [s for s in samples if s[0] >= samples[-1][0] - window]
    out: dict[str, Any] = {"window_s": window}
    for i, name in ((1, "rss_mib"), (2, "fds"), (3, "threads")):
        scale = 1 / 2**20 if name == "rss_mib" else 1
        out[name] = {"first_median": round(statistics.median(s[i] for s in first) * scale, 1),
                     "last_median": round(statistics.median(s[i] for s in last) * scale, 1),
                     "first_max": round(max(s[i] for s in first) * scale, 1),
                     "last_max": round(max(s[i] for s in last) * scale, 1)}
    rss, fds, thr = out["rss_mib"], out["fds"], out["threads"]
    out["growth"] = [msg for bad, msg in (
        (rss["last_median"] > rss["first_median"] * 1.25 + 8, "RSS grew"),
        (fds["last_max"] > fds["first_max"] + 8, "fds grew"),
        (thr["last_max"] > thr["first_max"] + 2, "threads grew")) if bad]
    return out


def run(seconds: float, workdir: str | None = None) -> dict[str, Any]:
    """Runs the soak for ``seconds``; returns the summary (``verdict`` "pass" or "fail")."""
    workdir = workdir or tempfile.mkdtemp(prefix="py3sidecar-soak-")
    book, stop, late, kills = Book(), threading.Event(), [0], [0]
    samples: list[tuple[float, int, int, int]] = []
    with SidecarProcess(CONFIG, workdir=workdir) as sc:
        ctx = zmq.Context.instance()
        pid = sc.proc.pid
        helpers = [threading.Thread(target=killer, args=(pid, stop, kills), daemon=True),
                   threading.Thread(target=sampler, args=(pid, stop, samples), daemon=True)]
        callers = [threading.Thread(target=caller, args=(n, sc.endpoint, sc.token, book, stop,
                                                         ctx, 1000 + n, late), daemon=True)
                   for n in range(CALLERS)]
        t0 = time.monotonic()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):  # stop early, still count and report
                signal.signal(sig, lambda *_: stop.set())
        for t in helpers + callers:
            t.start()
        stop.wait(seconds)
        stop.set()
        for t in callers:
            t.join(30 + GRACE)
        elapsed = time.monotonic() - t0
        hung = sum(t.is_alive() for t in callers)
        for t in helpers:
            t.join(10)
        alive = sc.proc.poll() is None
    requests = len(book.sent)
    duplicated = sum(n - 1 for n in book.replies.values() if n > 1)
    kinds = dict(book.kinds)
    if duplicated:
        kinds["duplicated"] = duplicated
    if late[0]:
        kinds["unmatched"] = late[0]
    flat = flatness(samples, elapsed)
    failures = [f"{k}: {kinds[k]}" for k in sorted(FAILING_KINDS) if kinds.get(k)]
    failures += flat["growth"]
    if hung:
        failures.append(f"{hung} caller(s) hung")
    if not alive:
        failures.append("the sidecar died")
    return {"seconds": round(elapsed, 1), "callers": CALLERS, "requests": requests,
            "replies": sum(book.replies.values()), "workers_killed": kills[0],
            "kinds": kinds, "by_call": {k: dict(v) for k, v in sorted(book.by_mix.items())},
            "resources": flat, "samples": len(samples), "failures": failures,
            "verdict": "fail" if failures else "pass", "workdir": workdir}


def main() -> int:
    seconds = float(os.environ.get("PY3SIDECAR_SOAK_SECONDS", "600"))
    print(f"soak: {CALLERS} callers, a worker SIGKILLed every {KILL_EVERY:g}s, {seconds:g}s",
          flush=True)
    summary = run(seconds)
    print(json.dumps(summary, indent=2))
    r = summary["resources"]
    print(f"soak {summary['verdict'].upper()}: {summary['requests']} requests, "
          f"{summary['replies']} replies, lost {summary['kinds'].get('lost', 0)}, duplicated "
          f"{summary['kinds'].get('duplicated', 0)}, {summary['workers_killed']} workers killed; "
          f"RSS {r['rss_mib']['first_median']} -> {r['rss_mib']['last_median']} MiB, fds "
          f"{r['fds']['first_max']} -> {r['fds']['last_max']}, threads "
          f"{r['threads']['first_max']} -> {r['threads']['last_max']}"
          + (f"; FAILURES: {summary['failures']}" if summary["failures"] else ""))
    return 0 if summary["verdict"] == "pass" else 1


if __name__ == "__main__":
    sys.exit(main())
