"""The alert manager: turns the pool's, recovery's and breakers' events into alert conditions.

Owns: which event raises or resolves which condition (key, level, group), the loop timer that
asks the policy what is due, and handing notifications to the channels. Must not touch: the
throttling rules (``sidecar.alerts.policy``), delivery (``sidecar.alerts.channels``, its own
thread), or any process: it only listens.

Conditions (group ``pool <name>``; "full strength" = the pool is back at its target size):

    key                          raised by                              level     resolved
    worker_crashed/<pool>        a worker exited unexpectedly           CRITICAL  full strength
    worker_hung/<pool>           recovery: HANG or DEADLOCK             WARNING   full strength
    memory_leak/<pool>           recovery: MEMORY_LEAK                  WARNING   full strength
    resource_exhaustion/<pool>   recovery: RESOURCE_EXHAUSTION          WARNING   full strength
    spawn_failed/<pool>          a worker could not start               WARNING   full strength
    restart_limit/<pool>         python3.pool.max-restarts reached      CRITICAL  full strength
    escalated/<pool>             recovery escalated                     CRITICAL  recovered
    breaker_open/<name>          OPEN (CRITICAL) or FORCED_OPEN (WARNING)         CLOSED/DISABLED

Other parts (the quarantine) raise their own: ``raise_condition(key, level, summary,
details)`` and ``resolve(key)``, called in the loop thread.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from bridge.breaker import BreakerEvent, BreakerState
from sidecar.alerts.channels import AlertChannels, Channel
from sidecar.alerts.policy import AlertPolicy, Level
from sidecar.config.settings import throttle_settings
from sidecar.observability.redaction import redact_notification, redact_values
from sidecar.pool import events

log = logging.getLogger("py3sidecar.alerts")

# Conditions about a pool's workers that clear once the pool is back at full strength.
WORKER_CONDITIONS = ("worker_crashed", "worker_hung", "memory_leak", "resource_exhaustion",
                     "spawn_failed", "restart_limit")
FAILURE_CONDITIONS = {"HANG": "worker_hung", "DEADLOCK": "worker_hung",
                      "MEMORY_LEAK": "memory_leak", "RESOURCE_EXHAUSTION": "resource_exhaustion"}


class AlertManager:
    def __init__(self, loop: Any, policy: AlertPolicy, channels: AlertChannels, *,
                 enabled: bool = True) -> None:
        self.loop = loop
        self.policy = policy
        self.channels = channels
        self.enabled = enabled
        self.timer: Any = None
        self.closed = False
        # Called (loop thread) with every notification handed to the channels: the dashboard's
        # recent alerts and the health-poll tags (Service.recent_alerts) read them.
        self.listeners: list[Any] = []

    # ------------------------------------------------------------ the public hook
    def raise_condition(self, key: str, level: Level | str, summary: str,
                        details: dict[str, Any] | None = None, group: str | None = None) -> None:
        if not self.enabled or self.closed:
            return
        self.policy.raise_condition(key, level, summary, details, group)
        self.reschedule()

    def resolve(self, key: str, summary: str | None = None) -> None:
        if self.enabled and not self.closed and self.policy.resolve(key, summary):
            self.reschedule()

    # ------------------------------------------------------------ sources
    def watch_quarantine(self, quarantine: Any) -> None:
        """A poison request quarantined is a WARNING condition until cleared or expired."""
        def on_event(event: Any) -> None:
            key = f"quarantine/{event.fingerprint}"
            if event.action == "quarantined":
                self.in_loop(lambda: self.raise_condition(
                    key, "WARNING", f"request quarantined after {event.crashes} worker crashes: "
                    f"{event.op} {event.label!r} (fingerprint {event.fingerprint})",
                    {"fingerprint": event.fingerprint, "op": event.op}, group="quarantine"))
            else:
                self.in_loop(lambda: self.resolve(
                    key, f"quarantine of {event.fingerprint} {event.action}"))
        quarantine.subscribe(on_event)

    def watch_pool(self, pool: Any, recovery: Any | None = None) -> None:
        name = pool.settings.name
        group = f"pool {name}"

        def on_exited(event: events.WorkerExited) -> None:
            # A worker that dies before it is ready is a failed start: SpawnFailed says so.
            if event.expected or event.starting:
                return
            self.raise_condition(
                f"worker_crashed/{name}", Level.CRITICAL,
                f"worker {event.worker} (pid {event.pid}) died unexpectedly: {event.text}",
                {"worker": event.worker, "pid": event.pid, "exit": event.text,
                 "during_call": event.during_call}, group)

        def on_spawn_failed(event: events.SpawnFailed) -> None:
            self.raise_condition(f"spawn_failed/{name}", Level.WARNING,
                                 f"a worker could not start ({event.failures} in a row): "
                                 f"{event.message}", {"retry_in": event.retry_in}, group)

        def on_restart_limit(event: events.RestartLimit) -> None:
            self.raise_condition(f"restart_limit/{name}", Level.CRITICAL,
                                 f"{event.restarts} worker restarts within "
                                 f"{event.window:g}s (python3.pool.max-restarts): "
                                 "replacement paused", {}, group)

        def on_ready(event: events.WorkerReady) -> None:
            if pool.ready_members() < pool.target_size:
                return
            for condition in WORKER_CONDITIONS:
                self.resolve(f"{condition}/{name}",
                             f"pool {name} is back at full strength "
                             f"({pool.ready_members()} workers ready)")

        pool.listen(events.route({
            events.WorkerExited: on_exited, events.SpawnFailed: on_spawn_failed,
            events.RestartLimit: on_restart_limit, events.WorkerReady: on_ready}))
        if recovery is None:
            return

        def on_failure(record: Any) -> None:
            condition = FAILURE_CONDITIONS.get(str(record.type))
            if condition is not None:
                self.raise_condition(f"{condition}/{name}", Level.WARNING,
                                     f"worker {record.worker} {record.type}: {record.detail}",
                                     {"worker": record.worker, "pid": record.pid,
                                      "action": record.action}, group)

        def on_recovery_event(event: Any) -> None:
            if recovery.escalated:
                self.raise_condition(f"escalated/{name}", Level.CRITICAL, event.message,
                                     dict(event.details), group)
            else:
                self.resolve(f"escalated/{name}", event.message)

        recovery.failure_listeners.append(on_failure)
        recovery.listeners.append(on_recovery_event)

    def watch_breakers(self, breakers: dict[str, Any]) -> None:
        for name, breaker in breakers.items():
            breaker.subscribe(lambda event, name=name: self.in_loop(
                lambda: self.on_breaker_event(name, event)))

    def on_breaker_event(self, name: str, event: BreakerEvent) -> None:
        key = f"breaker_open/{name}"
        if event.to_state in (BreakerState.OPEN, BreakerState.FORCED_OPEN):
            level = Level.CRITICAL if event.to_state is BreakerState.OPEN else Level.WARNING
            self.raise_condition(key, level, f"the {name} circuit breaker is "
                                 f"{event.to_state}: {event.reason}", {}, f"pool {name}")
        elif event.to_state in (BreakerState.CLOSED, BreakerState.DISABLED):
            self.resolve(key, f"the {name} circuit breaker is {event.to_state}: {event.reason}")

    def in_loop(self, callback: Any) -> None:
        if self.loop.thread_id in (None, threading.get_ident()):
            callback()
        else:
            self.loop.call_soon_threadsafe(callback)

    # ------------------------------------------------------------ timing
    def reschedule(self) -> None:
        due = self.policy.next_due()
        if self.timer is not None and not self.timer.cancelled:
            if due is not None and self.timer.when <= due:
                return
            self.timer.cancel()
        self.timer = self.loop.call_at(due, self.flush) if due is not None else None

    def flush(self) -> None:
        self.timer = None
        if self.closed:
            return
        for notification in self.policy.take_due():
            notification = redact_notification(notification)  # no secret in alert text
            self.channels.deliver(notification)
            for listener in self.listeners:
                listener(notification)
        self.reschedule()

    # ------------------------------------------------------------ lifecycle and visibility
    def start(self) -> None:
        if self.enabled:
            self.channels.start()

    def close(self, timeout: float = 5.0) -> None:
        """At shutdown: send what is already due, then let the channels finish (bounded)."""
        if self.closed:
            return
        self.flush()
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
        self.channels.stop(timeout)

    def snapshot(self) -> dict[str, Any]:
        due = self.policy.next_due()
        timer = self.timer if self.timer is not None and not self.timer.cancelled else None
        return redact_values({  # a condition's summary may quote a URL
            "enabled": self.enabled, **self.policy.snapshot(),
            "next_due_in": None if due is None else due - self.policy.clock(),
            "timer_in": None if timer is None else timer.when - self.policy.clock(),
            "delivery": self.channels.snapshot()})


def build_alerts(loop: Any, config: Any) -> AlertManager:
    """From ``python3.alerts``; the log is always a channel."""
    c = config.python3.alerts
    policy = AlertPolicy(throttle_settings(c.throttle), clock=loop.clock)
    channels = AlertChannels([Channel.build(ch.url, list(ch.levels), index)
                              for index, ch in enumerate(c.channels)])
    return AlertManager(loop, policy, channels, enabled=c.enabled)
