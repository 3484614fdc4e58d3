"""The config sections of the fallback chain: ``python3.fallback`` (strategies, fall-through,
the legacy secondary pool, direct execution, the remote sidecar).

Owns: those models, their defaults and checks. Must not touch: reading YAML, the named pools'
routes (``sidecar.config.model`` checks every route's names against ``python3.pools``).
"""

from __future__ import annotations

import re

from pydantic import field_validator, model_validator

from sidecar.config.fields import Duration, Section, _positive, _section

FALLBACK_STRATEGIES = ("primary", "secondary", "direct", "remote")
# Kinds a fallback may act on: the call did not run (or, for `crashed`, the operator accepts a
# re-run). `user` and `timeout` never fall through: another strategy would fail the same way.
FALL_THROUGH_ALLOWED = ("circuit_open", "overloaded", "unavailable", "crashed", "internal")


class SecondaryPoolConfig(Section):
    python: str = ""
    env: dict[str, str] = {}
    initial_size: int = 1
    min_size: int = 0
    max_size: int = 2
    queue_size: int = 16

    @model_validator(mode="after")
    def _sizes_in_order(self) -> "SecondaryPoolConfig":
        if not 0 <= self.min_size <= self.initial_size <= self.max_size or self.initial_size < 1:
            raise ValueError(f"sizes must satisfy 0 <= min-size <= initial-size <= max-size and "
                             f"initial-size >= 1, got {self.min_size} <= {self.initial_size} <= "
                             f"{self.max_size}")
        if self.queue_size < 0:
            raise ValueError(f"queue-size = {self.queue_size} must be >= 0")
        return self


class DirectConfig(Section):
    python: str = ""
    max_concurrent: int = 2
    start_timeout: Duration = 10.0

    @model_validator(mode="after")
    def _bounded(self) -> "DirectConfig":
        if self.max_concurrent < 1:
            raise ValueError(f"max-concurrent = {self.max_concurrent} must be >= 1")
        _positive("start-timeout", self.start_timeout)
        return self


class RemoteConfig(Section):
    endpoint: str = ""
    token: str = ""
    token_file: str = ""
    grace: Duration = 0.5
    curve_server_key: str = ""
    client_key_file: str = ""

    @field_validator("curve_server_key")
    @classmethod
    def _z85(cls, value: str) -> str:
        if value:
            from bridge.zmq_auth import CurveKeyError, check_server_key

            try:
                check_server_key(value, "python3.fallback.remote.curve-server-key")
            except CurveKeyError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("client_key_file")
    @classmethod
    def _key_file(cls, value: str) -> str:
        if value:
            from bridge.zmq_auth import CurveKeyError, load_client_keys

            try:
                load_client_keys(value)
            except CurveKeyError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("endpoint")
    @classmethod
    def _tcp(cls, value: str) -> str:
        if value and not re.match(r"^tcp://[^:]+:\d+$", value):
            raise ValueError("expected tcp://HOST:PORT of another sidecar, e.g. "
                             "tcp://10.0.0.2:5557")
        return value


class FallbackConfig(Section):
    """``python3.fallback``: the ordered strategies behind the primary pool."""

    strategies: list[str] = ["primary"]
    fall_through: list[str] = ["circuit_open", "overloaded", "unavailable"]
    secondary: SecondaryPoolConfig = _section(SecondaryPoolConfig)
    direct: DirectConfig = _section(DirectConfig)
    remote: RemoteConfig = _section(RemoteConfig)

    @model_validator(mode="after")
    def _combination(self) -> "FallbackConfig":
        # Names beyond FALLBACK_STRATEGIES are named pools: Python3Config checks they exist.
        if not self.strategies or self.strategies[0] != "primary":
            raise ValueError(f"strategies = {self.strategies!r} must start with 'primary'")
        if len(set(self.strategies)) != len(self.strategies):
            raise ValueError(f"strategies = {self.strategies!r} names a strategy twice")
        never = [k for k in self.fall_through if k in ("user", "timeout")]
        if never:
            raise ValueError(f"fall-through = {self.fall_through!r}: {never!r} never fall "
                             "through (the user's code or its time budget would fail the same "
                             "way elsewhere)")
        bad = [k for k in self.fall_through if k not in FALL_THROUGH_ALLOWED]
        if bad:
            raise ValueError(f"fall-through = {self.fall_through!r}: {bad!r} cannot fall "
                             f"through; allowed: {', '.join(FALL_THROUGH_ALLOWED)}")
        if "remote" in self.strategies:
            if not self.remote.endpoint:
                raise ValueError("strategies includes 'remote' but remote.endpoint is empty; "
                                 "set it to the other sidecar's tcp://HOST:PORT")
            if not (self.remote.token or self.remote.token_file):
                raise ValueError("strategies includes 'remote' but neither remote.token nor "
                                 "remote.token-file is set; use the other sidecar's token")
        return self
