"""The config section of access control: ``python3.access`` (what the gateway route may do).

Owns: the models of ``python3.access.routed`` (allow-targets, execute, diag), their defaults
and checks. Must not touch: reading YAML (``sidecar.config.model``), the decision itself
(``sidecar.routing.route_policy``, which compiles the same patterns at start-up).
"""

from __future__ import annotations

from pydantic import field_validator

from sidecar.config.fields import Section, _section
from sidecar.routing.route_policy import PatternError, parse_pattern


class RoutedAccessConfig(Section):
    """Requests relayed by the gateway's message handler (Designer, Vision clients): only what
    is granted here; gateway scripts and the CLI keep full access."""

    allow_targets: list[str] = []
    execute: bool = False
    diag: bool = False

    @field_validator("allow_targets")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for index, text in enumerate(value):
            try:
                parse_pattern(text)
            except PatternError as exc:
                raise ValueError(f"entry {index}: {exc}") from None
        return value


class AccessConfig(Section):
    routed: RoutedAccessConfig = _section(RoutedAccessConfig)
