"""Alert delivery: the log, and every apprise URL (email, Slack, Mattermost, JSON webhooks, ...).

Owns: one delivery thread with a bounded queue, one ``apprise.Apprise`` per configured URL
with the levels it takes, and the delivery outcome per channel. Must not touch: what is worth
telling (``sidecar.alerts.policy`` decides), the loop (``deliver`` only enqueues, so SMTP or HTTP
never holds up a call). A channel is named by its scheme and position (``json#0``) in health,
logs, metrics and the dashboard: its URL, which often is the secret, stays in here.

```
 loop thread: AlertManager -- deliver(notification) --> queue (bounded: full = dropped, logged)
                                                            |
 "py3sidecar-alerts" thread:  for each channel taking that level: apprise.notify(...)
                              outcome -> counters per channel, recent deliveries
```
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from sidecar.alerts.policy import Level, Notification
from sidecar.observability.redaction import channel_name, redact_text

log = logging.getLogger("py3sidecar.alerts")

# apprise's names for our levels (apprise is imported only when a channel is configured: it
# takes a few hundred milliseconds, which every sidecar start would pay otherwise)
_NOTIFY_TYPES = {Level.INFO: "info", Level.WARNING: "warning", Level.CRITICAL: "failure"}
_LOG_LEVELS = {Level.INFO: logging.INFO, Level.WARNING: logging.WARNING,
               Level.CRITICAL: logging.CRITICAL}


class _MuteThread(logging.Filter):
    """Drops apprise's records from the threads checking a URL: apprise logs a URL it cannot
    parse whole (``Unparseable Telegram URL tgram://<bot token>/...``)."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[int] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread not in self.threads


_MUTE = _MuteThread()


def _apprise_with(url: str) -> Any:
    """An ``apprise.Apprise`` holding ``url``, or None when apprise cannot use it; apprise's
    own complaint (which quotes the URL) is not logged."""
    import apprise

    apprise_log = logging.getLogger("apprise")
    if _MUTE not in apprise_log.filters:
        apprise_log.addFilter(_MUTE)
    me = threading.get_ident()
    _MUTE.threads.add(me)
    try:
        target = apprise.Apprise()
        return target if target.add(url) else None
    finally:
        _MUTE.threads.discard(me)


def unusable_url_problem(url: str) -> str | None:
    """Why apprise cannot send to ``url`` (naming its scheme only), or None when it can."""
    if _apprise_with(url) is not None:
        return None
    scheme = channel_name(url, 0).rpartition("#")[0]
    return (f"apprise cannot use this {scheme}:// URL (an unknown scheme, or a token or "
            "address in the wrong form; the URL is not shown, it may hold a secret); see the "
            "apprise wiki for the URL of each service, e.g. mailto://, json://, mmost://, "
            "slack://, tgram://")


@dataclass
class Channel:
    url: str
    levels: frozenset[Level]
    target: Any          # apprise.Apprise holding this one URL
    # scheme and position: json#0 (sidecar.observability.redaction.channel_name)
    name: str

    @classmethod
    def build(cls, url: str, levels: list[str] | None, index: int = 0) -> Channel:
        target = _apprise_with(url)
        if target is None:
            raise ValueError(f"python3.alerts.channels.{index}.url: {unusable_url_problem(url)}")
        chosen = frozenset(Level.parse(v) for v in (levels or ["WARNING", "CRITICAL"]))
        return cls(url, chosen, target, channel_name(url, index))


class AlertChannels:
    """Delivers notifications off the loop thread; ``deliver`` never blocks."""

    def __init__(self, channels: list[Channel], *, queue_size: int = 100) -> None:
        self.channels = channels
        self.queue: queue.Queue[Notification | None] = queue.Queue(maxsize=queue_size)
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()   # guards the outcome fields below (two threads)
        self.outcomes: Counter[tuple[str, str, str]] = Counter()  # (channel, level, outcome)
        self.recent: deque[dict[str, Any]] = deque(maxlen=50)
        self.dropped = 0
        self.in_flight = 0
        # (channel, level, outcome) per delivery, from either thread; must be thread-safe
        self.sent_listeners: list[Any] = []

    def start(self) -> None:
        if self.channels and self.thread is None:
            self.thread = threading.Thread(target=self.run, name="py3sidecar-alerts",
                                           daemon=True)
            self.thread.start()

    def deliver(self, notification: Notification) -> None:
        """Log it now, and queue it for the channels that take its level."""
        log.log(_LOG_LEVELS[notification.level], "alert %s: %s%s", notification.kind,
                notification.title, ("\n" + notification.body) if notification.body else "")
        with self.lock:
            self.outcomes[("log", notification.level.name, "sent")] += 1
        for listener in self.sent_listeners:
            listener("log", notification.level.name, "sent")
        if not any(notification.level in c.levels for c in self.channels) or self.thread is None:
            return
        try:
            with self.lock:
                self.in_flight += 1
            self.queue.put_nowait(notification)
        except queue.Full:  # a channel is stuck; the log above still has it
            with self.lock:
                self.in_flight -= 1
                self.dropped += 1
            log.error("alert channels are behind (%d queued): %r not delivered",
                      self.queue.maxsize, notification.title)

    def run(self) -> None:
        while True:
            notification = self.queue.get()
            if notification is None:
                return
            for channel in self.channels:
                if notification.level in channel.levels:
                    self.send(channel, notification)
            with self.lock:
                self.in_flight -= 1

    def send(self, channel: Channel, notification: Notification) -> None:
        started = time.monotonic()
        kind = ("success" if notification.kind == "resolved"
                else _NOTIFY_TYPES[notification.level])
        try:
            ok = bool(channel.target.notify(body=notification.body or notification.title,
                                            title=notification.title, notify_type=kind))
            error = "" if ok else "the service refused it or could not be reached (see log)"
        except Exception as exc:  # a plugin bug must not end the delivery thread
            ok, error = False, redact_text(f"{type(exc).__name__}: {exc}")
        outcome = "sent" if ok else "failed"
        if not ok:
            log.error("alert channel %s could not deliver %r: %s", channel.name,
                      notification.title, error)
        for listener in self.sent_listeners:  # e.g. the py3sidecar_alerts_sent_total counter
            listener(channel.name, notification.level.name, outcome)
        with self.lock:
            self.outcomes[(channel.name, notification.level.name, outcome)] += 1
            self.recent.append({"channel": channel.name, "title": notification.title,
                                "outcome": outcome, "error": error,
                                "seconds": round(time.monotonic() - started, 3)})

    def idle(self) -> bool:
        with self.lock:
            return self.in_flight == 0

    def stop(self, timeout: float = 5.0) -> None:
        """Let queued notifications go out (bounded), then end the thread."""
        if self.thread is None:
            return
        try:
            self.queue.put(None, timeout=timeout)
        except queue.Full:
            log.warning("alert channels still busy at shutdown; undelivered alerts dropped")
            return
        self.thread.join(timeout)
        self.thread = None

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            by_channel: dict[str, dict[str, int]] = {}
            for (name, _level, outcome), n in self.outcomes.items():
                by_channel.setdefault(name, {}).setdefault(outcome, 0)
                by_channel[name][outcome] += n
            return {"channels": [{"name": c.name, "levels": sorted(lv.name for lv in c.levels)}
                                 for c in self.channels],
                    "deliveries": by_channel, "outcomes": [
                        {"channel": k[0], "level": k[1], "outcome": k[2], "count": n}
                        for k, n in self.outcomes.items()],
                    "dropped": self.dropped, "recent": list(self.recent)[-10:]}
