"""Counting what actually ran: each call made by a fault test appends its tag to a file.

Owns: the ledger file, the code a call runs to mark it, and the per-call outcome book.
Must not touch: the sidecar or the transports (tests pass the calling function in).
"""
from __future__ import annotations

import collections
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.protocol import SidecarError

# Run in the worker: one line per execution, so a call run twice shows up twice.
MARK_CODE = "open(ledger, 'a').write(tag + '\\n'); tag"


@dataclass
class Outcome:
    tag: str
    kind: str  # "ok" or the error kind
    seconds: float
    sent: bool | None = None  # False: the client proved it was never sent


@dataclass
class Ledger:
    path: Path
    outcomes: list[Outcome] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.path.write_text("")

    def runs(self) -> collections.Counter:
        return collections.Counter(self.path.read_text().split())

    def call(self, fn: Callable[[str, str, float], Any], label: str, timeout: float) -> Outcome:
        """``fn(code_vars_ledger, tag, timeout)`` makes one marked call; its outcome is booked."""
        tag = f"{label}-{next(self._ids)}"
        t0 = time.monotonic()
        try:
            value = fn(str(self.path), tag, timeout)
            assert value == tag, (value, tag)
            out = Outcome(tag, "ok", time.monotonic() - t0)
        except SidecarError as exc:
            out = Outcome(tag, exc.kind, time.monotonic() - t0, exc.details.get("sent"))
        self.outcomes.append(out)
        return out

    def check_never_twice(self) -> dict[str, int]:
        """Every ``ok`` call ran exactly once; no call ran twice; calls proven unsent never ran.
        Returns the runs per tag."""
        runs = self.runs()
        twice = {t: n for t, n in runs.items() if n > 1}
        assert not twice, f"calls run more than once: {twice}"
        for out in self.outcomes:
            if out.kind == "ok":
                assert runs[out.tag] == 1, (out, runs[out.tag])
            if out.sent is False:
                assert runs[out.tag] == 0, (out, "ran although never sent")
        unknown = set(runs) - {o.tag for o in self.outcomes}
        assert not unknown, f"runs of calls nobody made: {unknown}"
        return dict(runs)
