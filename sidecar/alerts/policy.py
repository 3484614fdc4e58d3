"""Alert policy: conditions, de-duplication, grouping, repeats and the hourly cap (spec 5B).

Owns: the state of every alert condition (firing or resolved, how often it happened), when a
group of conditions is due to be told (``group-wait``, ``group-interval``,
``repeat-interval``), the ``max-per-hour`` budget with the summary of what it suppressed, and
a bounded list of recent notification records. Must not touch: the clock (injected), timers,
threads, sockets or channels: ``take_due()`` hands back ``Notification`` values and the
caller delivers them (``sidecar.alerts.channels``). Unit-tested without sleeping.

```
 raise_condition(key, level, summary)   resolve(key)
            |                               |
            v                               v
   Condition (per key: firing, level, occurrences)  --grouped by ``group``-->  Group
            |  first change: due at +group-wait; later changes: last sent + group-interval;
            |  nothing new but still firing: last sent + repeat-interval
            v
   take_due(): budget left? (max-per-hour, the last slot kept for the summary)
            |-- yes: Notification (firing + resolved, "N suppressed before this")
            '-- no:  counted as suppressed; once alerts have been quiet for a
                     group-interval, one summary Notification says how many were suppressed
```
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from typing import Any

Clock = Callable[[], float]
HOUR = 3600.0


class Level(IntEnum):
    INFO = 10
    WARNING = 20
    CRITICAL = 30

    @classmethod
    def parse(cls, value: str | Level) -> Level:
        if isinstance(value, Level):
            return value
        try:
            return cls[str(value).upper()]
        except KeyError:
            raise ValueError(f"alert level {value!r} is not one of INFO, WARNING, "
                             "CRITICAL") from None


@dataclass(frozen=True)
class ThrottleSettings:
    """Mirrors ``python3.alerts.throttle``."""

    max_per_hour: int = 10        # notifications per rolling hour, the suppression summary included
    group_wait: float = 30.0      # a new group waits this long to gather its first alerts
    group_interval: float = 300.0  # a group that changed is told again at most this often
    repeat_interval: float = 14400.0  # a group still firing, unchanged, is reminded this often

    def __post_init__(self) -> None:
        if self.max_per_hour < 2:
            raise ValueError("alerts.throttle.max-per-hour must be at least 2 (one slot is kept "
                             f"for the summary of suppressed alerts), got {self.max_per_hour}")
        for name in ("group_wait", "group_interval", "repeat_interval"):
            if getattr(self, name) < 0:
                raise ValueError(f"alerts.throttle.{name.replace('_', '-')} cannot be negative")


@dataclass
class Condition:
    key: str
    group: str
    level: Level
    summary: str
    details: dict[str, Any]
    first_at: float
    last_at: float
    occurrences: int = 1
    unreported: int = 1         # occurrences since the group was last told
    firing: bool = True
    resolved_at: float | None = None
    told_firing: bool = False   # a sent notification has shown it firing

    def view(self) -> dict[str, Any]:
        return {"key": self.key, "level": self.level.name, "summary": self.summary,
                "occurrences": self.occurrences, "new": self.unreported,
                "firing": self.firing, "details": dict(self.details)}


@dataclass
class Group:
    name: str
    conditions: dict[str, Condition] = field(default_factory=dict)
    changed_at: float | None = None   # first change not yet told
    last_sent: float | None = None

    def due_at(self, settings: ThrottleSettings) -> float | None:
        if self.changed_at is not None:
            if self.last_sent is None:
                return self.changed_at + settings.group_wait
            return max(self.changed_at, self.last_sent + settings.group_interval)
        if self.last_sent is not None and any(c.firing for c in self.conditions.values()):
            return self.last_sent + settings.repeat_interval
        return None


@dataclass
class Notification:
    at: float
    kind: str                   # "firing", "resolved", "repeat" or "suppressed"
    group: str
    level: Level
    title: str
    body: str
    firing: list[dict[str, Any]] = field(default_factory=list)
    resolved: list[dict[str, Any]] = field(default_factory=list)
    suppressed: int = 0         # notifications held back by max-per-hour before this one
    suppressed_events: int = 0  # the condition occurrences those carried

    def view(self) -> dict[str, Any]:
        return {**asdict(self), "level": self.level.name}


class AlertPolicy:
    """Pure alert state machine; every method is called from one thread (the loop)."""

    def __init__(self, settings: ThrottleSettings | None = None, *,
                 clock: Clock = time.monotonic, history: int = 100) -> None:
        self.settings = settings or ThrottleSettings()
        self.clock = clock
        self.groups: dict[str, Group] = {}
        self.sent_at: deque[float] = deque()
        self.records: deque[dict[str, Any]] = deque(maxlen=history)
        self.counts: Counter[str] = Counter()   # raised, resolved, sent, suppressed
        self.last_change_at: float | None = None
        self.suppressed = 0
        self.suppressed_events = 0
        self.suppressed_by_key: Counter[str] = Counter()
        self.suppressed_level = Level.INFO
        self.suppressed_since: float | None = None

    # ------------------------------------------------------------ conditions
    def raise_condition(self, key: str, level: Level | str, summary: str,
                        details: dict[str, Any] | None = None, group: str | None = None) -> None:
        """A condition holds (again): new, re-fired, escalated, or one more occurrence."""
        now = self.clock()
        level = Level.parse(level)
        group_name = group or key
        grp = self.groups.setdefault(group_name, Group(group_name))
        cond = grp.conditions.get(key)
        self.counts["raised"] += 1
        self.last_change_at = now
        if cond is None:
            grp.conditions[key] = Condition(key, group_name, level, summary, dict(details or {}),
                                            now, now)
            self.mark_changed(grp, now)
            return
        newly = not cond.firing or level > cond.level
        cond.occurrences += 1
        cond.unreported += 1
        cond.last_at, cond.summary = now, summary
        cond.details = dict(details or {})
        cond.level = max(cond.level, level) if cond.firing else level
        cond.firing, cond.resolved_at = True, None
        if newly:
            self.mark_changed(grp, now)

    def resolve(self, key: str, summary: str | None = None) -> bool:
        """The condition cleared; its group will tell so. False when it was not firing."""
        for grp in self.groups.values():
            cond = grp.conditions.get(key)
            if cond is not None and cond.firing:
                now = self.clock()
                cond.firing, cond.resolved_at = False, now
                if summary:
                    cond.summary = summary
                self.counts["resolved"] += 1
                self.last_change_at = now
                self.mark_changed(grp, now)
                return True
        return False

    def firing(self) -> list[Condition]:
        return [c for g in self.groups.values() for c in g.conditions.values() if c.firing]

    @staticmethod
    def mark_changed(grp: Group, now: float) -> None:
        if grp.changed_at is None:
            grp.changed_at = now

    # ------------------------------------------------------------ deciding what to send
    def next_due(self) -> float | None:
        """When ``take_due`` has something to do next (absolute, on the injected clock)."""
        times = [t for t in (g.due_at(self.settings) for g in self.groups.values())
                 if t is not None]
        if self.suppressed:
            times.append(self.summary_due_at())
        return min(times) if times else None

    def summary_due_at(self) -> float:
        # After the storm: once nothing changed for a group-interval (and the hour has a slot).
        quiet = (self.last_change_at or 0.0) + max(self.settings.group_interval, 1.0)
        if self.room() >= 1:
            return quiet
        return max(quiet, self.sent_at[0] + HOUR)

    def take_due(self) -> list[Notification]:
        now = self.clock()
        out: list[Notification] = []
        if self.suppressed and now >= self.summary_due_at() and self.room() >= 1:
            out.append(self.send(self.summarize_suppressed(now), now))
        for grp in sorted(self.groups.values(), key=lambda g: g.name):
            due = grp.due_at(self.settings)
            if due is None or due > now:
                continue
            notification = self.compose(grp, now)
            if self.room() >= 2:  # the last slot of the hour is kept for the summary
                out.append(self.send(self.with_suppressed(notification), now))
            else:
                self.suppress(notification, now)
        return out

    def room(self) -> int:
        """Notifications the rolling hour still allows."""
        now = self.clock()
        while self.sent_at and self.sent_at[0] <= now - HOUR:
            self.sent_at.popleft()
        return self.settings.max_per_hour - len(self.sent_at)

    def compose(self, grp: Group, now: float) -> Notification:
        """The group's notification; the group counts as told (sent or suppressed)."""
        firing = [c for c in grp.conditions.values() if c.firing]
        resolved = [c for c in grp.conditions.values() if not c.firing]
        changed = grp.changed_at is not None
        kind = "repeat" if not changed else ("firing" if firing else "resolved")
        level = max((c.level for c in firing or resolved), default=Level.INFO)
        notification = Notification(now, kind, grp.name, level, "", "",
                                    [c.view() for c in firing], [c.view() for c in resolved])
        notification.title, notification.body = describe(notification)
        for cond in firing:
            cond.unreported, cond.told_firing = 0, True
        for cond in resolved:
            del grp.conditions[cond.key]
        grp.changed_at, grp.last_sent = None, now
        if not grp.conditions:
            del self.groups[grp.name]
        return notification

    def with_suppressed(self, notification: Notification) -> Notification:
        if self.suppressed:  # the hour rolled on before a quiet moment came: say it here
            notification.suppressed = self.suppressed
            notification.suppressed_events = self.suppressed_events
            notification.body += (f"\n\n{self.suppressed} earlier notification(s) "
                                  f"({self.suppressed_events} events) were suppressed by "
                                  f"max-per-hour = {self.settings.max_per_hour}.")
            self.clear_suppressed()
        return notification

    def suppress(self, notification: Notification, now: float) -> None:
        events = sum(c["new"] for c in notification.firing + notification.resolved) or 1
        self.suppressed += 1
        self.suppressed_events += events
        for cond in notification.firing + notification.resolved:
            self.suppressed_by_key[cond["key"]] += max(cond["new"], 1)
        self.suppressed_level = max(self.suppressed_level, notification.level)
        if self.suppressed_since is None:
            self.suppressed_since = now
        self.counts["suppressed"] += 1
        self.records.append({**self.record_of(notification), "delivery": "suppressed"})

    def summarize_suppressed(self, now: float) -> Notification:
        firing = [c.view() for c in self.firing()]
        top = ", ".join(f"{key} x{n}" for key, n in self.suppressed_by_key.most_common(10))
        still = "; ".join(f"{c['key']} ({c['level']}): {c['summary']}" for c in firing) or "none"
        since = now - (self.suppressed_since or now)
        body = (f"{self.suppressed} notification(s) carrying {self.suppressed_events} events "
                f"were suppressed over the last {since:.0f}s (max-per-hour = "
                f"{self.settings.max_per_hour}).\nSuppressed: {top}\nStill firing: {still}")
        title = (f"[{self.suppressed_level.name}] Python3 Module: {self.suppressed} "
                 "notifications suppressed")
        notification = Notification(now, "suppressed", "alerts", self.suppressed_level, title,
                                    body, firing, [], self.suppressed, self.suppressed_events)
        self.clear_suppressed()
        return notification

    def clear_suppressed(self) -> None:
        self.suppressed = self.suppressed_events = 0
        self.suppressed_by_key.clear()
        self.suppressed_level = Level.INFO
        self.suppressed_since = None

    def send(self, notification: Notification, now: float) -> Notification:
        self.sent_at.append(now)
        self.counts["sent"] += 1
        self.records.append({**self.record_of(notification), "delivery": "sent"})
        return notification

    @staticmethod
    def record_of(notification: Notification) -> dict[str, Any]:
        return {"at": notification.at, "kind": notification.kind, "group": notification.group,
                "level": notification.level.name, "title": notification.title,
                "keys": [c["key"] for c in notification.firing + notification.resolved],
                "suppressed": notification.suppressed}

    # ------------------------------------------------------------ visibility
    def snapshot(self) -> dict[str, Any]:
        now = self.clock()
        return {"firing": [{**c.view(), "seconds_ago": now - c.first_at} for c in self.firing()],
                "counts": dict(self.counts), "suppressed_pending": self.suppressed,
                "sent_last_hour": sum(1 for t in self.sent_at if t > now - HOUR),
                "recent": [{**r, "seconds_ago": now - r["at"]} for r in list(self.records)[-20:]]}


def describe(n: Notification) -> tuple[str, str]:
    """Subject and body in the spec's shape: ``[LEVEL] Python3 Module: title``."""
    lead = n.firing[0] if n.firing else (n.resolved[0] if n.resolved else None)
    if n.kind == "resolved":
        what = (f"resolved: {lead['summary']}" if len(n.resolved) == 1
                else f"{len(n.resolved)} alerts resolved")
    elif lead is not None:
        what = lead["summary"] if len(n.firing) == 1 else f"{len(n.firing)} alerts firing"
        if n.kind == "repeat":
            what = f"still firing: {what}"
    else:
        what = "no alerts"
    title = f"[{n.level.name}] Python3 Module: {n.group}: {what}"
    lines = []
    for label, conds in (("FIRING", n.firing), ("RESOLVED", n.resolved)):
        for c in conds:
            times = f" ({c['occurrences']} times, {c['new']} new)" if c["occurrences"] > 1 else ""
            lines.append(f"{label} {c['level']} {c['key']}: {c['summary']}{times}")
            lines.extend(f"    {k}: {v}" for k, v in list(c["details"].items())[:12])
    return title[:250], "\n".join(lines)
