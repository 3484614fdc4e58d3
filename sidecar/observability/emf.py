"""CloudWatch metrics as Embedded Metric Format records (spec 5A), sent to an agent or a file.

Owns: turning the service's ``health`` snapshot into EMF records (one per pool of the registry
per export, dimension ``Pool``, the primary's first and alone carrying the sidecar-wide figures;
counters as deltas since the previous export, per pool), the export timer (the snapshot is
taken in the loop thread, where the pool lives) and one sender thread that writes records to
``tcp://`` (the CloudWatch agent's EMF listener, newline-delimited JSON), ``udp://`` or
``file://`` (JSON lines, e.g. for a log shipper). Must not touch: the pool (it reads the
snapshot only), the Prometheus registry (it may not exist; the snapshot always does).

```
 loop timer (interval) -> service.op_health() -> emf_records() -> queue (bounded) -> sender thread
                                                                                      |
                                              tcp://host:port | udp://host:port | file:///path
```
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("py3sidecar.emf")

# (metric name, unit, how to read it from the snapshot); counters become per-interval deltas.
GAUGES: list[tuple[str, str, Callable[[dict[str, Any]], float | None]]] = [
    ("WorkersTarget", "Count", lambda h: h["pool"]["size"]["target"]),
    ("WorkersReady", "Count", lambda h: h["pool"]["size"]["ready"]),
    ("WorkersHealthy", "Count", lambda h: sum(1 for w in members(h) if w["status"] == "HEALTHY")),
    ("SparesReady", "Count", lambda h: h["pool"]["size"]["spares_ready"]),
    ("QueueLength", "Count", lambda h: h["pool"]["queue"]["length"]),
    ("Utilization", "Percent", lambda h: 100.0 * (h["pool"]["utilization"] or 0.0)),
    ("HealthScoreMin", "None", lambda h: min((w["score"] for w in members(h)), default=None)),
    ("WorkerRssMax", "Bytes", lambda h: max((w["rss"] for w in members(h)), default=None)),
    ("WorkerRssTotal", "Bytes", lambda h: h["pool"]["resources"]["rss_total"]),
    ("PoolUnhealthy", "Count", lambda h: 1.0 if h["status"] == "UNHEALTHY" else 0.0),
    ("BreakerOpen", "Count", lambda h: 1.0 if (h["breakers"].get(h["pool"]["name"]) or {})
     .get("state") in ("open", "forced_open") else 0.0),
    # sidecar-wide: in the primary's record only (a named pool's part has no "alerts")
    ("AlertsFiring", "Count", lambda h: len((h["alerts"] or {}).get("firing") or [])),
    ("SidecarRss", "Bytes", lambda h: h.get("sidecar_rss")),
]
COUNTERS: list[tuple[str, str, Callable[[dict[str, Any]], float]]] = [
    ("Calls", "Count", lambda h: h["pool"]["counters"]["accepted"]),
    ("CallsSucceeded", "Count", lambda h: h["pool"]["counters"]["succeeded"]),
    ("Errors", "Count", lambda h: sum(h["pool"]["errors"].values())),
    ("Timeouts", "Count", lambda h: h["pool"]["errors"].get("timeout", 0)),
    ("Crashes", "Count", lambda h: h["pool"]["counters"]["crashes"]),
    ("WorkersStarted", "Count", lambda h: h["pool"]["counters"]["spawned"]),
    ("SpawnFailures", "Count", lambda h: h["pool"]["counters"]["spawn_failures"]),
    ("Recycled", "Count", lambda h: h["pool"]["counters"]["recycled"]),
    ("AlertsSent", "Count", lambda h: ((h["alerts"] or {}).get("counts") or {}).get("sent", 0)),
]


def members(health: dict[str, Any]) -> list[dict[str, Any]]:
    return [w for w in health["pool"]["workers"] if w["role"] == "member"
            and w["state"] in ("idle", "busy", "checking")]


@dataclass(frozen=True)
class EmfSettings:
    """Mirrors ``python3.monitoring.cloudwatch``."""

    enabled: bool = False
    endpoint: str = "tcp://127.0.0.1:25888"
    namespace: str = "py3sidecar"
    interval: float = 60.0

    def __post_init__(self) -> None:
        scheme = urlsplit(self.endpoint).scheme
        if scheme not in ("tcp", "udp", "file"):
            raise ValueError(f"monitoring.cloudwatch.endpoint {self.endpoint!r}: expected "
                             "tcp://HOST:PORT (the CloudWatch agent), udp://HOST:PORT or "
                             "file:///path/to/metrics.jsonl")


def emf_record(health: dict[str, Any], previous: dict[str, float] | None, namespace: str,
               now_ms: int) -> tuple[dict[str, Any], dict[str, float]]:
    """One EMF record from a health snapshot; also the counter readings for the next delta."""
    pool = health["pool"]["name"]
    record: dict[str, Any] = {"Pool": pool, "Status": health["status"]}
    metrics = []
    for name, unit, read in GAUGES:
        try:
            value = read(health)
        except (KeyError, TypeError):  # a part of the snapshot this build does not have
            value = None
        if value is not None:
            record[name] = float(value)
            metrics.append({"Name": name, "Unit": unit})
    readings = {}
    for name, unit, read in COUNTERS:
        try:
            readings[name] = float(read(health))
        except (KeyError, TypeError):
            continue
        base = (previous or {}).get(name, 0.0)
        record[name] = max(0.0, readings[name] - base)  # a restart of the counter reads as 0
        metrics.append({"Name": name, "Unit": unit})
    record["_aws"] = {"Timestamp": now_ms, "CloudWatchMetrics": [
        {"Namespace": namespace, "Dimensions": [["Pool"]], "Metrics": metrics}]}
    return record, readings


def pool_health(health: dict[str, Any], name: str) -> dict[str, Any]:
    """A named pool's part of ``health``, shaped as the primary's: its view as ``pool``, its
    status, its breaker (the sidecar-wide figures stay in the primary's record)."""
    view = health["pools"][name]
    return {"pool": {"name": name, **view}, "status": view.get("status"),
            "breakers": health.get("breakers") or {}}


def emf_records(health: dict[str, Any], previous: dict[str, dict[str, float]], namespace: str,
                now_ms: int) -> tuple[list[dict[str, Any]], dict[str, dict[str, float]]]:
    """One record per pool (the primary's, then ``health.pools`` in order), and each pool's
    counter readings for the next deltas."""
    parts = [(health["pool"]["name"], health)] + [
        (name, pool_health(health, name)) for name in health.get("pools") or {}]
    records, readings = [], {}
    for name, part in parts:
        record, readings[name] = emf_record(part, previous.get(name), namespace, now_ms)
        records.append(record)
    return records, readings


class EmfExporter:
    def __init__(self, loop: Any, snapshot: Callable[[], dict[str, Any]],
                 settings: EmfSettings) -> None:
        self.loop = loop
        self.snapshot = snapshot
        self.settings = settings
        self.previous: dict[str, dict[str, float]] = {}  # each pool's counter readings
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=16)
        self.thread: threading.Thread | None = None
        self.timer: Any = None
        self.sock: socket.socket | None = None
        self.counts = {"exported": 0, "sent": 0, "failed": 0, "dropped": 0}
        self.last_error = ""

    # ------------------------------------------------------------ loop side
    def start(self) -> None:
        if not self.settings.enabled:
            return
        self.thread = threading.Thread(target=self.run, name="py3sidecar-emf", daemon=True)
        self.thread.start()
        self.timer = self.loop.call_later(self.settings.interval, self.export)

    def export(self) -> None:
        self.timer = self.loop.call_later(self.settings.interval, self.export)
        try:
            health = self.snapshot()
            records, self.previous = emf_records(health, self.previous, self.settings.namespace,
                                                 int(time.time() * 1000))
        except Exception:
            log.exception("could not build the CloudWatch EMF records")
            return
        self.counts["exported"] += 1
        for record in records:
            try:
                self.queue.put_nowait(record)
            except queue.Full:  # the agent is unreachable and slow to refuse: skip, never block
                self.counts["dropped"] += 1

    def stop(self, timeout: float = 2.0) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.thread is not None:
            try:
                self.queue.put(None, timeout=timeout)
            except queue.Full:
                pass
            self.thread.join(timeout)
            self.thread = None

    def view(self) -> dict[str, Any]:
        return {"enabled": self.settings.enabled, "endpoint": self.settings.endpoint,
                **self.counts, "last_error": self.last_error}

    # ------------------------------------------------------------ sender thread
    def run(self) -> None:
        while True:
            record = self.queue.get()
            if record is None:
                break
            line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
            try:
                self.send(line)
                self.counts["sent"] += 1
                if self.last_error:
                    log.info("CloudWatch EMF endpoint %s reachable again", self.settings.endpoint)
                    self.last_error = ""
            except OSError as exc:
                self.close_socket()
                self.counts["failed"] += 1
                if not self.last_error:  # once per outage, not once per interval
                    log.warning("cannot send CloudWatch EMF metrics to %s: %s (retrying every "
                                "%gs)", self.settings.endpoint, exc, self.settings.interval)
                self.last_error = str(exc)
        self.close_socket()

    def send(self, line: bytes) -> None:
        parts = urlsplit(self.settings.endpoint)
        if parts.scheme == "file":
            with open(parts.path, "ab") as handle:
                handle.write(line)
            return
        address = (parts.hostname or "127.0.0.1", parts.port or 25888)
        if parts.scheme == "udp":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.sendto(line, address)
            return
        if self.sock is None:
            self.sock = socket.create_connection(address, timeout=2.0)
        self.sock.sendall(line)

    def close_socket(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None


def build_emf(loop: Any, settings: EmfSettings,
              snapshot: Callable[[], dict[str, Any]]) -> EmfExporter:
    """``settings``: ``python3.monitoring.cloudwatch`` as built by ``sidecar.config.settings``."""
    return EmfExporter(loop, snapshot, settings)


def own_rss() -> int:
    try:
        import psutil

        return psutil.Process(os.getpid()).memory_info().rss
    except Exception:
        return 0
