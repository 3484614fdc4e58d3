"""Configuration: the YAML file, the embedded default, validation with messages that help.

Owns: reading YAML in the shape of the spec's ``application.yml`` (``python3:`` -> ``pool``,
``worker``, ``bridge``, ...), merging it over the embedded default (``sidecar/default.yml``),
validating once, and building each component's settings object. Must not touch: processes,
sockets. Every key has its default and a comment in ``default.yml``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

DEFAULT_YAML = (Path(__file__).with_name("default.yml")).read_text()

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$")
_SIZE_UNITS = {None: 1, "B": 1, "KB": 1000, "KiB": 1024, "MB": 1000**2, "MiB": 1024**2,
               "GB": 1000**3, "GiB": 1024**3}


class ConfigError(ValueError):
    """A configuration problem; the message names the key, the value and what is allowed."""


def parse_duration(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 500ms, 30s, 5m, 1h")
    if isinstance(value, (int, float)):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError("expected a duration such as 500ms, 30s, 5m, 1h or a number of seconds")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def parse_size(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a size such as 512KiB or 64MiB")
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError("expected a size such as 65536, 512KiB or 64MiB")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=lambda name: name.replace("_", "-"),
                              populate_by_name=True, frozen=True)


def _durations(*names: str):
    return field_validator(*names, mode="before")(lambda cls, v: parse_duration(v))


def _sizes(*names: str):
    return field_validator(*names, mode="before")(lambda cls, v: parse_size(v))


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ValueError(f"{name} must be greater than 0")


class PoolConfig(Section):
    initial_size: int
    min_size: int
    max_size: int
    queue_size: int
    max_restarts: int
    restart_window: float
    restart_backoff: float
    restart_backoff_max: float
    _d = _durations("restart_window", "restart_backoff", "restart_backoff_max")

    @model_validator(mode="after")
    def _sizes_in_order(self) -> "PoolConfig":
        if self.min_size < 0 or self.max_size < 1:
            raise ValueError(f"min-size ({self.min_size}) must be >= 0 and max-size "
                             f"({self.max_size}) >= 1")
        if not self.min_size <= self.initial_size <= self.max_size:
            raise ValueError(f"sizes must satisfy min-size <= initial-size <= max-size, got "
                             f"{self.min_size} <= {self.initial_size} <= {self.max_size}")
        if self.queue_size < 0 or self.max_restarts < 1:
            raise ValueError("queue-size must be >= 0 and max-restarts >= 1")
        _positive("restart-window", self.restart_window)
        return self


class WorkerConfig(Section):
    python: str
    paths: list[str]
    preload: list[str]
    env: dict[str, str]
    call_timeout: float
    max_call_timeout: float
    kill_grace: float
    start_timeout: float
    max_output: int
    _d = _durations("call_timeout", "max_call_timeout", "kill_grace", "start_timeout")
    _s = _sizes("max_output")

    @model_validator(mode="after")
    def _timeouts(self) -> "WorkerConfig":
        for name in ("call_timeout", "max_call_timeout", "start_timeout"):
            _positive(name.replace("_", "-"), getattr(self, name))
        if self.call_timeout > self.max_call_timeout:
            raise ValueError(f"call-timeout ({self.call_timeout:g}s) must not exceed "
                             f"max-call-timeout ({self.max_call_timeout:g}s)")
        return self


class ZmqConfig(Section):
    enabled: bool
    endpoint: str

    @field_validator("endpoint")
    @classmethod
    def _tcp(cls, value: str) -> str:
        if not re.match(r"^tcp://[^:]+:\d+$", value):
            raise ValueError("expected tcp://HOST:PORT, e.g. tcp://127.0.0.1:5557")
        return value


class BridgeConfig(Section):
    token: str
    token_file: str
    max_message_size: int
    zmq: ZmqConfig
    _s = _sizes("max_message_size")


class ShutdownConfig(Section):
    drain_timeout: float
    _d = _durations("drain_timeout")


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class Python3Config(Section):
    pool: PoolConfig
    worker: WorkerConfig
    bridge: BridgeConfig
    shutdown: ShutdownConfig
    logging: LoggingConfig


class Config(Section):
    python3: Python3Config


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merge(base.get(key), value) if key in base else value
        return merged
    return override


def _describe(error: dict[str, Any], source: str) -> str:
    key = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return (f"{source}: unknown key '{key}'; see `py3sidecar config --print-default` for "
                "the keys")
    if error["type"] == "missing":
        return f"{source}: key '{key}' is missing"
    value = error.get("input")
    shown = "" if isinstance(value, dict) else f" = {value!r}"
    return f"{source}: {key or 'python3'}{shown}: {message}"


def load(path: str | Path | None = None, *, text: str | None = None) -> Config:
    """Load the embedded default, overlaid with a YAML file (or text); raise ``ConfigError``."""
    source = str(path) if path else "<config>"
    data = yaml.safe_load(DEFAULT_YAML)
    if path is not None or text is not None:
        try:
            raw = Path(path).read_text() if path is not None else text
        except OSError as exc:
            raise ConfigError(f"cannot read the config file {source}: {exc.strerror}") from None
        try:
            user = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source} is not valid YAML: {exc}") from None
        if user is not None:
            if not isinstance(user, dict) or not isinstance(user.get("python3", {}), dict):
                raise ConfigError(f"{source}: expected a mapping with a top-level key "
                                  "'python3:' (see `py3sidecar config --print-default`)")
            data = _merge(data, user)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(e, source) for e in exc.errors()]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None
