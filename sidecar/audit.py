"""The audit log: one JSON line per call, refusal and operator action, written off the loop.

Owns: the audit file (``python3.audit.file``; "" = ``audit.log`` next to the token), its
rotation by size (``max-size``, ``backups``), the bounded queue between the loop thread and the
writer thread (``queue-size``), what a line holds, and the counts of lines written, dropped
(queue full) and lost (write errors), in health and as metrics. Must not touch: admission (the
service decides what is refused and calls ``record``), the call's answer (``sidecar.call``; a
``sidecar.metrics.MeteredCall`` finishes its ``AuditEntry`` once), sockets, the main log's
handlers.

Data flow::

    loop thread   Service.dispatch: an accepted execute/call -> AuditEntry (references only)
                  MeteredCall.observed -> AuditEntry.finish(outcome, seconds) --+
                  Service.refuse / refuse_quarantined / an operator op -> record -+
                                               queue.put_nowait(tuple) <---------+
                                               (full: dropped and counted, never waited for)
    writer thread logging.handlers.QueueListener: tuple -> sha256 of the code, one JSON line
                  -> AuditFile (a RotatingFileHandler: rotated by size, N backups) -> disk

What a line may hold: ``ts`` (ISO 8601, UTC), ``op``, ``pool``, ``target`` (call) or
``code_sha256`` (execute: the hex sha256 of the UTF-8 code), ``command`` (diag, breaker,
quarantine), ``outcome`` (``ok`` or the error kind), ``duration_ms``, ``peer`` (front and
address), ``route``/``project``/``user`` (the message handler's marks, ``routed``). Never the
code, arguments, variables, values or the token. A refusal of a peer that did not authenticate
records ``ts``, ``outcome`` and ``peer`` only: nothing it sent is trusted or kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import sys
import time
from datetime import UTC, datetime
from logging.handlers import QueueListener, RotatingFileHandler
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily

from bridge import protocol
from bridge.connection import connection_file_for

log = logging.getLogger("py3sidecar.audit")

FILE_NAME = "audit.log"
OPERATOR_OPS = ("diag", "breaker", "quarantine")  # audited on success too (ping/health are not)
ROUTED_MARKS = ("route", "project", "user")
TEXT_LIMIT = 200  # characters kept of a target, a pool name or a routed mark
LOG_INTERVAL = 60.0  # seconds between two log lines about lost or dropped audit lines
STOP_WAIT = 5.0  # seconds close() waits for the writer to empty the queue


def iso_utc(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def _text(value: Any, limit: int = TEXT_LIMIT) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def format_line(item: tuple[Any, ...]) -> str:
    """The JSON line of one queued item (in the writer thread: hashing and JSON happen here)."""
    wall, outcome, seconds, peer, op, pool, what, routed, command = item
    line: dict[str, Any] = {"ts": iso_utc(wall)}
    if op in protocol.OPS:  # anything else a client sent is not echoed
        line["op"] = op
        if op in protocol.WORKER_OPS:
            line["pool"] = _text(pool) or "primary"
            if op == "call" and isinstance(what, str):
                line["target"] = what[:TEXT_LIMIT]
            elif op == "execute" and isinstance(what, str):
                code = what.encode("utf-8", "surrogatepass")
                line["code_sha256"] = hashlib.sha256(code).hexdigest()
        elif isinstance(command, str):
            line["command"] = command[:40]
    line["outcome"] = outcome or "ok"
    if seconds is not None:
        line["duration_ms"] = round(seconds * 1000.0, 3)
    line["peer"] = peer or "unknown"
    if isinstance(routed, dict):
        for mark in ROUTED_MARKS:
            value = _text(routed.get(mark))
            if value is not None:
                line[mark] = value
    return json.dumps(line, separators=(",", ":"))


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
            log.error("cannot write the audit log %s (%s); %d line(s) lost so far: free the "
                      "disk or point python3.audit.file elsewhere", self.baseFilename,
                      sys.exc_info()[1], self.failures)


class AuditListener(QueueListener):
    """The writer thread: turns queued tuples into lines; its stop has a deadline."""

    def __init__(self, audit: AuditLog, file: AuditFile) -> None:
        super().__init__(audit.queue, file)
        self.audit = audit
        self.file = file
        self.dropped_logged = 0
        self.dropped_logged_at: float | None = None

    def prepare(self, record: Any) -> logging.LogRecord:
        return logging.makeLogRecord({"msg": format_line(record), "levelno": logging.INFO,
                                      "levelname": "INFO", "name": log.name})

    def handle(self, record: Any) -> None:
        failures = self.file.failures
        try:
            self.file.handle(self.prepare(record))
        except Exception:  # a line that cannot be formatted is lost, never the writer
            log.exception("audit line not written")
            self.file.failures += 1
        if self.file.failures == failures:
            self.audit.written += 1
        self.report_drops()

    def report_drops(self) -> None:
        dropped, now = self.audit.dropped, time.monotonic()
        if dropped != self.dropped_logged and (
                self.dropped_logged_at is None or now - self.dropped_logged_at >= LOG_INTERVAL):
            log.warning("audit log: %d line(s) dropped so far, the writer could not keep up "
                        "(raise python3.audit.queue-size, or check the disk under %s)", dropped,
                        self.file.baseFilename)
            self.dropped_logged, self.dropped_logged_at = dropped, now

    def stop(self, timeout: float = STOP_WAIT) -> bool:  # type: ignore[override]
        """Let the writer empty the queue, then end it; False when it did not within
        ``timeout`` (a hung disk: the daemon thread is left behind, the sidecar stops)."""
        thread = self._thread
        if thread is None:
            return True
        try:
            self.queue.put(self._sentinel, timeout=timeout)
        except queue.Full:
            return False
        thread.join(timeout)
        self._thread = None
        return not thread.is_alive()


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
        self.queue: queue.Queue[Any] = queue.Queue(queue_size)
        self.enabled = False
        self.error = ""
        self.written = self.dropped = 0
        self.file: AuditFile | None = None
        self.listener: AuditListener | None = None

    @classmethod
    def from_config(cls, section: Any, runtime_folder: Path) -> AuditLog:
        """From ``python3.audit`` (``sidecar.config_audit.AuditConfig``); ``runtime_folder``
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
        self.listener = AuditListener(self, self.file)
        self.listener.start()
        self.listener._thread.name = "py3sidecar-audit"
        self.enabled = True
        log.info("audit log: %s (rotated at %d bytes, %d backups)", self.path, self.max_bytes,
                 self.backups)
        return True

    # ------------------------------------------------------------ recording (loop thread)
    def put(self, item: tuple[Any, ...]) -> None:
        try:
            self.queue.put_nowait(item)
        except queue.Full:  # the writer is behind (a slow disk): never wait for it
            self.dropped += 1

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

    # ------------------------------------------------------------ reading, closing
    def snapshot(self) -> dict[str, Any]:
        """For health: where the lines go and what became of them."""
        failures = self.file.failures if self.file is not None else 0
        return {"enabled": self.enabled, "file": str(self.path) if self.path else None,
                "written": self.written, "dropped": self.dropped, "write_errors": failures,
                "queued": self.queue.qsize(), "error": self.error or None}

    def close(self, timeout: float = STOP_WAIT) -> None:
        """Write what is queued (bounded by ``timeout``), then close the file."""
        if not self.enabled:
            return
        self.enabled = False
        assert self.listener is not None and self.file is not None
        if self.listener.stop(timeout):
            try:
                self.file.close()
            except OSError as exc:  # the last flush failed (a full disk): said, not raised
                log.warning("audit log %s: closing it failed (%s)", self.path, exc)
        else:
            log.warning("audit log: the writer did not finish within %gs (a hung disk?); "
                        "%d line(s) still queued are lost", timeout, self.queue.qsize())


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


def build_audit(section: Any, token_file: Path | str | None, registry: Any) -> AuditLog:
    """The service's audit log (not yet open; next to the token unless ``file`` says where)
    with its metrics registered."""
    audit = AuditLog.from_config(section, connection_file_for(token_file).parent)
    registry.register(AuditCollector(audit))
    return audit

