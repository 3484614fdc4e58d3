"""The building blocks of the config models: sections, durations and sizes with units, ports,
listen addresses, the error every bad value becomes, and a YAML error told without its text.

Owns: these types and their parsing. Must not touch: any section's keys (``sidecar.config.model``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
)

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


# A field's type says how its YAML value is read: "500ms" / "5m" -> seconds, "64MiB" -> bytes.
Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]

class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=lambda name: name.replace("_", "-"),
                              populate_by_name=True, frozen=True)


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ValueError(f"{name} must be greater than 0")


def _section(model: type[Section]) -> Any:
    # Built when a config is loaded, not at import: WorkerConfig's check looks up accounts.
    return Field(default_factory=model)


def yaml_problem(exc: Any) -> str:
    """A ``yaml.YAMLError``: what and where, without the line's text (PyYAML quotes it, and it
    may hold a secret)."""
    parts = []
    for what, mark in ((getattr(exc, "context", None), getattr(exc, "context_mark", None)),
                       (getattr(exc, "problem", None), getattr(exc, "problem_mark", None))):
        if what:
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            parts.append(f"{what}{where}")
    return "; ".join(parts) or type(exc).__name__
