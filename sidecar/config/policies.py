"""The policies' config sections: ``python3.circuit-breaker`` and ``python3.quarantine``.

Owns: those two pydantic models, their defaults and their checks (re-exported from
``sidecar.config.model``). Must not touch: the policies themselves (bridge/breaker.py,
sidecar/routing/quarantine.py) or the YAML loading.
"""

from __future__ import annotations

from pydantic import model_validator

from sidecar.config.fields import Duration, Section, _positive


class CircuitBreakerConfig(Section):
    """``python3.circuit-breaker``: the spec's four keys plus window, probes and timeouts."""

    enabled: bool = True
    failure_threshold: int = 5
    failure_rate_threshold: float = 0.5
    window_size: int = 20
    minimum_calls: int = 10
    timeout: Duration = 60.0
    half_open_max_probes: int = 3
    success_threshold: int = 3
    count_timeouts: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> "CircuitBreakerConfig":
        for name in ("failure_threshold", "window_size", "minimum_calls",
                     "half_open_max_probes", "success_threshold"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} = {getattr(self, name)!r} must be "
                                 ">= 1")
        if not 0 < self.failure_rate_threshold <= 1:
            raise ValueError(f"failure-rate-threshold = {self.failure_rate_threshold!r} must be "
                             "in (0, 1]; 0.5 means half the calls in the window")
        if self.minimum_calls > self.window_size:
            raise ValueError(f"minimum-calls = {self.minimum_calls} cannot exceed window-size = "
                             f"{self.window_size}: the failure rate would never be checked")
        _positive("timeout", self.timeout)
        return self


class QuarantineSection(Section):
    """``python3.quarantine``: poison requests (see sidecar/routing/quarantine.py)."""

    enabled: bool = True
    crashes: int = 2
    window: Duration = 600.0
    ttl: Duration = 1800.0
    max_entries: int = 1000

    @model_validator(mode="after")
    def _bounded(self) -> "QuarantineSection":
        for name in ("crashes", "max_entries"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} = {getattr(self, name)!r} must be "
                                 ">= 1")
        _positive("window", self.window)
        _positive("ttl", self.ttl)
        return self
