"""Diagnostic commands (spec 7B): ``health``, ``performance``, ``memory``, ``threads``, ``history``,
``workers``, ``config``, answered by the ``diag`` op (bridge, CLI, HTTP, Jython library).

Owns: the command table, their arguments and reports, the bounded ring of recent calls
(``CallHistory``: op, target or the code's first line, duration, outcome, worker; never the
arguments), and ``Pending``, the answer of a command that waits on workers (a benchmark or a
stack dump): it completes once, by its deadline at the latest. Must not touch: killing or
recycling anyone (``threads`` asks for stacks with SIGUSR1, which the worker's faulthandler
answers without stopping), or the wire format (``Service`` replies).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgpack

from bridge import protocol
from sidecar.observability.emf import own_rss
from sidecar.observability.pool_cards import member_counts
from sidecar.pool.interface import PoolRegistry
from sidecar.pool.local import BUSY, CHECKING, IDLE

COMMANDS = ("health", "performance", "memory", "threads", "history", "workers", "config")


class Pending:
    """A value that arrives later, in the loop thread; ``then(callback)`` gets it once."""

    def __init__(self) -> None:
        self.done = False
        self.value: Any = None
        self.callbacks: list[Callable[[Any], None]] = []

    def then(self, callback: Callable[[Any], None]) -> None:
        if self.done:
            callback(self.value)
        else:
            self.callbacks.append(callback)

    def complete(self, value: Any) -> None:
        if self.done:
            return
        self.done, self.value = True, value
        for callback in self.callbacks:
            callback(value)


def gather(loop: Any, keys: list[Any], start: Callable[[Any, Callable[[Any], None]], None],
           finish: Callable[[dict[Any, Any]], Any], deadline: float,
           unsettled: set[Callable[[], None]] | None = None) -> Pending:
    """Start one part per key; ``finish(results)`` when all answered or at ``deadline``
    (missing parts are absent from ``results``). ``unsettled`` holds ``settle`` meanwhile,
    so a shutdown can answer with what has arrived."""
    pending, results = Pending(), {}
    unsettled = set() if unsettled is None else unsettled

    def settle() -> None:
        unsettled.discard(settle)
        if not pending.done:
            timer.cancel()
            pending.complete(finish(results))

    def part_done(key: Any) -> Callable[[Any], None]:
        def done(value: Any) -> None:
            results[key] = value
            if len(results) == len(keys):
                settle()
        return done

    timer = loop.call_later(deadline, settle)
    unsettled.add(settle)
    for key in keys:
        start(key, part_done(key))
    if not keys:
        settle()
    return pending


def first_line(code: str, limit: int = 80) -> str:
    head = code.lstrip()[:limit * 4]   # never split a megabyte of code for one line
    line = head.split("\n", 1)[0].strip()
    return line if len(line) <= limit else line[:limit - 3] + "..."


_WORKER_KEY = b"\xa6worker"   # msgpack "worker"
_UINTS = {0xCC: 1, 0xCD: 2, 0xCE: 4}


def reply_worker(data: bytes, outcome: str | None) -> Any:
    """The ``worker`` member of an encoded reply, cheaply. A success carries it among its
    first bytes (the pool splices ``id`` and ``worker`` in front of the worker's frame), so
    only the head is looked at, never the value; an error reply is small and decoded whole."""
    try:
        if outcome is not None:
            reply = msgpack.unpackb(data, raw=False, strict_map_key=False)
            return reply.get("worker") if isinstance(reply, dict) else None
        at = data.find(_WORKER_KEY, 0, 80) + len(_WORKER_KEY)
        if at < len(_WORKER_KEY):
            return None   # e.g. a remote sidecar's reply
        head = data[at]
        if head < 0x80:
            return head
        width = _UINTS.get(head)
        return int.from_bytes(data[at + 1:at + 1 + width], "big") if width else None
    except Exception:  # unreadable: the client reports it; the history says unknown
        return None


class CallHistory:
    """The last ``size`` calls; ``track`` wraps a call's reply. Kept as tuples and turned into
    reports only when asked, so a call pays a few microseconds for it."""

    def __init__(self, clock: Callable[[], float], size: int = 200) -> None:
        self.clock = clock
        self.calls: deque[tuple[Any, ...]] = deque(maxlen=size)

    def track(self, request: dict[str, Any], call: Any) -> None:
        """Record ``call`` (a ``sidecar.pool.call.Call``) when it is answered."""
        op = request.get("op")
        # The target, or the head of the code (its first line is taken when asked for).
        what = request.get("target") if op == "call" else (request.get("code") or "")[:400]
        started, wall, reply, append = self.clock(), time.time(), call.sink, self.calls.append

        def recorded(data: bytes) -> None:
            append((wall, op, what, started, self.clock(), call.outcome,
                    reply_worker(data, call.outcome)))
            reply(data)
        call.sink = recorded

    def last(self, n: int) -> list[dict[str, Any]]:
        rows = list(self.calls)[-n:] if n else []
        return [{"time": wall, "op": op, "what": what if op == "call" else first_line(what),
                 "duration_ms": round((ended - started) * 1000, 3), "outcome": outcome or "ok",
                 "worker": worker}
                for wall, op, what, started, ended, outcome, worker in rows]


def health_lines(name: str, size: int, counts: dict[str, int], workers: list[dict[str, Any]],
                 *, named: bool) -> list[str]:
    """One pool's part of the health report (its name shown when there are several)."""
    spares = counts["spares"]
    lines = ([""] if named else []) + ([f"--- Pool {name} ---"] if named else []) + [
        f"Pool Size: {size}" + (f" (+{spares} warm spare{'s' * (spares > 1)})" if spares else ""),
        f"Healthy: {counts['healthy']} of {counts['members']} members"
        + (f", {counts['healthy_spares']} of {spares} spares" if spares else "")]
    for w in workers:
        last = (f"{_iso(time.time() - w['last_used_ago'])} ({w['last_used_ago']:.0f}s ago)"
                if w["last_used_ago"] is not None else "never")
        lines += ["", f"Executor {w['id']} (pid {w['pid']}, {w['role']}, {w['state']}):",
                  f"  Status: {w['status']}", f"  Health Score: {w['score']}",
                  f"  Executions: {w['calls']}", f"  Last Used: {last}"]
    return lines


def _ms(seconds: float | None) -> str:
    return f"{seconds * 1000:.3f} ms" if seconds else "-"


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds).isoformat(timespec="seconds")


class Diagnostics:
    """The ``diag`` command table over the registry of pools (``workers``, ``memory`` and
    ``health`` show every pool; ``performance`` and ``threads`` the primary's workers)."""

    def __init__(self, loop: Any, pools: PoolRegistry, config_view: Callable[[], Any], *,
                 performance_factor: Callable[[], float]) -> None:
        self.loop = loop
        self.pools = pools
        self.pool = pools.primary.local  # the primary's workers: performance, threads
        self.performance_factor = performance_factor
        self.history = CallHistory(self.loop.clock)
        self.unsettled: set[Callable[[], None]] = set()   # commands still waiting on workers
        self.commands: dict[str, Callable[[dict[str, Any]], Any]] = {
            "health": self.health, "performance": self.performance, "memory": self.memory,
            "threads": self.threads, "history": self.call_history,
            "workers": self.workers, "config": lambda args: config_view()}

    def run(self, request: dict[str, Any]) -> Any:
        """The command's value, or a ``Pending`` for those that wait on workers."""
        command = protocol.optional_string(request, "command", "") or "help"
        args = request.get("args") or {}
        if not isinstance(args, dict):
            raise protocol.BadRequest(f"'args' must be a map of options, got "
                                      f"{type(args).__name__}")
        if command == "help":
            return sorted(self.commands)
        if command not in self.commands:
            raise protocol.BadRequest(f"unknown diagnostics command {command!r}; available: "
                                      f"{', '.join(sorted(self.commands))}")
        return self.commands[command](args)

    def close(self) -> None:
        """At shutdown: answer every command still waiting, with what has arrived."""
        for settle in list(self.unsettled):
            settle()

    @staticmethod
    def count_arg(args: dict[str, Any], name: str, default: int, most: int) -> int:
        value = args.get(name, default)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= most:
            raise protocol.BadRequest(f"diagnostics option {name!r} must be a whole number "
                                      f"from 0 to {most}, got {value!r}")
        return value

    def members(self) -> list[Any]:
        return [w for w in self.pool.workers.values() if w.exit is None]

    def workers(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """Every pool's worker table, the primary's first; each row names its ``pool``."""
        return [{**row, "pool": name} for name, rows in self.pools.worker_tables().items()
                for row in rows]

    # ------------------------------------------------------------ health (the spec's report)
    def health(self, args: dict[str, Any]) -> dict[str, Any]:
        lines = ["=== Python3 Process Pool Health Report ===", f"Time: {_iso(time.time())}"]
        pools, rows = {}, []
        for name, pool in self.pools.local_pools():
            workers = pool.snapshot()["workers"]
            # members and warm spares apart (sidecar/observability/pool_cards.py)
            counts = member_counts(workers)
            pools[name] = {"pool_size": pool.target_size, "healthy": counts["healthy"],
                           "healthy_spares": counts["healthy_spares"],
                           "spares": counts["spares"]}
            rows += [{**w, "pool": name} for w in workers]
            lines += health_lines(name, pool.target_size, counts, workers,
                                  named=len(self.pools) > 1)
        primary = pools.get("primary") or {"pool_size": 0, "healthy": 0, "healthy_spares": 0,
                                           "spares": 0}
        return {"report": "\n".join(lines), **primary, "workers": rows, "pools": pools}

    # ------------------------------------------------------------ performance (bench now)
    def performance(self, args: dict[str, Any]) -> Pending:
        rounds = self.count_arg(args, "rounds", 3, 50) or 1
        factor = self.performance_factor()
        idle = [w for w in self.members() if w.state == IDLE]
        skipped = [w for w in self.members() if w.state != IDLE]

        def start(worker: Any, done: Callable[[Any], None]) -> None:
            if not self.pool.probe(worker, "bench", 2.0, done, rounds=rounds):
                done(None)

        def finish(results: dict[Any, Any]) -> dict[str, Any]:
            rows, lines = [], [f"=== Performance ({rounds} rounds, slow above x{factor:g} "
                               "its baseline) ==="]
            for worker in idle:
                reply = results.get(worker)
                seconds = float(reply["seconds"]) if reply else None
                base = worker.bench_baseline or None
                ratio = seconds / base if seconds and base else None
                verdict = ("no answer" if seconds is None else "no baseline yet" if not base
                           else "SLOW" if ratio > factor else "ok")
                rows.append({"worker": worker.id, "pid": worker.pid, "baseline_ms":
                             base and base * 1000, "now_ms": seconds and seconds * 1000,
                             "ratio": ratio, "verdict": verdict})
                lines.append(f"worker {worker.id}: baseline {_ms(base)}, now {_ms(seconds)}, "
                             f"{f'x{ratio:.2f}' if ratio else '-'}: {verdict}")
            for worker in skipped:
                rows.append({"worker": worker.id, "pid": worker.pid, "verdict":
                             f"skipped ({worker.state})"})
                lines.append(f"worker {worker.id}: skipped ({worker.state}: never disturbed)")
            return {"report": "\n".join(lines), "workers": rows}

        return gather(self.loop, idle, start, finish, 3.0, self.unsettled)

    # ------------------------------------------------------------ memory
    def memory(self, args: dict[str, Any]) -> Any:
        """Every pool's workers (``pool`` names each row's); ``top``: asks idle ones."""
        top = self.count_arg(args, "top", 0, 100)
        now = self.loop.clock()
        rows = [{**row, "pool": pool.name} for pool in self.pools for row in pool.memory(now)]
        named = len(self.pools) > 1
        sidecar_rss = own_rss()

        def report(tops: dict[Any, Any]) -> dict[str, Any]:
            lines = [f"=== Memory === sidecar RSS {sidecar_rss >> 20} MiB"]
            for row in rows:
                growth = (f"{row['growth'] / 1048576:+.1f} MiB since its baseline"
                          if row["growth"] is not None else "no baseline yet (no call served)")
                where = f"pool {row['pool']} " if named else ""
                lines.append(f"{where}worker {row['worker']} (pid {row['pid']}): RSS "
                             f"{row['rss'] / 1048576:.1f} MiB, {growth}")
                found = tops.get((row["pool"], row["worker"]))
                if top and found is not None:
                    row["top_allocations"] = found.get("top", [])
                    row["tracing"] = found.get("tracing")
                    if found.get("started"):
                        lines.append("  tracemalloc started now: ask again for the top "
                                     "allocations made from here on")
                    for item in row["top_allocations"]:
                        lines.append(f"  {item['size'] / 1024:9.1f} KiB {item['count']:>7} "
                                     f"blocks  {item['where']}")
                elif top:
                    lines.append(f"  top allocations: skipped ({row['state']}: never disturbed)")
            return {"report": "\n".join(lines), "sidecar_rss": sidecar_rss, "workers": rows}

        if not top:
            return report({})
        local = dict(self.pools.local_pools())
        idle = [(row["pool"], row["worker"]) for row in rows
                if row["state"] == IDLE and row["pool"] in local]

        def start(key: tuple[str, Any], done: Callable[[Any], None]) -> None:
            pool = local[key[0]]
            worker = pool.workers.get(key[1])
            if worker is None or not pool.probe(worker, "tracemalloc", 2.0, done, top=top):
                done(None)

        return gather(self.loop, idle, start, report, 3.0, self.unsettled)

    # ------------------------------------------------------------ threads
    def threads(self, args: dict[str, Any]) -> Pending:
        names = {t.ident: t.name for t in threading.enumerate()}
        own = [{"thread": names.get(ident, f"0x{ident:x}"), "ident": ident,
                "stack": "".join(traceback.format_stack(frame))}
               for ident, frame in sys._current_frames().items()]
        # Only workers past their start-up: before it, SIGUSR1 would end the process.
        workers = [w for w in self.members() if w.state in (IDLE, BUSY, CHECKING)]

        def start(worker: Any, done: Callable[[Any], None]) -> None:
            self.pool.capture_stack(worker, done, log_stack=False)

        def finish(stacks: dict[Any, Any]) -> dict[str, Any]:
            lines = [f"=== Threads of the sidecar (pid {os.getpid()}) ==="]
            for t in own:
                lines += [f"--- {t['thread']}", t["stack"].rstrip()]
            rows = []
            for w in workers:
                stack = stacks.get(w, "")
                rows.append({"worker": w.id, "pid": w.pid, "state": w.state,
                             "stack": stack or "(no dump within the deadline)"})
                lines += [f"=== worker {w.id} (pid {w.pid}, {w.state}) ===",
                          (stack or "(no dump within the deadline)").rstrip()]
            return {"report": "\n".join(lines), "sidecar": own, "workers": rows}

        return gather(self.loop, workers, start, finish, 2.0, self.unsettled)

    # ------------------------------------------------------------ history
    def call_history(self, args: dict[str, Any]) -> dict[str, Any]:
        n = self.count_arg(args, "limit", 20, self.history.calls.maxlen or 200)
        calls = self.history.last(n)
        lines = [f"=== Last {len(calls)} calls (of at most {self.history.calls.maxlen} kept) ==="]
        for c in calls:
            lines.append(f"{_iso(c['time'])} {c['op']:7} {c['duration_ms']:9.2f} ms "
                         f"{c['outcome']:12} worker {c['worker']!s:>4}  {c['what']}")
        return {"report": "\n".join(lines), "calls": calls}
