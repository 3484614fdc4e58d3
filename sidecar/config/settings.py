"""Each component's settings object, built from the validated config: the one place that does.

Owns: one mapping function per component (pool, secondary and direct pools, score, health
checks, watchdog, recovery, scaling, overload, circuit breaker, quarantine, alert throttle,
CloudWatch, the gateway route's access policy), and the only
renames between a YAML key and a component's field (``crash-penalty`` -> ``crashed_penalty``,
``circuit-breaker.timeout`` -> ``open_timeout``, ...). Must not touch: reading or validating
YAML (``sidecar.config.model``), defaults (the models in ``sidecar.config.model`` hold them; the
components' own dataclass defaults are kept equal to them by tests/unit/test_default_config.py),
anything at run time.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

from bridge.breaker import BreakerConfig
from sidecar.alerts.policy import ThrottleSettings
from sidecar.config.model import (
    AlertThrottleConfig,
    CircuitBreakerConfig,
    CloudWatchConfig,
    Config,
    DirectConfig,
    HealthConfig,
    PoolConfig,
    QuarantineSection,
    RecoveryConfig,
    ResourcesConfig,
    RoutedAccessConfig,
    ScalingConfig,
    ScoreSection,
    SecondaryPoolConfig,
    Section,
    WorkerConfig,
)
from sidecar.observability.emf import EmfSettings
from sidecar.pool.settings import PoolSettings
from sidecar.process.placement import parse_cpus
from sidecar.routing.quarantine import QuarantineConfig
from sidecar.routing.route_policy import RoutePolicy
from sidecar.supervision.health import HealthSettings
from sidecar.supervision.recovery import RecoverySettings
from sidecar.supervision.scaling import ScalingSettings
from sidecar.supervision.score import ScoreConfig
from sidecar.supervision.watchdog import WatchdogSettings


def by_name(cls: Any, section: Section, renamed: dict[str, str] | None = None) -> Any:
    """``cls`` with every field of ``section`` under the same name (or its entry in
    ``renamed``): a key added to the model and not to the component fails here, loudly."""
    renamed = renamed or {}
    return cls(**{renamed.get(name, name): getattr(section, name)
                  for name in type(section).model_fields})


def pool_settings(config: Config, name: str = "primary") -> PoolSettings:
    """``python3.pool`` + ``worker`` + ``resources`` + restart delays + the score: the primary
    pool (or, by ``name``, a local pool of ``python3.pools``: its own sections)."""
    c = config.python3
    owner = c if name == "primary" else c.pools[name]
    return local_pool_settings(name, owner.pool, owner.worker, owner.resources, owner.health,
                               c.recovery, c.bridge.max_message_size)


def local_pool_settings(name: str, pool: PoolConfig, worker: WorkerConfig,
                        res: ResourcesConfig, health: HealthConfig, recovery: RecoveryConfig,
                        max_message_bytes: int) -> PoolSettings:
    return PoolSettings(
        name=name, initial_size=pool.initial_size, min_size=pool.min_size,
        max_size=pool.max_size, spares=pool.spares, queue_size=pool.queue_size,
        call_timeout=worker.call_timeout, kill_grace=worker.kill_grace,
        start_timeout=worker.start_timeout, max_restarts=pool.max_restarts,
        restart_window=pool.restart_window, backoff_initial=recovery.restart_delay,
        backoff_max=recovery.restart_delay_max, python=worker.interpreter(sys.executable),
        env=dict(worker.env), paths=list(worker.paths), preload=list(worker.preload),
        user=worker.user.strip(), group=worker.group.strip(), spawn=worker.spawn,
        cpu_affinity=parse_cpus(worker.cpu_affinity, "python3.worker.cpu-affinity"
                                if name == "primary" else
                                f"python3.pools.{name}.worker.cpu-affinity"),
        max_output_chars=worker.max_output, max_message_bytes=max_message_bytes,
        max_calls=res.max_calls_per_worker, max_calls_jitter=res.max_calls_jitter,
        max_memory=res.max_memory_per_worker, cpu_limit=res.cpu_limit,
        address_space_limit=res.address_space_limit, rss_sample_interval=res.sample_interval,
        fd_output=worker.fd_output, output_log_rate=worker.output_log_rate,
        score=score_config(health.score))


def secondary_pool_settings(primary: PoolSettings, section: SecondaryPoolConfig) -> PoolSettings:
    """``python3.fallback.secondary``: the primary's settings with its own interpreter, extra
    environment and sizes (paths, preload, limits are shared)."""
    return dataclasses.replace(
        primary, name="secondary",
        python=section.python.split() if section.python else list(primary.python),
        env={**primary.env, **section.env}, initial_size=section.initial_size,
        min_size=section.min_size, max_size=section.max_size, queue_size=section.queue_size)


def direct_pool_settings(primary: PoolSettings, section: DirectConfig) -> PoolSettings:
    """``python3.fallback.direct``: the primary's settings with its own interpreter (its
    ``max-concurrent`` and ``start-timeout`` go to the strategy itself)."""
    return dataclasses.replace(
        primary, python=section.python.split() if section.python else list(primary.python))


def score_config(section: ScoreSection) -> ScoreConfig:
    """``python3.health.score``."""
    return by_name(ScoreConfig, section, {"crash_penalty": "crashed_penalty"})


def health_settings(section: HealthConfig) -> HealthSettings:
    """The thresholds of ``python3.health`` that the health checks judge a worker by."""
    return HealthSettings(ping_timeout=section.ping_timeout, hang_after=section.hang_after,
                          performance_factor=section.performance_factor,
                          memory_limit=section.memory_limit,
                          memory_growth_limit=section.memory_growth_limit)


def watchdog_settings(section: HealthConfig) -> WatchdogSettings:
    """Whether and how often ``python3.health`` checks run."""
    return WatchdogSettings(enabled=section.enabled, quick_interval=section.quick_check_interval,
                            deep_interval=section.check_interval,
                            resource_interval=section.resource_check_interval)


def recovery_settings(section: RecoveryConfig) -> RecoverySettings:
    """``python3.recovery``: escalation (the restart delays go to the pool's spawn back-off)."""
    return RecoverySettings(max_restart_attempts=section.max_restart_attempts,
                            escalation_timeout=section.escalation_timeout)


def scaling_settings(section: ScalingConfig) -> ScalingSettings:
    """``python3.scaling``."""
    return by_name(ScalingSettings, section)


def overload_thresholds(section: ScalingConfig) -> dict[str, float]:
    """The resource monitor's "overloaded": the load at which scaling would add workers."""
    return {"overload_utilization": section.scale_up_utilization,
            "overload_wait": section.scale_up_wait}


def breaker_config(section: CircuitBreakerConfig) -> BreakerConfig:
    """``python3.circuit-breaker``."""
    return by_name(BreakerConfig, section, {"timeout": "open_timeout"})


def quarantine_config(section: QuarantineSection) -> QuarantineConfig:
    """``python3.quarantine``."""
    return by_name(QuarantineConfig, section)


def throttle_settings(section: AlertThrottleConfig) -> ThrottleSettings:
    """``python3.alerts.throttle``."""
    return by_name(ThrottleSettings, section)


def emf_settings(section: CloudWatchConfig) -> EmfSettings:
    """``python3.monitoring.cloudwatch``."""
    return by_name(EmfSettings, section)


def route_policy(section: RoutedAccessConfig) -> RoutePolicy:
    """``python3.access.routed``: what requests relayed by the gateway's handler may do."""
    return RoutePolicy(tuple(section.allow_targets), section.execute, section.diag)
