"""The audit log: one JSON line per call, refusal and operator action, written off the loop.

Owns: the audit file (``python3.audit.file``; "" = ``audit.log`` next to the token), its
rotation by size (``max-size``, ``backups``), the bounded queue between the loop thread and the
writer thread (``queue-size``), what a line holds, and the counts of lines written, dropped
(queue full) and lost (write errors), in health and as metrics. Must not touch: admission (the
service decides what is refused and calls ``record``), the call's answer (``sidecar.pool.call``; a
``sidecar.observability.metrics.MeteredCall`` finishes its ``AuditEntry`` once), sockets, the main
log's handlers.

Data flow::

    loop thread   Service.dispatch: an accepted execute/call -> AuditEntry (references only)
                  MeteredCall.observed -> AuditEntry.finish(outcome, seconds) --+
                  LeanCall.deliver -> call_answered(outcome, seconds, ...) -----+
                  Service.refuse / refuse_quarantined / an operator op -> record -+
                              a bounded deque.append(tuple) <--------------------+
                              (full: dropped and counted, never waited for; the writer is
                              woken only when it sleeps with nothing to do)
    writer thread (AuditWriter): gathers BATCH_DELAY, then each tuple -> sha256 of the code, one
                  JSON line -> AuditFile (logging's RotatingFileHandler: rotated by size,
                  N backups), one write per batch -> disk

Why not logging's QueueHandler/QueueListener: a ``queue.Queue`` takes a lock and notifies per
line and its listener wakes (and takes the GIL from the loop) per line; measured on a trivial
call, the sidecar's CPU per call rose 1.74x with it, against a few percent with the batch
(benchmarks/test_audit_overhead.py). The file side is the stdlib's all the same.

What a line may hold: ``ts`` (ISO 8601, UTC), ``op``, ``pool``, ``target`` (call) or
``code_sha256`` (execute: the hex sha256 of the UTF-8 code), ``command`` (diag, breaker,
quarantine), ``outcome`` (``ok`` or the error kind), ``duration_ms``, ``peer`` (front and
address), ``route``/``project``/``user`` (the message handler's marks, ``routed``). Never the
code, arguments, variables, values or the token. A refusal of a peer that did not authenticate
records ``ts``, ``outcome`` and ``peer`` only: nothing it sent is trusted or kept.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import sys
import threading
import time
from collections import deque
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily

from bridge import protocol
from bridge.connection import connection_file_for

log = logging.getLogger("py3sidecar.audit")

FILE_NAME = "audit.log"
OPERATOR = "operator"  # the op of a console action's line (sidecar/operator/operations.py)
OPERATOR_OPS = ("diag", "breaker", "quarantine")  # audited on success too (ping/health are not)
ROUTED_MARKS = ("route", "project", "user")
TEXT_LIMIT = 200  # characters kept of a target, a pool name or a routed mark
LOG_INTERVAL = 60.0  # seconds between two log lines about lost or dropped audit lines
STOP_WAIT = 5.0  # seconds close() waits for the writer to empty the queue
BATCH_DELAY = 0.05  # seconds the writer gathers lines before it writes them (one write)


quote = encode_basestring_ascii  # a JSON string literal, ASCII only, in C
_second: tuple[float, str] = (-1.0, "")  # the last whole second formatted, and its text


def iso_utc(wall: float) -> str:
    """``2026-12-06T20:34:04.329Z``; the date and time are formatted once per second."""
    global _second
    second, fraction = divmod(wall, 1.0)
    cached = _second  # one read: another writer (a test's) may replace it meanwhile
    if cached[0] != second:
        cached = _second = (second, datetime.fromtimestamp(second, UTC).strftime(
            "%Y-%m-%dT%H:%M:%S"))
    return f"{cached[1]}.{min(int(fraction * 1e6 + 0.5) // 1000, 999):03d}Z"


def _text(value: Any, limit: int = TEXT_LIMIT) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def format_line(item: tuple[Any, ...]) -> str:
    """The JSON line of one queued item (in the writer thread: hashing and JSON happen here).
    Built by hand, every string a peer could choose escaped by json's own C escaper: a line is
    one JSON object on one line whatever was sent (about half the time of ``json.dumps``)."""
    wall, outcome, seconds, peer, op, pool, what, routed, command = item
    parts = [f'{{"ts":"{iso_utc(wall)}"']
    if op == OPERATOR:  # an action of the operator's console (sidecar/operator/operations.py)
        parts.append(f'"op":"{OPERATOR}"')
        if isinstance(pool, str):
            parts.append('"pool":' + quote(pool[:TEXT_LIMIT]))
        parts.append('"command":' + quote(str(command)[:40]))
    elif op in protocol.OPS:  # anything else a client sent is not echoed
        parts.append(f'"op":"{op}"')
        if op in protocol.WORKER_OPS:
            parts.append('"pool":' + quote(_text(pool) or "primary"))
            if op == "call" and isinstance(what, str):
                parts.append('"target":' + quote(what[:TEXT_LIMIT]))
            elif op == "execute" and isinstance(what, str):
                code = what.encode("utf-8", "surrogatepass")
                parts.append(f'"code_sha256":"{hashlib.sha256(code).hexdigest()}"')
        elif isinstance(command, str):
            parts.append('"command":' + quote(command[:40]))
    parts.append('"outcome":' + quote(str(outcome or "ok")))
    if isinstance(seconds, float) and math.isfinite(seconds):
        parts.append(f'"duration_ms":{round(seconds * 1000.0, 3)!r}')
    parts.append('"peer":' + quote(str(peer or "unknown")))
    if isinstance(routed, dict):
        for mark in ROUTED_MARKS:
            value = _text(routed.get(mark))
            if value is not None:
                parts.append(f'"{mark}":' + quote(value))
    return ",".join(parts) + "}"


class AuditFile(RotatingFileHandler):
    """The file, rotated by size; created owner/group-readable only. A failed write is counted
    and logged (at most once a minute), never raised: the sidecar serves on."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.failures = 0
        self.failure_logged_at: float | None = None
        super().__init__(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")

    def _open(self):  # noqa: ANN202 - logging's own signature
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        self.failures += 1
        now = time.monotonic()
        if self.failure_logged_at is None or now - self.failure_logged_at >= LOG_INTERVAL:
            self.failure_logged_at = now
            log.error("cannot write the audit log %s (%s): lines are being lost (counted in "
                      "health as audit.write_errors); free the disk or point python3.audit.file "
                      "elsewhere", self.baseFilename, sys.exc_info()[1])


class AuditWriter(threading.Thread):
    """The writer thread: sleeps until there are lines, gathers them ``BATCH_DELAY``, writes
    them in one go (chunks under the file's max size, so rotation stays by size)."""

    def __init__(self, audit: AuditLog, file: AuditFile) -> None:
        super().__init__(name="py3sidecar-audit", daemon=True)
        self.audit = audit
        self.file = file
        self.stopping = threading.Event()
        self.dropped_logged = 0
        self.dropped_logged_at: float | None = None

    def run(self) -> None:
        audit = self.audit
        while not self.stopping.is_set():
            audit.wake.wait()
            self.stopping.wait(BATCH_DELAY)  # close() cuts the gathering short
            audit.wake.clear()  # before draining: a line queued from now on wakes us again
            self.write_pending()
        self.write_pending()

    def write_pending(self) -> None:
        pending, lines = self.audit.pending, []
        for _ in range(len(pending)):  # what is there now; later lines wait for the next batch
            item = pending.popleft()
            try:
                lines.append(format_line(item))
            except Exception:  # a line that cannot be formatted is lost, never the writer
                log.exception("audit line not written")
                self.file.failures += 1
        limit = self.file.maxBytes
        chunk: list[str] = []
        size = 0
        for line in lines:
            if chunk and limit and size + len(line) + 1 >= limit:
                self.write(chunk)
                chunk, size = [], 0
            chunk.append(line)
            size += len(line) + 1
        if chunk:
            self.write(chunk)
        self.report_drops()

    def write(self, chunk: list[str]) -> None:
        failures = self.file.failures
        self.file.handle(logging.makeLogRecord({
            "msg": "\n".join(chunk), "levelno": logging.INFO, "levelname": "INFO",
            "name": log.name}))
        if self.file.failures == failures:
            self.audit.written += len(chunk)
        else:
            self.file.failures += len(chunk) - 1  # one failure counted per lost line

    def report_drops(self) -> None:
        dropped, now = self.audit.dropped, time.monotonic()
        if dropped != self.dropped_logged and (
                self.dropped_logged_at is None or now - self.dropped_logged_at >= LOG_INTERVAL):
            log.warning("audit log: %d line(s) dropped so far, the writer could not keep up "
                        "(raise python3.audit.queue-size, or check the disk under %s)", dropped,
                        self.file.baseFilename)
            self.dropped_logged, self.dropped_logged_at = dropped, now

    def stop(self, timeout: float = STOP_WAIT) -> bool:
        """Write what is queued and end; False when that did not happen within ``timeout``
        (a hung disk: the daemon thread is left behind, the sidecar stops regardless)."""
        self.stopping.set()
        self.audit.wake.set()
        self.join(timeout)
        return not self.is_alive()


class AuditEntry:
    """An accepted execute/call, remembered by reference until it is answered (loop thread)."""

    __slots__ = ("audit", "peer", "op", "pool", "what", "routed")

    def __init__(self, audit: AuditLog, request: dict[str, Any], peer: str) -> None:
        self.audit = audit
        self.peer = peer
        self.op = op = request["op"]
        self.pool = request.get("pool")
        self.what = request.get("target") if op == "call" else request.get("code")
        self.routed = request.get("routed")

    def finish(self, outcome: str | None, seconds: float) -> None:
        self.audit.put((time.time(), outcome, seconds, self.peer, self.op, self.pool, self.what,
                        self.routed, None))


class AuditLog:
    """``open()``, ``record(...)`` / ``entry(...)``, ``close()``. Until it is open (and after a
    failed open, or once closed) ``enabled`` is False and recording costs that one check."""

    def __init__(self, path: Path | None, max_bytes: int = 10 << 20, backups: int = 5,
                 queue_size: int = 10000) -> None:
        self.path = path  # None: python3.audit.enabled is false
        self.max_bytes, self.backups = max_bytes, backups
        self.capacity = queue_size
        self.pending: deque[tuple[Any, ...]] = deque()
        self.wake = threading.Event()  # set when a line is queued while the writer sleeps
        self.enabled = False
        self.error = ""
        self.written = self.dropped = 0
        self.file: AuditFile | None = None
        self.writer: AuditWriter | None = None

    @classmethod
    def from_config(cls, section: Any, runtime_folder: Path) -> AuditLog:
        """From ``python3.audit`` (``sidecar.config.audit.AuditConfig``); ``runtime_folder``
        is where the token (and connection.json) live."""
        path = Path(section.file).expanduser() if section.file else runtime_folder / FILE_NAME
        return cls(path if section.enabled else None, section.max_size, section.backups,
                   section.queue_size)

    def open(self) -> bool:
        """Start writing; False (with a log error naming the key) when the file cannot be
        opened: the sidecar serves on without an audit log, and health says why."""
        if self.path is None or self.enabled:
            return self.enabled
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.file = AuditFile(self.path, self.max_bytes, self.backups)
        except OSError as exc:
            self.error = (f"cannot open the audit log {self.path} ({exc.strerror or exc}); set "
                          "python3.audit.file to a writable file (or python3.audit.enabled: "
                          "false)")
            log.error("%s: calls are served without an audit log", self.error)
            return False
        self.writer = AuditWriter(self, self.file)
        self.writer.start()
        self.enabled = True
        log.info("audit log: %s (rotated at %d bytes, %d backups)", self.path, self.max_bytes,
                 self.backups)
        return True

    # ------------------------------------------------------------ recording (loop thread)
    def put(self, item: tuple[Any, ...]) -> None:
        pending = self.pending
        if len(pending) >= self.capacity:  # the writer is behind (a slow disk): never wait
            self.dropped += 1
            return
        pending.append(item)
        if not self.wake.is_set():  # a plain read; the Event's lock only when it sleeps
            self.wake.set()

    def call_answered(self, outcome: str | None, seconds: float, peer: str, op: str,
                      what: Any) -> None:
        """The line ``AuditEntry.finish`` queues, for a call of the lean path (no pool, not
        routed: sidecar/routing/lean.py), without an entry kept while it runs."""
        self.put((time.time(), outcome, seconds, peer, op, None, what, None, None))

    def entry(self, request: dict[str, Any], peer: str) -> AuditEntry:
        """An accepted execute/call; its line is written when ``finish`` is called."""
        return AuditEntry(self, request, peer)

    def record(self, outcome: str | None, peer: str, request: Any = None,
               seconds: float | None = None) -> None:
        """A refusal (``outcome`` its kind) or a finished operator op (``outcome`` None).
        ``request``: the decoded envelope of an authenticated peer, else None."""
        if not self.enabled:
            return
        if isinstance(request, dict):
            op = request.get("op")
            what = request.get("target") if op == "call" else (
                request.get("code") if op == "execute" else None)
            self.put((time.time(), outcome, seconds, peer, op, request.get("pool"), what,
                      request.get("routed"), request.get("command") or request.get("action")))
        else:
            self.put((time.time(), outcome, None, peer, None, None, None, None, None))

    def action(self, action: str, pool: str | None, outcome: str, peer: str) -> None:
        """An operator's action on the console (restart, recycle, size, breaker, quarantine
        clear, login): ``op`` "operator", ``command`` the action."""
        if self.enabled:
            self.put((time.time(), outcome, None, peer, OPERATOR, pool, None, None, action))

    # ------------------------------------------------------------ reading, closing
    def snapshot(self) -> dict[str, Any]:
        """For health: where the lines go and what became of them."""
        failures = self.file.failures if self.file is not None else 0
        return {"enabled": self.enabled, "file": str(self.path) if self.path else None,
                "written": self.written, "dropped": self.dropped, "write_errors": failures,
                "queued": len(self.pending), "error": self.error or None}

    def close(self, timeout: float = STOP_WAIT) -> None:
        """Write what is queued (bounded by ``timeout``), then close the file."""
        if not self.enabled:
            return
        self.enabled = False
        assert self.writer is not None and self.file is not None
        if self.writer.stop(timeout):
            try:
                self.file.close()
            except OSError as exc:  # the last flush failed (a full disk): said, not raised
                log.warning("audit log %s: closing it failed (%s)", self.path, exc)
        else:
            log.warning("audit log: the writer did not finish within %gs (a hung disk?); "
                        "%d line(s) still queued are lost", timeout, len(self.pending))


class AuditCollector:
    """``py3sidecar_audit_lines_total``, ``..._dropped_total``, ``..._write_errors_total``
    (read at scrape time; plain integers, no lock needed)."""

    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit

    def collect(self) -> Any:
        audit = self.audit
        failures = audit.file.failures if audit.file is not None else 0
        yield CounterMetricFamily("py3sidecar_audit_lines", "Audit lines written",
                                  value=audit.written)
        yield CounterMetricFamily(
            "py3sidecar_audit_dropped", "Audit lines dropped because the writer's queue was "
            "full (python3.audit.queue-size)", value=audit.dropped)
        yield CounterMetricFamily("py3sidecar_audit_write_errors",
                                  "Audit lines lost to write errors", value=failures)


def build_audit(config: Any, token_file: Path | str | None, registry: Any) -> AuditLog:
    """The service's audit log from ``python3.audit`` of ``config`` (not yet open; next to the
    token unless ``file`` says where), with its metrics registered."""
    audit = AuditLog.from_config(config.python3.audit, connection_file_for(token_file).parent)
    registry.register(AuditCollector(audit))
    return audit

