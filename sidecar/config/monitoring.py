"""The config sections of what lets operators see the sidecar: ``python3.http``, ``alerts``,
``monitoring`` (CloudWatch).

Owns: those models, their defaults and checks. Must not touch: reading YAML and the other
sections (``sidecar.config.model``, which includes these in ``Python3Config``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import (
    field_validator,
)

from sidecar.config.fields import Duration, ListenHost, Port, Section, _positive, _section
from sidecar.config.tls import HttpTlsConfig


class HttpConfig(Section):
    """``python3.http``: /metrics, /livez, /readyz, /health, /dashboard (see
    sidecar/http/handler.py)."""

    enabled: bool = True
    host: ListenHost = "127.0.0.1"
    port: Port = 5558
    max_connections: int = 16
    header_timeout: Duration = 5.0
    allowed_hosts: list[str] = []
    tls: HttpTlsConfig = _section(HttpTlsConfig)

    @field_validator("max_connections")
    @classmethod
    def _pool(cls, value: int) -> int:
        if not 1 <= value <= 1024:
            raise ValueError("expected 1 to 1024 threads serving HTTP connections")
        return value

    @field_validator("header_timeout")
    @classmethod
    def _header_deadline(cls, value: float) -> float:
        _positive("header-timeout", value)
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        for host in value:
            if not host.strip() or any(c in host for c in " /@"):
                raise ValueError(f"{host!r} is not a host name: expected names such as "
                                 "scada-gw.plant.local or 10.0.0.5 (optionally with :PORT)")
        return [h.strip().lower() for h in value]


class AlertChannelConfig(Section):
    url: str
    levels: list[Literal["INFO", "WARNING", "CRITICAL"]] = ["WARNING", "CRITICAL"]

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError("expected an apprise URL such as mailto://, json://, mmost://")
        from sidecar.alerts.channels import unusable_url_problem  # imports apprise: only here

        problem = unusable_url_problem(value)  # what `serve` would refuse, named at load
        if problem:
            raise ValueError(problem)
        return value


class AlertThrottleConfig(Section):
    max_per_hour: int = 10
    group_wait: Duration = 30.0
    group_interval: Duration = 300.0
    repeat_interval: Duration = 14400.0

    @field_validator("max_per_hour")
    @classmethod
    def _at_least_two(cls, value: int) -> int:
        if value < 2:
            raise ValueError("must be at least 2 (one slot is kept for the summary of "
                             "suppressed alerts)")
        return value


class AlertsConfig(Section):
    enabled: bool = True
    channels: list[AlertChannelConfig] = []
    throttle: AlertThrottleConfig = _section(AlertThrottleConfig)


class CloudWatchConfig(Section):
    enabled: bool = False
    endpoint: str = "tcp://127.0.0.1:25888"
    namespace: str = "py3sidecar"
    interval: Duration = 60.0

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
    cloudwatch: CloudWatchConfig = _section(CloudWatchConfig)
