"""One figure of the report: ours against a peer measured in the same run, and its goal.

Owns: ``Row`` (the ratio, and whether the goal is met). Must not touch: measuring or output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Row:
    section: str
    figure: str
    ours: float | None = None
    peer: float | None = None
    unit: str = ""
    peer_name: str = ""
    goal: str = ""
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.ours is None or not self.peer:
            return None
        return self.ours / self.peer

    @property
    def met(self) -> str:
        """"yes"/"NO" against the goal: "<= 2.0x", ">= 1.2x" (on the ratio) or "<= 20 ms"
        (on ours)."""
        if not self.goal:
            return ""
        if self.ours is None:
            return "not measured"
        sign, number = self.goal.split()[:2]
        if number.endswith("x"):
            value = self.ratio
            limit = float(number[:-1])
        else:
            value, limit = self.ours, float(number)
        if value is None:
            return "not measured"
        ok = value <= limit if sign == "<=" else value >= limit
        return "yes" if ok else "NO"
