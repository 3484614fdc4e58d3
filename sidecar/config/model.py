"""Configuration: the YAML file, the embedded default, validation with messages that help.

Owns: the models below (with ``sidecar.config.fallback``, ``sidecar.config.monitoring`` and
``sidecar.config.access`` for those sections, ``sidecar.config.fields`` for units and
``Section``; all re-exported here), which are the one truth about every key and its default;
reading YAML in the shape of the spec's ``application.yml`` (``python3:`` -> ``pool``,
``worker``, ``bridge``, ...) and validating it once. Must not touch: processes, sockets, the
components' own settings objects (``sidecar.config.settings`` builds those from these models).
``default.yml`` is the documented copy of the defaults (``config --print-default``);
tests/unit/test_default_config.py keeps it equal to the models, key by key, with a comment each.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    ValidationError,
    field_validator,
    model_validator,
)

from sidecar.config.access import AccessConfig, RoutedAccessConfig  # noqa: F401 - re-exported
from sidecar.config.audit import AuditConfig  # noqa: F401 - re-exported
from sidecar.config.fallback import (  # noqa: F401 - re-exported
    FALL_THROUGH_ALLOWED,
    FALLBACK_STRATEGIES,
    DirectConfig,
    FallbackConfig,
    RemoteConfig,
    SecondaryPoolConfig,
)
from sidecar.config.fields import (  # noqa: F401 - re-exported
    ConfigError,
    Duration,
    ListenHost,
    Port,
    Section,
    Size,
    _positive,
    _section,
    parse_duration,
    parse_size,
    yaml_problem,
)
from sidecar.config.monitoring import (  # noqa: F401 - re-exported: the one place to import models
    AlertChannelConfig,
    AlertsConfig,
    AlertThrottleConfig,
    CloudWatchConfig,
    HttpConfig,
    MonitoringConfig,
)
from sidecar.config.policies import CircuitBreakerConfig, QuarantineSection  # noqa: F401
from sidecar.config.tls import HttpTlsConfig, Py4JTlsConfig, dask_tls_problem  # noqa: F401
from sidecar.config.unix import UnixConfig  # noqa: F401 - re-exported
from sidecar.observability.redaction import shown_value

log = logging.getLogger("py3sidecar.config")

DEFAULT_YAML = (Path(__file__).with_name("default.yml")).read_text()

# Keys that were offered once and never did anything (no failure kind `oom` or `io` exists,
# so no call was ever scored with them). A file that still has one is served as before, with a
# warning naming the key: an upgrade must not stop a sidecar over a knob that had no effect.
REMOVED_KEYS = {
    "python3.health.score.oom-penalty": "removed: no call fails with a kind `oom` (a worker "
    "killed for memory is `crashed`, and scored with crash-penalty)",
    "python3.health.score.io-penalty": "removed: no call fails with a kind `io` (a broken "
    "channel to a worker is `crashed`, and scored with crash-penalty)",
}


class PoolConfig(Section):
    initial_size: int = 2
    min_size: int = 1
    max_size: int = 4
    spares: int = 1
    queue_size: int = 64
    max_restarts: int = 30
    restart_window: Duration = 10.0
    cpu_affinity: str = ""

    @model_validator(mode="after")
    def _cpus(self) -> "PoolConfig":
        from sidecar.process.placement import parse_cpus

        parse_cpus(self.cpu_affinity, "python3.pool.cpu-affinity")
        return self

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
    python: str = ""
    virtualenv: str = ""
    paths: list[str] = []
    preload: list[str] = []
    env: dict[str, str] = {}
    env_not_secret: list[str] = []  # env names shown whole (the rest read <redacted>)
    call_timeout: Duration = 30.0
    max_call_timeout: Duration = 3600.0
    kill_grace: Duration = 0.5
    start_timeout: Duration = 30.0
    max_output: Size = 64 << 10
    reload: bool = True
    fd_output: Literal["log", "discard"] = "log"
    output_log_rate: Size = 64 << 10
    user: str = ""
    group: str = ""
    spawn: Literal["template", "plain"] = "template"
    cpu_affinity: str = ""

    @model_validator(mode="after")
    def _account_exists(self) -> "WorkerConfig":
        from sidecar.process.confinement import worker_credentials
        from sidecar.process.placement import parse_cpus

        parse_cpus(self.cpu_affinity, "python3.worker.cpu-affinity")

        worker_credentials(self.user.strip(), self.group.strip())  # names the missing account
        return self

    @model_validator(mode="after")
    def _one_interpreter(self) -> "WorkerConfig":
        if self.virtualenv:
            if self.python:
                raise ValueError(f"python = {self.python!r} and virtualenv = "
                                 f"{self.virtualenv!r}: set one of them")
            if not os.access(Path(self.virtualenv) / "bin" / "python", os.X_OK):
                raise ValueError(f"virtualenv = {self.virtualenv!r}: there is no "
                                 f"{Path(self.virtualenv) / 'bin' / 'python'}; create it with "
                                 f"`python3 -m venv {self.virtualenv}` and install msgpack there")
        return self

    def interpreter(self, default: str) -> list[str]:
        """The command that starts a worker's Python: ``python`` (split), the virtualenv's
        interpreter, or ``default`` (the sidecar's own)."""
        if self.virtualenv:
            return [str(Path(self.virtualenv) / "bin" / "python")]
        return self.python.split() if self.python else [default]

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


class ZmqCurveConfig(Section):
    """``python3.bridge.zmq.curve``: encrypt the ZeroMQ front (bridge/zmq_auth.py)."""

    enabled: bool = False
    client_keys_dir: str = ""

    @field_validator("client_keys_dir")
    @classmethod
    def _folder(cls, value: str) -> str:
        if value and not Path(value).is_dir():
            raise ValueError(f"{value!r} is not a folder; create it and put the clients' public "
                             "CURVE key files (zmq.auth's .key format) there, or leave it empty "
                             "to let any client that holds the server key connect")
        return value


class ZmqConfig(Section):
    enabled: bool = True
    endpoint: str = "tcp://127.0.0.1:5557"
    curve: ZmqCurveConfig = _section(ZmqCurveConfig)

    @field_validator("endpoint")
    @classmethod
    def _tcp(cls, value: str) -> str:
        if not re.match(r"^tcp://[^:]+:\d+$", value):
            raise ValueError("expected tcp://HOST:PORT, e.g. tcp://127.0.0.1:5557")
        return value


class Py4JConfig(Section):
    enabled: bool = True
    host: ListenHost = "127.0.0.1"
    python_port: Port = 25334
    java_port: Port = 25333
    max_connections: int = 1024
    idle_timeout: Duration = 3600.0
    tls: Py4JTlsConfig = _section(Py4JTlsConfig)

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
    token: str = ""
    token_file: str = ""
    token_group: str = ""  # the token file is 0640 in this group (the gateway's account's)
    max_message_size: Size = 64 << 20
    zmq: ZmqConfig = _section(ZmqConfig)
    py4j: Py4JConfig = _section(Py4JConfig)
    unix: UnixConfig = _section(UnixConfig)

    @model_validator(mode="after")
    def _token_group_exists(self) -> "BridgeConfig":
        from bridge.token import token_group_id

        token_group_id(self.token_group.strip())  # names the missing group
        return self


class ScoreSection(Section):
    timeout_penalty: int = 20
    crash_penalty: int = 50
    other_penalty: int = 10
    replace_threshold: int = 30
    history_size: int = 100


class HealthConfig(Section):
    enabled: bool = True
    quick_check_interval: Duration = 5.0
    check_interval: Duration = 30.0
    resource_check_interval: Duration = 60.0
    ping_timeout: Duration = 1.0
    hang_after: Duration = 60.0
    performance_factor: float = 5.0
    memory_limit: Size = 0
    memory_growth_limit: Size = 512 << 20
    score: ScoreSection = _section(ScoreSection)

    @model_validator(mode="after")
    def _positive_intervals(self) -> "HealthConfig":
        for name in ("quick_check_interval", "check_interval", "resource_check_interval",
                     "ping_timeout", "hang_after"):
            _positive(name.replace("_", "-"), getattr(self, name))
        if self.performance_factor <= 1:
            raise ValueError(f"performance-factor ({self.performance_factor:g}) must be > 1")
        return self


class RecoveryConfig(Section):
    max_restart_attempts: int = 5
    restart_delay: Duration = 0.1
    restart_delay_max: Duration = 30.0
    escalation_timeout: Duration = 60.0

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
    max_calls_per_worker: int = 0
    max_calls_jitter: int = 0
    max_memory_per_worker: Size = 0
    cpu_limit: int = 0
    address_space_limit: Size = 0
    sample_interval: Duration = 0.25

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
    enabled: bool = True
    interval: Duration = 5.0
    scale_up_utilization: float = 0.9
    scale_up_wait: Duration = 0.05
    scale_down_utilization: float = 0.3
    up_cooldown: Duration = 10.0
    down_cooldown: Duration = 60.0

    @model_validator(mode="after")
    def _thresholds(self) -> "ScalingConfig":
        _positive("interval", self.interval)
        if not 0 <= self.scale_down_utilization < self.scale_up_utilization <= 1:
            raise ValueError("utilizations must satisfy 0 <= scale-down-utilization < "
                             f"scale-up-utilization <= 1, got {self.scale_down_utilization:g} "
                             f"and {self.scale_up_utilization:g}")
        return self


class ShutdownConfig(Section):
    drain_timeout: Duration = 10.0


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"


POOL_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
RESERVED_POOL_NAMES = ("primary", "direct", "remote")


class NamedPoolConfig(Section):
    """``python3.pools.<name>``: a local pool (its own interpreter or virtualenv, paths,
    preload, env, sizes, limits, health and scaling settings: the sections the primary pool has
    at the top level, each key left out taking that section's default) or a Dask cluster."""

    kind: Literal["local", "dask"] = "local"
    pool: PoolConfig = _section(PoolConfig)
    worker: WorkerConfig = _section(WorkerConfig)
    resources: ResourcesConfig = _section(ResourcesConfig)
    health: HealthConfig = _section(HealthConfig)
    scaling: ScalingConfig = _section(ScalingConfig)
    fallback: list[str] = []
    address: str = ""
    connect_timeout: Duration = 5.0
    max_in_flight: int = 1000
    tls_ca_file: str = ""    # tls:// schedulers: distributed's Security (sidecar.config.tls)
    tls_cert_file: str = ""
    tls_key_file: str = ""

    @model_validator(mode="after")
    def _kind_fits(self) -> "NamedPoolConfig":
        if problem := dask_tls_problem(self.address, self.tls_ca_file, self.tls_cert_file,
                                       self.tls_key_file):
            raise ValueError(problem)
        if self.kind == "dask":
            if importlib.util.find_spec("distributed") is None:
                raise ValueError("kind: dask needs Dask's client, which is not installed here: "
                                 "pip install 'py3sidecar[dask]'")
            if not re.match(r"^(tcp|tls|inproc|ucx)://\S+$", self.address):
                raise ValueError(f"address = {self.address!r}: a dask pool needs its scheduler's "
                                 "address, e.g. tcp://10.0.0.5:8786")
            if self.max_in_flight < 1:
                raise ValueError(f"max-in-flight = {self.max_in_flight} must be >= 1")
            _positive("connect-timeout", self.connect_timeout)
        elif self.address:
            raise ValueError(f"address = {self.address!r} is only for kind: dask (this pool is "
                             "local: set worker.python or worker.virtualenv instead)")
        return self


class Python3Config(Section):
    pools: dict[str, NamedPoolConfig] = {}
    pool: PoolConfig = _section(PoolConfig)
    health: HealthConfig = _section(HealthConfig)
    recovery: RecoveryConfig = _section(RecoveryConfig)
    resources: ResourcesConfig = _section(ResourcesConfig)
    scaling: ScalingConfig = _section(ScalingConfig)
    worker: WorkerConfig = _section(WorkerConfig)
    bridge: BridgeConfig = _section(BridgeConfig)
    shutdown: ShutdownConfig = _section(ShutdownConfig)
    logging: LoggingConfig = _section(LoggingConfig)
    circuit_breaker: CircuitBreakerConfig = _section(CircuitBreakerConfig)
    fallback: FallbackConfig = _section(FallbackConfig)
    quarantine: QuarantineSection = _section(QuarantineSection)
    http: HttpConfig = _section(HttpConfig)
    alerts: AlertsConfig = _section(AlertsConfig)
    monitoring: MonitoringConfig = _section(MonitoringConfig)
    access: AccessConfig = _section(AccessConfig)  # sidecar/config/access.py
    audit: AuditConfig = _section(AuditConfig)

    @model_validator(mode="after")
    def _pools_and_chains(self) -> "Python3Config":
        for name in self.pools:
            if not POOL_NAME.match(name) or name in RESERVED_POOL_NAMES:
                raise ValueError(f"pools.{name}: a pool's name is lower-case letters, digits, "
                                 f"'-' and '_' (at most 40), and not one of "
                                 f"{', '.join(RESERVED_POOL_NAMES)}")
        chains = {"fallback.strategies": self.fallback.strategies,
                  **{f"pools.{n}.fallback": p.fallback for n, p in self.pools.items()}}
        known = set(self.pools) | {"primary", "secondary", "direct", "remote"}
        for key, names in chains.items():
            if not all(isinstance(n, str) for n in names):
                raise ValueError(f"{key} = {names!r}: expected names of pools")
            unknown = [n for n in names if n not in known]
            if unknown:
                raise ValueError(f"{key} = {names!r}: no pool named {unknown!r}; there are: "
                                 f"{', '.join(sorted(known - {'direct', 'remote'}))} "
                                 "(and direct, remote)")
            if len(set(names)) != len(names):
                raise ValueError(f"{key} = {names!r} names a strategy twice")
            if "remote" in names and not self.fallback.remote.endpoint:
                raise ValueError(f"{key} includes 'remote' but fallback.remote.endpoint is "
                                 "empty; set it to the other sidecar's tcp://HOST:PORT")
        for name, pool in self.pools.items():
            if name in pool.fallback:
                raise ValueError(f"pools.{name}.fallback = {pool.fallback!r} names the pool "
                                 "itself")
        return self


class Config(Section):
    python3: Python3Config = _section(Python3Config)


def _describe(error: dict[str, Any], source: str) -> str:
    key = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return (f"{source}: unknown key '{key}'; see `py3sidecar config --print-default` for "
                "the keys")
    if error["type"] == "missing":
        return f"{source}: key '{key}' is missing"
    value = error.get("input")
    shown = "" if isinstance(value, dict) else f" = {shown_value(error['loc'], value)}"
    return f"{source}: {key or 'python3'}{shown}: {message}"


def _drop_removed(user: dict[str, Any], source: str) -> None:
    for dotted, why in REMOVED_KEYS.items():
        *parents, last = dotted.split(".")
        node: Any = user
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and last in node:
            del node[last]
            log.warning("%s: key '%s' is ignored, it was %s; delete it from the file", source,
                        dotted, why)


def load(path: str | Path | None = None, *, text: str | None = None) -> Config:
    """The models' defaults, overlaid with a YAML file (or text); raise ``ConfigError``."""
    source = str(path) if path else "<config>"
    data: dict[str, Any] = {}
    if path is not None or text is not None:
        try:
            raw = Path(path).read_text() if path is not None else text
        except OSError as exc:
            raise ConfigError(f"cannot read the config file {source}: {exc.strerror}") from None
        try:
            user = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source} is not valid YAML: {yaml_problem(exc)}") from None
        if user is not None:
            if not isinstance(user, dict) or not isinstance(user.get("python3", {}), dict):
                raise ConfigError(f"{source}: expected a mapping with a top-level key "
                                  "'python3:' (see `py3sidecar config --print-default`)")
            _drop_removed(user, source)
            data = user  # a key left out takes the model's default
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(e, source) for e in exc.errors()]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None
