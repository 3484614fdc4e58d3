"""Poison requests: a request that keeps crashing its worker is refused, not run again.

Owns: fingerprinting a request (op, code or target, arguments), counting each fingerprint's
worker crashes within a window, the quarantine of fingerprints that reached the limit (with a
TTL and an entry bound), whether a crash counts toward the circuit breaker, operator clearing,
and the events it publishes. Must not touch: processes, sockets, timers, the breaker itself
(``FallbackChain`` asks ``record_crash`` and records the answer), or logging of its events
(subscribers decide). Time comes from an injected monotonic clock, so it is tested without
sleeping, like ``bridge/breaker.py``.

::

    Service.dispatch ---- check(request) ----> quarantined?  yes: `quarantined` at once (no worker)
                                                   | no (one set lookup while nothing matches)
    FallbackChain: the attempt answered `crashed` -> record_crash(fingerprint(request))
        first crash of this fingerprint in the window: counts toward the breaker
        a repeat: does not count (one caller cannot open the breaker for all)
        the `crashes`-th within `window`: quarantined for `ttl` -> QuarantineEvent
    FallbackChain: it ran to its end (value, `user` or `timeout`) -> record_run(request): its
        crashes are forgotten (it was in flight when a worker was killed from outside: not a
        poison; a poison crashes every time, it never runs its whole timeout)

Only the fingerprint's hash, its op and the code's first line (or the call's target) are kept:
never the arguments, which may hold process data or secrets. The hash is keyed (blake2b, 16
bytes, with a random key per ``Quarantine``, i.e. per sidecar run): a fingerprint shown in
health or diagnostics cannot be used to guess low-entropy arguments (a PIN, a recipe number)
by hashing candidates.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.codec import pack_raw
from bridge.protocol import BadRequest

Clock = Callable[[], float]

# Envelope members that differ between identical requests: who sent (or relayed) it and how long
# it may run.
_NOT_FINGERPRINTED = frozenset({"id", "token", "timeout", "routed"})
_LABEL_CHARS = 120  # the code's first line, shortened: enough to recognise, not to leak
KEY_BYTES = 16     # the per-sidecar secret key of the fingerprint hash
DIGEST_BYTES = 16  # 32 hex characters


@dataclass(frozen=True)
class QuarantineConfig:
    """Quarantine knobs; mirrors ``python3.quarantine`` in the YAML config."""

    enabled: bool = True
    """False: nothing is quarantined and every crash counts toward the breaker as before."""
    crashes: int = 2
    """Worker crashes of one fingerprint within ``window`` that quarantine it."""
    window: float = 600.0
    """Seconds over which a fingerprint's crashes are counted."""
    ttl: float = 1800.0
    """Seconds a quarantined fingerprint is refused before it may run again."""
    max_entries: int = 1000
    """Fingerprints remembered (crash records and quarantined ones); the oldest go first."""

    def __post_init__(self) -> None:
        for name in ("crashes", "max_entries"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"quarantine {name} must be a whole number >= 1, got {value!r}")
        for name in ("window", "ttl"):
            if not getattr(self, name) > 0:
                raise ValueError(f"quarantine {name} must be a positive number of seconds, "
                                 f"got {getattr(self, name)!r}")


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What identifies a request: ``id`` hashes everything but id/token/timeout."""

    id: str
    op: str
    label: str
    """The code's first line (``execute``) or the target (``call``)."""


def request_label(request: Mapping[str, Any]) -> tuple[str, str]:
    """(op, code's first line or target): cheap, so a request is only hashed when it matches."""
    op = str(request.get("op"))
    if op == "call":
        return op, str(request.get("target"))[:_LABEL_CHARS * 2]
    code = request.get("code")
    first = code.lstrip().partition("\n")[0] if isinstance(code, str) else ""
    return op, first[:_LABEL_CHARS]


def _canonical(value: Any, depth: int) -> Any:
    # Maps in key order (of their encoded keys: keys may be of mixed types), so two equal
    # requests whose envelope (or vars/kwargs) was built in another order share a fingerprint.
    # Only two levels deep: below that a client encodes the same value the same way, and
    # re-walking a large Dataset in Python would stall the loop (40 ms for 0.5 MB).
    if isinstance(value, dict) and depth:
        return {k: _canonical(value[k], depth - 1) for k in sorted(value, key=pack_raw)}
    return value


def fingerprint(request: Mapping[str, Any], key: bytes) -> Fingerprint:
    """The fingerprint of a decoded (``unpack_raw``) request envelope, hashed with ``key``
    (a ``Quarantine``'s own secret key: ``Quarantine.fingerprint``)."""
    op, label = request_label(request)
    body = {k: v for k, v in request.items() if k not in _NOT_FINGERPRINTED}
    digest = hashlib.blake2b(pack_raw(_canonical(body, 2)), digest_size=DIGEST_BYTES,
                             key=key).hexdigest()
    return Fingerprint(digest, op, label)


@dataclass(frozen=True, slots=True)
class QuarantineEvent:
    """One published change; ``at`` is the quarantine clock's (monotonic) reading."""

    action: str
    """``quarantined``, ``cleared`` (by an operator), ``expired`` (TTL) or ``evicted`` (bound)."""
    fingerprint: str
    op: str
    label: str
    crashes: int
    at: float
    reason: str


@dataclass(slots=True, eq=False)
class _Record:
    print: Fingerprint
    crash_times: deque[float] = field(default_factory=deque)
    crashes: int = 0  # in total, while remembered
    since: float | None = None  # quarantined at (None: only crash records)
    expires: float = 0.0


class Quarantine:
    """Thread-safe (a tiny lock, never held while subscribers run); see the module docstring."""

    def __init__(self, config: QuarantineConfig | None = None, *, clock: Clock = time.monotonic,
                 wall_clock: Clock = time.time, key: bytes | None = None) -> None:
        self.config = config or QuarantineConfig()
        # Secret, never shown: fingerprints cannot be recomputed outside this sidecar.
        self._key = secrets.token_bytes(KEY_BYTES) if key is None else key
        self._clock = clock
        self._wall = wall_clock
        self._lock = threading.Lock()
        self._records: OrderedDict[str, _Record] = OrderedDict()  # least recently crashed first
        self._held: dict[tuple[str, str], int] = {}  # quarantined entries per (op, label)
        self._tracked: dict[tuple[str, str], int] = {}  # every record per (op, label)
        self._next_expiry = float("inf")
        self._subscribers: list[Callable[[QuarantineEvent], None]] = []
        self.refused = 0
        self.crashes_not_counted = 0

    @property
    def tracking(self) -> bool:
        """Whether any fingerprint has crashed lately (only then do runs need to be reported)."""
        return bool(self._records)

    # -- callers --------------------------------------------------------------------------

    def fingerprint(self, request: Mapping[str, Any]) -> Fingerprint:
        """The request's fingerprint under this quarantine's key (what ``record_crash`` takes)."""
        return fingerprint(request, self._key)

    def check(self, request: Mapping[str, Any]) -> dict[str, Any] | None:
        """The quarantine entry (``describe``) that refuses this request, or None to run it."""
        if not self._held:  # the hot path: nothing is quarantined
            return None
        events: list[QuarantineEvent] = []
        with self._lock:
            now = self._clock()
            self._expire(now, events)
            entry = None
            if request_label(request) in self._held:
                record = self._records.get(fingerprint(request, self._key).id)
                if record is not None and record.since is not None:
                    self.refused += 1
                    entry = self._describe(record, now)
        self._publish(events)
        return entry

    def record_crash(self, print_: Fingerprint, accepted_at: float | None = None) -> bool:
        """A call with this fingerprint crashed its worker. True: count it toward the breaker.

        ``accepted_at`` (the quarantine clock's reading when the call was admitted): a call
        that was already admitted when the last crash of its fingerprint was recorded is the
        same incident, not new evidence (two workers killed at once, by the OOM killer or an
        operator, while both ran a popular request); only a call sent *after* a crash and
        crashing again counts. A poison retried after its crash always is."""
        if not self.config.enabled:
            return True
        cfg = self.config
        events: list[QuarantineEvent] = []
        with self._lock:
            now = self._clock()
            self._expire(now, events)
            record = self._records.get(print_.id)
            if record is None:
                record = self._records[print_.id] = _Record(print_)
                self._count(self._tracked, print_, 1)
            self._records.move_to_end(print_.id)
            times = record.crash_times
            while times and times[0] <= now - cfg.window:
                times.popleft()
            if times and accepted_at is not None and accepted_at < times[-1]:
                self.crashes_not_counted += 1  # in flight with the crash already counted
                counts = False
            else:
                counts = self._count_crash(record, times, now, events)
        self._publish(events)
        return counts

    def _count_crash(self, record: _Record, times: deque, now: float,
                     events: list[QuarantineEvent]) -> bool:
        """A crash that is new evidence (under the lock); True if the breaker counts it."""
        cfg, print_ = self.config, record.print
        counts = not times  # repeats within the window are one failure to the breaker
        times.append(now)
        record.crashes += 1
        if record.since is None and len(times) >= cfg.crashes:
            record.since, record.expires = now, now + cfg.ttl
            self._next_expiry = min(self._next_expiry, record.expires)
            self._count(self._held, print_, 1)
            events.append(self._event("quarantined", record, now,
                                      f"{len(times)} worker crashes within {cfg.window:g}s"))
        self._bound(now, events, keep=print_.id)
        if not counts:
            self.crashes_not_counted += 1
        return counts

    def record_run(self, request: Mapping[str, Any]) -> None:
        """A call ran to its end (a value, the user's own exception, or its whole ``timeout``)
        without a crash.

        A poison request crashes every time it runs; an innocent one that was merely in flight
        when its worker was killed from outside (the OOM killer, an operator) runs fine in
        between, and that forgets its crashes: it is never quarantined for someone else's kill.
        """
        if not self._records:
            return
        with self._lock:
            if request_label(request) not in self._tracked:
                return
            key = fingerprint(request, self._key).id
            record = self._records.get(key)
            if record is not None and record.since is None:
                self._drop(key, "forgotten", self._clock(), "", [])

    def subscribe(self, callback: Callable[[QuarantineEvent], None]) -> None:
        """Call ``callback(event)`` on every change, outside the lock, in order."""
        with self._lock:
            self._subscribers.append(callback)

    # -- operators ------------------------------------------------------------------------

    def clear(self, fingerprint_id: str | None = None) -> list[str]:
        """Lift one quarantined fingerprint (or all, with None); forget its crashes. The ids."""
        events: list[QuarantineEvent] = []
        try:
            with self._lock:
                now = self._clock()
                self._expire(now, events)
                record = self._records.get(fingerprint_id or "")
                if fingerprint_id is None:
                    ids = [k for k, r in self._records.items() if r.since is not None]
                elif record is not None and record.since is not None:
                    ids = [fingerprint_id]
                else:  # (what expired on the way is still told: the finally below)
                    raise KeyError(fingerprint_id)
                for key in ids:
                    self._drop(key, "cleared", now, "cleared by an operator", events)
                if fingerprint_id is None:  # a clean slate: crash records too
                    for key in list(self._records):
                        self._drop(key, "forgotten", now, "", events)
        finally:
            self._publish(events)
        return ids

    def sweep(self) -> None:
        """Expire what passed its TTL now (also done lazily on every other call)."""
        events: list[QuarantineEvent] = []
        with self._lock:
            self._expire(self._clock(), events)
        self._publish(events)

    def entries(self) -> list[dict[str, Any]]:
        """The quarantined fingerprints, oldest first, JSON-ready (never the arguments)."""
        events: list[QuarantineEvent] = []
        with self._lock:
            now = self._clock()
            self._expire(now, events)
            found = sorted((r for r in self._records.values() if r.since is not None),
                           key=lambda r: r.since or 0.0)
            listed = [self._describe(r, now) for r in found]
        self._publish(events)
        return listed

    def snapshot(self) -> dict[str, Any]:
        """For ``health`` and metrics: the settings, the counters and the entries."""
        entries = self.entries()
        with self._lock:
            tracked = len(self._records)
        cfg = self.config
        return {"enabled": cfg.enabled, "crashes": cfg.crashes, "window": cfg.window,
                "ttl": cfg.ttl, "max_entries": cfg.max_entries, "tracked": tracked,
                "refused": self.refused, "crashes_not_counted": self.crashes_not_counted,
                "entries": entries}

    # -- internals (under self._lock) -----------------------------------------------------

    def _describe(self, record: _Record, now: float) -> dict[str, Any]:
        since = record.since or now
        wall = self._wall()
        return {"fingerprint": record.print.id, "op": record.print.op,
                "label": record.print.label, "crashes": record.crashes,
                "since": round(wall - (now - since), 3),
                "expires": round(wall + (record.expires - now), 3),
                "expires_in": round(max(record.expires - now, 0.0), 3)}

    def _event(self, action: str, record: _Record, now: float, reason: str) -> QuarantineEvent:
        p = record.print
        return QuarantineEvent(action, p.id, p.op, p.label, record.crashes, now, reason)

    @staticmethod
    def _count(counts: dict[tuple[str, str], int], print_: Fingerprint, delta: int) -> None:
        key = (print_.op, print_.label)
        left = counts.get(key, 0) + delta
        if left > 0:
            counts[key] = left
        else:
            counts.pop(key, None)

    def _drop(self, key: str, action: str, now: float, reason: str,
              events: list[QuarantineEvent]) -> None:
        # "forgotten" (a crash record that ran fine, left the window or was cleared) is not
        # published: nothing was ever refused because of it.
        record = self._records.pop(key)
        self._count(self._tracked, record.print, -1)
        if record.since is None:
            return
        self._count(self._held, record.print, -1)
        events.append(self._event(action, record, now, reason))

    def _expire(self, now: float, events: list[QuarantineEvent]) -> None:
        # Crash records whose last crash left the window: the least recently crashed are first.
        old, stale = now - self.config.window, []
        for key, record in self._records.items():
            if record.since is None:
                if record.crash_times[-1] > old:
                    break
                stale.append(key)
        for key in stale:
            self._drop(key, "forgotten", now, "", events)
        if now < self._next_expiry:
            return
        gone = [k for k, r in self._records.items() if r.since is not None and r.expires <= now]
        for key in gone:
            self._drop(key, "expired", now, f"quarantined for {self.config.ttl:g}s", events)
        self._next_expiry = min((r.expires for r in self._records.values()
                                 if r.since is not None), default=float("inf"))

    def _bound(self, now: float, events: list[QuarantineEvent], keep: str) -> None:
        # Crash records go before quarantined entries; within each, the least recently crashed;
        # never the one just recorded (it would never reach the limit).
        while len(self._records) > self.config.max_entries:
            victim = next((k for k, r in self._records.items()
                           if r.since is None and k != keep), next(iter(self._records)))
            self._drop(victim, "evicted", now,
                       f"more than {self.config.max_entries} fingerprints "
                       "(python3.quarantine.max-entries)", events)

    def _publish(self, events: list[QuarantineEvent]) -> None:
        if not events:
            return
        with self._lock:
            subscribers = list(self._subscribers)
        for event in events:
            for callback in subscribers:
                callback(event)


# ---------------------------------------------------------------- the operator's interface

def refusal(entry: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The message and error details of a ``quarantined`` reply for a quarantine entry."""
    message = (f"this request crashed its worker {entry['crashes']} times and is quarantined "
               f"for another {entry['expires_in']:.0f}s without being run (fingerprint "
               f"{entry['fingerprint']}, {entry['op']} {entry['label']!r}); fix the code or its "
               f"arguments, or ask an operator: `py3sidecar quarantine clear "
               f"{entry['fingerprint']}`")
    return message, {**entry, "retry_after": entry["expires_in"]}


def quarantine_op(quarantine: Quarantine, request: Mapping[str, Any]) -> dict[str, Any]:
    """The ``quarantine`` op: ``action`` list (default) | clear, optional ``fingerprint``."""
    action = request.get("action") or "list"
    fingerprint_id = request.get("fingerprint")
    if action not in ("list", "clear"):
        raise BadRequest(f"unknown quarantine 'action' {action!r}; expected list or clear")
    if fingerprint_id is not None and not isinstance(fingerprint_id, str):
        raise BadRequest(f"quarantine 'fingerprint' must be a string, got "
                         f"{type(fingerprint_id).__name__}")
    cleared: list[str] = []
    if action == "clear":
        try:
            cleared = quarantine.clear(fingerprint_id or None)
        except KeyError:
            raise BadRequest(f"no quarantined fingerprint {fingerprint_id!r}; see "
                             "`py3sidecar quarantine list`") from None
    return {"cleared": cleared, **quarantine.snapshot()}
