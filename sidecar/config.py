"""Configuration: the YAML file, the embedded default, validation with messages that help.

Owns: reading YAML in the shape of the spec's ``application.yml`` (``python3:`` -> ``pool``,
``worker``, ``bridge``, ...), merging it over the embedded default (``sidecar/default.yml``),
validating once, and building each component's settings object. Must not touch: processes,
sockets. Every key has its default and a comment in ``default.yml``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    ValidationError,
    field_validator,
    model_validator,
)

DEFAULT_YAML = (Path(__file__).with_name("default.yml")).read_text()

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$")
_SIZE_UNITS = {None: 1, "B": 1, "KB": 1000, "KiB": 1024, "MB": 1000**2, "MiB": 1024**2,
               "GB": 1000**3, "GiB": 1024**3}


def _check_port(value: int) -> int:
    if not 0 <= value <= 65535:
        raise ValueError("expected a TCP port 0..65535 (0: any free port)")
    return value


def _check_host(value: str) -> str:
    if not value.strip():
        raise ValueError("expected a listen address such as 127.0.0.1")
    return value.strip()


Port = Annotated[int, AfterValidator(_check_port)]
ListenHost = Annotated[str, AfterValidator(_check_host)]


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
    spares: int
    queue_size: int
    max_restarts: int
    restart_window: float
    _d = _durations("restart_window")

    @model_validator(mode="after")
    def _sizes_in_order(self) -> "PoolConfig":
        if self.min_size < 0 or self.max_size < 1:
            raise ValueError(f"min-size ({self.min_size}) must be >= 0 and max-size "
                             f"({self.max_size}) >= 1")
        if not self.min_size <= self.initial_size <= self.max_size:
            raise ValueError(f"sizes must satisfy min-size <= initial-size <= max-size, got "
                             f"{self.min_size} <= {self.initial_size} <= {self.max_size}")
        if self.queue_size < 0 or self.max_restarts < 1 or self.spares < 0:
            raise ValueError("queue-size and spares must be >= 0 and max-restarts >= 1")
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
    reload: bool
    fd_output: Literal["log", "discard"]
    output_log_rate: int
    user: str
    group: str
    _d = _durations("call_timeout", "max_call_timeout", "kill_grace", "start_timeout")
    _s = _sizes("max_output", "output_log_rate")

    @model_validator(mode="after")
    def _account_exists(self) -> "WorkerConfig":
        from sidecar.confinement import worker_credentials

        worker_credentials(self.user.strip(), self.group.strip())  # names the missing account
        return self

    @model_validator(mode="after")
    def _timeouts(self) -> "WorkerConfig":
        for name in ("call_timeout", "max_call_timeout", "start_timeout"):
            _positive(name.replace("_", "-"), getattr(self, name))
        if self.output_log_rate < 0:
            raise ValueError("output-log-rate must be >= 0 bytes per second (0: log none)")
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


class Py4JConfig(Section):
    enabled: bool
    host: ListenHost
    python_port: Port
    java_port: Port
    max_connections: int
    idle_timeout: float
    _d = _durations("idle_timeout")

    @field_validator("max_connections")
    @classmethod
    def _cap(cls, value: int) -> int:
        if value < 1:
            raise ValueError("expected at least 1 connection (one per JVM thread calling in)")
        return value

    @field_validator("idle_timeout")
    @classmethod
    def _idle(cls, value: float) -> float:
        if value < 0:
            raise ValueError("expected a duration such as 1h, or 0 to never close idle ones")
        return value



class BridgeConfig(Section):
    token: str
    token_file: str
    max_message_size: int
    zmq: ZmqConfig
    py4j: Py4JConfig
    _s = _sizes("max_message_size")


class HttpConfig(Section):
    """``python3.http``: /metrics, /livez, /readyz, /health, /dashboard (see sidecar/http.py)."""

    enabled: bool
    host: ListenHost
    port: Port


class ScoreSection(Section):
    timeout_penalty: int
    crash_penalty: int
    oom_penalty: int
    io_penalty: int
    other_penalty: int
    replace_threshold: int
    history_size: int


class HealthConfig(Section):
    enabled: bool
    quick_check_interval: float
    check_interval: float
    resource_check_interval: float
    ping_timeout: float
    hang_after: float
    performance_factor: float
    memory_limit: int
    memory_growth_limit: int
    score: ScoreSection
    _d = _durations("quick_check_interval", "check_interval", "resource_check_interval",
                    "ping_timeout", "hang_after")
    _s = _sizes("memory_limit", "memory_growth_limit")

    @model_validator(mode="after")
    def _positive_intervals(self) -> "HealthConfig":
        for name in ("quick_check_interval", "check_interval", "resource_check_interval",
                     "ping_timeout", "hang_after"):
            _positive(name.replace("_", "-"), getattr(self, name))
        if self.performance_factor <= 1:
            raise ValueError(f"performance-factor ({self.performance_factor:g}) must be > 1")
        return self


class RecoveryConfig(Section):
    max_restart_attempts: int
    restart_delay: float
    restart_delay_max: float
    escalation_timeout: float
    _d = _durations("restart_delay", "restart_delay_max", "escalation_timeout")

    @model_validator(mode="after")
    def _delays(self) -> "RecoveryConfig":
        if self.max_restart_attempts < 1:
            raise ValueError("max-restart-attempts must be >= 1")
        _positive("restart-delay", self.restart_delay)
        if self.restart_delay_max < self.restart_delay:
            raise ValueError(f"restart-delay-max ({self.restart_delay_max:g}s) must be >= "
                             f"restart-delay ({self.restart_delay:g}s)")
        return self


class ResourcesConfig(Section):
    max_calls_per_worker: int
    max_calls_jitter: int
    max_memory_per_worker: int
    cpu_limit: int
    address_space_limit: int
    sample_interval: float
    _d = _durations("sample_interval")
    _s = _sizes("max_memory_per_worker", "address_space_limit")

    @model_validator(mode="after")
    def _non_negative(self) -> "ResourcesConfig":
        for name in ("max_calls_per_worker", "max_calls_jitter", "max_memory_per_worker",
                     "cpu_limit", "address_space_limit"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name.replace('_', '-')} must be >= 0 (0: off)")
        if self.address_space_limit and self.address_space_limit < 256 << 20:
            raise ValueError("address-space-limit below 256MiB leaves no room to start Python")
        return self


class ScalingConfig(Section):
    enabled: bool
    interval: float
    scale_up_utilization: float
    scale_up_wait: float
    scale_down_utilization: float
    up_cooldown: float
    down_cooldown: float
    _d = _durations("interval", "scale_up_wait", "up_cooldown", "down_cooldown")

    @model_validator(mode="after")
    def _thresholds(self) -> "ScalingConfig":
        _positive("interval", self.interval)
        if not 0 <= self.scale_down_utilization < self.scale_up_utilization <= 1:
            raise ValueError("utilizations must satisfy 0 <= scale-down-utilization < "
                             f"scale-up-utilization <= 1, got {self.scale_down_utilization:g} "
                             f"and {self.scale_up_utilization:g}")
        return self


class ShutdownConfig(Section):
    drain_timeout: float
    _d = _durations("drain_timeout")


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class CircuitBreakerConfig(Section):
    """``python3.circuit-breaker``: the spec's four keys plus window, probes and timeouts."""

    enabled: bool
    failure_threshold: int
    failure_rate_threshold: float
    window_size: int
    minimum_calls: int
    timeout: float
    half_open_max_probes: int
    success_threshold: int
    count_timeouts: bool
    _d = _durations("timeout")

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
    """``python3.quarantine``: poison requests (see sidecar/quarantine.py)."""

    enabled: bool
    crashes: int
    window: float
    ttl: float
    max_entries: int
    _d = _durations("window", "ttl")

    @model_validator(mode="after")
    def _bounded(self) -> "QuarantineSection":
        for name in ("crashes", "max_entries"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} = {getattr(self, name)!r} must be "
                                 ">= 1")
        _positive("window", self.window)
        _positive("ttl", self.ttl)
        return self


FALLBACK_STRATEGIES = ("primary", "secondary", "direct", "remote")
# Kinds a fallback may act on: the call did not run (or, for `crashed`, the operator accepts a
# re-run). `user` and `timeout` never fall through: another strategy would fail the same way.
FALL_THROUGH_ALLOWED = ("circuit_open", "overloaded", "unavailable", "crashed", "internal")


class SecondaryPoolConfig(Section):
    python: str
    env: dict[str, str]
    initial_size: int
    min_size: int
    max_size: int
    queue_size: int

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
    python: str
    max_concurrent: int
    start_timeout: float
    _d = _durations("start_timeout")

    @model_validator(mode="after")
    def _bounded(self) -> "DirectConfig":
        if self.max_concurrent < 1:
            raise ValueError(f"max-concurrent = {self.max_concurrent} must be >= 1")
        _positive("start-timeout", self.start_timeout)
        return self


class RemoteConfig(Section):
    endpoint: str
    token: str
    token_file: str
    grace: float
    _d = _durations("grace")

    @field_validator("endpoint")
    @classmethod
    def _tcp(cls, value: str) -> str:
        if value and not re.match(r"^tcp://[^:]+:\d+$", value):
            raise ValueError("expected tcp://HOST:PORT of another sidecar, e.g. "
                             "tcp://10.0.0.2:5557")
        return value


class FallbackConfig(Section):
    """``python3.fallback``: the ordered strategies behind the primary pool."""

    strategies: list[str]
    fall_through: list[str]
    secondary: SecondaryPoolConfig
    direct: DirectConfig
    remote: RemoteConfig

    @model_validator(mode="after")
    def _combination(self) -> "FallbackConfig":
        unknown = [s for s in self.strategies if s not in FALLBACK_STRATEGIES]
        if unknown:
            raise ValueError(f"strategies = {self.strategies!r}: unknown {unknown!r}; expected "
                             f"some of {', '.join(FALLBACK_STRATEGIES)}")
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


class AlertChannelConfig(Section):
    url: str
    levels: list[Literal["INFO", "WARNING", "CRITICAL"]] = ["WARNING", "CRITICAL"]

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError("expected an apprise URL such as mailto://, json://, mmost://")
        return value


class AlertThrottleConfig(Section):
    max_per_hour: int
    group_wait: float
    group_interval: float
    repeat_interval: float
    _d = _durations("group_wait", "group_interval", "repeat_interval")

    @field_validator("max_per_hour")
    @classmethod
    def _at_least_two(cls, value: int) -> int:
        if value < 2:
            raise ValueError("must be at least 2 (one slot is kept for the summary of "
                             "suppressed alerts)")
        return value


class AlertsConfig(Section):
    enabled: bool
    channels: list[AlertChannelConfig]
    throttle: AlertThrottleConfig


class CloudWatchConfig(Section):
    enabled: bool
    endpoint: str
    namespace: str
    interval: float
    _d = _durations("interval")

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if not value.startswith(("tcp://", "udp://", "file://")):
            raise ValueError("expected tcp://HOST:PORT (the CloudWatch agent's EMF listener), "
                             "udp://HOST:PORT or file:///path/to/metrics.jsonl")
        return value

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: float) -> float:
        _positive("interval", value)
        return value


class MonitoringConfig(Section):
    cloudwatch: CloudWatchConfig


class Python3Config(Section):
    pool: PoolConfig
    health: HealthConfig
    recovery: RecoveryConfig
    resources: ResourcesConfig
    scaling: ScalingConfig
    worker: WorkerConfig
    bridge: BridgeConfig
    shutdown: ShutdownConfig
    logging: LoggingConfig
    circuit_breaker: CircuitBreakerConfig
    fallback: FallbackConfig
    quarantine: QuarantineSection
    http: HttpConfig
    alerts: AlertsConfig
    monitoring: MonitoringConfig


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
