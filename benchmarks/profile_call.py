"""Where a trivial call's time goes (issue 10 item 1): ``client.call("operator:add", 1, 2)``
through a real sidecar with one worker, cut into its parts by timestamps taken in the three
processes (client, sidecar, worker) on one clock (``perf_counter_ns``: CLOCK_MONOTONIC).

    .venv/bin/python benchmarks/profile_call.py [--calls 5000] [--short]

The sidecar and worker probes live in ``benchmarks/probes/sitecustomize.py`` (loaded through
PYTHONPATH, inert without PY3SIDECAR_PROFILE_DIR); the client's are wrapped here. Calls are
made one at a time; for each, the milestones are matched in order (each the first stamp of its
kind after the one before, so a health-check ping in between is stepped over), and each part is
the median over the calls of the time between two milestones. The probes' own cost is shown
against a sidecar without them, interleaved in the same run, with ProcessPoolExecutor(1) and a
raw os.pipe round trip as the floors. Prints a Markdown table to paste into docs/performance.md
("Where a call's time goes").

Owns: these figures. Must not touch: the library (the probes wrap it from outside).
"""

from __future__ import annotations

import argparse
import bisect
import json
import operator
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: the checkout's root importable
    sys.path.append(str(Path(__file__).resolve().parent.parent))

import zmq  # noqa: E402

from benchmarks import report, throughput  # noqa: E402
from bridge import codec  # noqa: E402
from sidecar.testing import SidecarProcess  # noqa: E402

PROBES = Path(__file__).resolve().parent / "probes"

# (milestone, the part that ends there, which process spends it)
MILESTONES = (
    ("c.call>", "", ""),
    ("c.encode<", "envelope built and msgpack-encoded", "client"),
    ("c.send<", "handed to libzmq (`send`)", "client"),
    ("s.handler>", "ZeroMQ to the sidecar: I/O threads, loop wake-up, `recv_multipart`",
     "transport"),
    ("s.pipe_write>", "token check, decode, breaker, queue, pick a worker", "sidecar"),
    ("s.pipe_write<", "request written to the worker's pipe", "sidecar"),
    ("w.read<", "pipe to the worker: wake-up, frame read", "transport"),
    ("w.decode<", "request decoded", "worker"),
    ("w.isolation>", "the call run (target resolved, output captured)", "worker"),
    ("w.isolation<", "isolation check (threads, children, limits)", "worker"),
    ("w.encode<", "reply encoded", "worker"),
    ("w.write<", "reply written to the pipe", "worker"),
    ("s.pipe_read<", "pipe to the sidecar: wake-up, frame read", "transport"),
    ("s.splice>", "reply frame to its call (`finish_call`: timers, state)", "sidecar"),
    ("s.splice<", "reply spliced with id and worker (`splice_success`)", "sidecar"),
    ("s.reply>", "call answered: bookkeeping, metrics", "sidecar"),
    ("s.reply<", "reply handed to libzmq (`send_multipart`)", "sidecar"),
    ("c.recv<", "ZeroMQ to the client: I/O threads, poll wake-up, `recv`", "transport"),
    ("c.decode<", "reply decoded", "client"),
    ("c.call<", "back in the caller (breaker permit, checks)", "client"),
)


class ClientProbes:
    """perf_counter_ns stamps around the client's encode, send, receive and decode (wrapping
    ``bridge.codec`` and ``zmq.Socket`` in this process for the measured calls only)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []
        self._saved: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)
        add, stamp = self.events.append, time.perf_counter_ns

        def probe(*args: Any, **kwargs: Any) -> Any:
            add((label + ">", stamp()))
            result = original(*args, **kwargs)
            add((label + "<", stamp()))
            return result

        self._saved.append((owner, name, original))
        setattr(owner, name, probe)

    def __enter__(self) -> ClientProbes:
        self.wrap(codec, "packb", "c.encode")
        self.wrap(codec, "unpackb", "c.decode")
        self.wrap(zmq.Socket, "send", "c.send")
        self.wrap(zmq.Socket, "recv", "c.recv")
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)


def load_events(folder: Path) -> tuple[list[tuple[str, int]], list[str]]:
    events: list[tuple[str, int]] = []
    missing: list[str] = []
    for path in folder.glob("*.json"):
        data = json.loads(path.read_text())
        events += [tuple(e) for e in data["events"]]
        missing += [f"{data['role']}: {m}" for m in data["missing"]]
    return events, sorted(set(missing))


# A milestone in another process than the one before it may come before that one is stamped
# (the reader wakes on the other core while the writer is still returning from its system
# call): it is matched after its cause, the writer's entry stamp, instead. (cause, and the
# milestone to look for the cause after; None: the cause is itself a milestone.)
CAUSES = {"s.handler>": ("c.send>", "c.encode<"), "w.read<": ("s.pipe_write>", None),
          "s.pipe_read<": ("w.write>", "w.encode<"), "c.recv<": ("s.reply>", None)}
MISSED: dict[str, int] = defaultdict(int)  # the milestone a left-out call lacked first


def first_after(stamps: list[int], t: float) -> int | None:
    i = bisect.bisect_left(stamps, t)
    return stamps[i] if i < len(stamps) else None


def parts_per_call(events: list[tuple[str, int]]) -> tuple[list[list[int]], int]:
    """For each call (c.call> .. c.call<), the ns between consecutive milestones (negative
    when two processes overlapped there); calls with a milestone missing are counted and left
    out. The sidecar and worker may stamp after the client is done: their stamps are taken up
    to the end of the next call."""
    by_label: dict[str, list[int]] = defaultdict(list)
    for label, t in events:
        by_label[label].append(t)
    for stamps in by_label.values():
        stamps.sort()
    starts, ends = by_label["c.call>"], by_label["c.call<"]
    calls, skipped = [], 0
    for n, (start, end) in enumerate(zip(starts, ends)):
        bound = ends[n + 1] if n + 1 < len(ends) else float("inf")
        times, previous, seen = [], start, {"c.call>": start}
        for label, _, _ in MILESTONES[1:]:
            search_from: float | None = previous
            if label in CAUSES:
                cause, after = CAUSES[label]
                search_from = seen[cause] if after is None else first_after(
                    by_label.get(cause, []), seen[after])
            found = None if search_from is None else first_after(by_label.get(label, []),
                                                                 search_from)
            if found is None or found > (end if label.startswith("c.") else bound):
                MISSED[label] += 1
                break
            times.append(found - previous)
            previous = seen[label] = found
        if len(times) == len(MILESTONES) - 1:
            calls.append(times)
        else:
            skipped += 1
    return calls, skipped


def profile(calls: int, rounds: int) -> dict[str, Any]:
    probe_dir = Path(tempfile.mkdtemp(prefix="py3sidecar-profile-"))
    saved_env = {k: os.environ.get(k) for k in ("PY3SIDECAR_PROFILE_DIR", "PYTHONPATH")}
    os.environ["PY3SIDECAR_PROFILE_DIR"] = str(probe_dir)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROBES), saved_env["PYTHONPATH"]) if p)
    try:
        probed = SidecarProcess(throughput.pool_config(1))
        probed.start()
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    plain = SidecarProcess(throughput.pool_config(1))
    plain.start()
    probes = ClientProbes()
    try:
        with ProcessPoolExecutor(1) as ppe, report.pipe_floor() as pipe:
            c_probed, c_plain = probed.client(timeout=30), plain.client(timeout=30)
            peers = {"plain": lambda: c_plain.call("operator:add", 1, 2),
                     "ppe": lambda: ppe.submit(operator.add, 1, 2).result(), "pipe": pipe}
            add, stamp = probes.events.append, time.perf_counter_ns
            for _ in range(2000):  # warm-up
                c_probed.call("operator:add", 1, 2)
            totals: dict[str, list[int]] = defaultdict(list)
            per_round = max(1, calls // rounds)
            for _ in range(rounds):  # interleaved: the machine's load falls on all alike
                with probes:
                    for _ in range(per_round):
                        t = stamp()
                        add(("c.call>", t))
                        c_probed.call("operator:add", 1, 2)
                        add(("c.call<", stamp()))
                        totals["probed"].append(stamp() - t)
                for name, fn in peers.items():
                    for _ in range(per_round):
                        t = stamp()
                        fn()
                        totals[name].append(stamp() - t)
    finally:
        probed.stop()
        plain.stop()
    deadline = time.monotonic() + 10
    while len(list(probe_dir.glob("*.json"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # the worker writes its stamps as it exits; a bounded wait for it
    events, missing = load_events(probe_dir)
    per_call, skipped = parts_per_call(events + probes.events)
    return {"per_call": per_call, "skipped": skipped, "missing": missing,
            "totals": {k: statistics.median(v) / 1e3 for k, v in totals.items()},
            "calls": len(totals["probed"])}


def table(result: dict[str, Any]) -> str:
    per_call = result["per_call"]
    if not per_call:
        return "no call had every milestone: " + ", ".join(result["missing"])
    medians = [statistics.median(column) / 1e3 for column in zip(*per_call)]
    total = sum(medians)
    lines = ["| # | part | where | median us | share |", "|---|---|---|---|---|"]
    for i, ((_, part, where), us) in enumerate(zip(MILESTONES[1:], medians), 1):
        lines.append(f"| {i} | {part} | {where} | {us:.1f} | {us / total:.0%} |")
    lines.append(f"| | **sum of the medians** | | **{total:.1f}** | |")
    shares: dict[str, float] = defaultdict(float)
    for (_, _, where), us in zip(MILESTONES[1:], medians):
        shares[where] += us
    t = result["totals"]
    lines += ["", "| by process | median us | share |", "|---|---|---|"]
    lines += [f"| {where} | {us:.1f} | {us / total:.0%} |" for where, us in shares.items()]
    lines += ["", f"Same run, {result['calls']} calls each, interleaved (medians): probed call "
              f"{t['probed']:.1f} us, the same call without probes {t['plain']:.1f} us "
              f"(probe cost {t['probed'] - t['plain']:+.1f} us), ProcessPoolExecutor(1) "
              f"{t['ppe']:.1f} us, a raw os.pipe round trip to a child {t['pipe']:.1f} us. "
              f"{len(per_call)} calls matched, {result['skipped']} left out."]
    if MISSED:
        lines.append("Left out for want of: " + ", ".join(f"{k} ({v})" for k, v in MISSED.items()))
    if result["missing"]:
        lines.append("Probes whose target was not found: " + ", ".join(result["missing"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000, help="timed calls")
    parser.add_argument("--short", action="store_true", help="500 calls (a smoke run)")
    args = parser.parse_args(argv)
    calls = 500 if args.short else args.calls
    result = profile(calls, rounds=5 if args.short else 20)
    print(table(result))
    return 0 if result["per_call"] else 1


if __name__ == "__main__":
    sys.exit(main())
