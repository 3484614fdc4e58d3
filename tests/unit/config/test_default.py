"""Covers: sidecar/config/default.yml, bridge.breaker, sidecar.alerts.policy,
sidecar.config.settings, sidecar.config.model,
sidecar.observability.emf, sidecar.pool.settings, sidecar.routing.quarantine,
sidecar.supervision.health, sidecar.supervision.recovery, sidecar.supervision.scaling,
sidecar.supervision.score, sidecar.supervision.watchdog.

default.yml against the models in sidecar/config/model.py: the models are the one truth.

default.yml is what ``py3sidecar config --print-default`` shows operators; these tests keep it
equal to the models key by key (same keys, same values once parsed, a comment for each), and
the components' own dataclass defaults equal to what ``sidecar.config.settings`` builds from the
models, so no default can live in two places and disagree.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from typing import Any

import pytest
import yaml

from bridge.breaker import BreakerConfig
from sidecar.alerts.policy import ThrottleSettings
from sidecar.config import settings
from sidecar.config.model import DEFAULT_YAML, Config, ConfigError, Section, load
from sidecar.observability.emf import EmfSettings
from sidecar.pool.settings import PoolSettings
from sidecar.routing.quarantine import QuarantineConfig
from sidecar.supervision.health import HealthSettings
from sidecar.supervision.recovery import RecoverySettings
from sidecar.supervision.scaling import ScalingSettings
from sidecar.supervision.score import ScoreConfig
from sidecar.supervision.watchdog import WatchdogSettings

_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_-]+):(?P<rest>.*)$")


def _section_type(model: type[Section], name: str) -> type[Section] | None:
    annotation = model.model_fields[name].annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, Section) \
        else None


def _model_leaves(model: type[Section], prefix: str) -> list[str]:
    """Dotted YAML paths (by alias) of every non-section field under ``model``."""
    paths = []
    for name, info in model.model_fields.items():
        path = f"{prefix}.{info.alias or name}" if prefix else (info.alias or name)
        sub = _section_type(model, name)
        paths += _model_leaves(sub, path) if sub else [path]
    return paths


def _yaml_leaves(data: Any, prefix: str, model: type[Section],
                 unknown: list[str]) -> dict[str, Any]:
    """Dotted paths of default.yml's values, walked along the model (a dict-valued field such
    as worker.env is a leaf); keys no model field declares go to ``unknown``."""
    leaves: dict[str, Any] = {}
    by_alias = {info.alias or name: name for name, info in model.model_fields.items()}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else key
        if key not in by_alias:
            unknown.append(path)
            continue
        sub = _section_type(model, by_alias[key])
        if sub is not None and isinstance(value, dict):
            leaves.update(_yaml_leaves(value, path, sub, unknown))
        else:
            leaves[path] = value
    return leaves


def _value_at(config: Any, path: str) -> Any:
    node = config
    for key in path.split("."):
        node = getattr(node, key.replace("-", "_"))
    return node


def _nested(path: str, value: Any) -> dict[str, Any]:
    """``a.b.c`` = v as {a: {b: {c: v}}}: one default.yml value, validated on its own."""
    data: Any = value
    for key in reversed(path.split(".")):
        data = {key: data}
    return data


def _commented_paths(text: str) -> set[str]:
    """Paths whose line in ``text`` carries a comment, on the line itself or on the comment
    lines right below it that are indented deeper (a continued comment)."""
    commented, stack = set(), []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = _KEY_LINE.match(line)
        if not match:
            continue
        depth = len(match["indent"])
        stack = [(d, k) for d, k in stack if d < depth] + [(depth, match["key"])]
        path = ".".join(k for _, k in stack)
        following = lines[i + 1] if i + 1 < len(lines) else ""
        continued = following.strip().startswith("#") and (
            len(following) - len(following.lstrip()) > depth)
        if "#" in match["rest"] or continued:
            commented.add(path)
    return commented


DEFAULTS = Config()
UNKNOWN: list[str] = []
YAML_LEAVES = _yaml_leaves(yaml.safe_load(DEFAULT_YAML), "", Config, UNKNOWN)


def test_every_default_yml_key_is_a_model_field() -> None:
    assert not UNKNOWN, f"default.yml has keys no model field declares: {UNKNOWN}"
    Config.model_validate(yaml.safe_load(DEFAULT_YAML))  # and every value is valid


@pytest.mark.parametrize("path", sorted(YAML_LEAVES))
def test_every_default_yml_value_is_the_models_default(path: str) -> None:
    parsed = Config.model_validate({"python3": {}} if path == "python3" else
                                   _nested(path, YAML_LEAVES[path]))
    assert _value_at(parsed, path) == _value_at(DEFAULTS, path), (
        f"default.yml says {path}: {YAML_LEAVES[path]!r} but the model's default is "
        f"{_value_at(DEFAULTS, path)!r}: change one of them")


def test_every_model_field_is_in_default_yml_with_a_comment() -> None:
    fields = _model_leaves(Config, "")
    missing = [p for p in fields if p not in YAML_LEAVES]
    assert not missing, f"model fields missing from default.yml: {missing}"
    commented = _commented_paths(DEFAULT_YAML)
    silent = [p for p in fields if p not in commented]
    assert not silent, f"default.yml keys without a comment saying what they do: {silent}"


def test_the_comment_check_sees_a_missing_comment() -> None:
    text = "python3:\n  pool:\n    spares: 1  # warm spares\n    queue-size: 64\n" \
           "    max-restarts: 30  # deaths ...\n                      # ... continued\n"
    assert _commented_paths(text) == {"python3.pool.spares", "python3.pool.max-restarts"}


def test_load_without_a_file_is_the_models_defaults() -> None:
    assert load() == DEFAULTS


def test_component_defaults_equal_the_models() -> None:
    """The components' dataclass defaults (used by tests and tools) are the models' too."""
    c = DEFAULTS.python3
    built = {
        "pool": (settings.pool_settings(DEFAULTS), PoolSettings(python=[sys.executable])),
        "score": (settings.score_config(c.health.score), ScoreConfig()),
        "health": (settings.health_settings(c.health), HealthSettings()),
        "watchdog": (settings.watchdog_settings(c.health), WatchdogSettings()),
        "recovery": (settings.recovery_settings(c.recovery), RecoverySettings()),
        "scaling": (settings.scaling_settings(c.scaling), ScalingSettings()),
        "breaker": (settings.breaker_config(c.circuit_breaker), BreakerConfig()),
        "quarantine": (settings.quarantine_config(c.quarantine), QuarantineConfig()),
        "throttle": (settings.throttle_settings(c.alerts.throttle), ThrottleSettings()),
        "cloudwatch": (settings.emf_settings(c.monitoring.cloudwatch), EmfSettings()),
    }
    differ = [f"{name}.{f.name}: models {getattr(ours, f.name)!r}, "
              f"dataclass {getattr(code, f.name)!r}"
              for name, (ours, code) in built.items() for f in dataclasses.fields(code)
              if getattr(ours, f.name) != getattr(code, f.name)]
    assert not differ, f"dataclass defaults that disagree with the models: {differ}"


def test_overloaded_is_the_configured_scale_up_threshold() -> None:
    scaling = load(text="python3:\n  scaling:\n    scale-up-utilization: 0.6\n"
                   "    scale-up-wait: 20ms\n").python3.scaling
    assert settings.overload_thresholds(scaling) == {"overload_utilization": 0.6,
                                                     "overload_wait": 0.02}


@pytest.mark.parametrize("key", ["oom-penalty", "io-penalty"])
def test_removed_score_knobs_are_ignored_with_a_warning_naming_them(key: str, caplog) -> None:
    config = load(text=f"python3:\n  health:\n    score:\n      {key}: 40\n"
                  "      crash-penalty: 45\n")
    assert config.python3.health.score.crash_penalty == 45  # the rest of the file still counts
    warning = " ".join(r.getMessage() for r in caplog.records if r.name == "py3sidecar.config")
    assert f"key 'python3.health.score.{key}' is ignored, it was removed" in warning
    assert "crash-penalty" in warning


def test_a_removed_key_elsewhere_is_still_an_unknown_key() -> None:
    with pytest.raises(ConfigError, match="unknown key 'python3.health.oom-penalty'"):
        load(text="python3:\n  health:\n    oom-penalty: 40\n")


@pytest.mark.parametrize("text, message", [
    ("python3:\n  fallback:\n    remote:\n      grace: soon\n",
     "python3.fallback.remote.grace = 'soon': expected a duration"),
    ("python3:\n  health:\n    memory-growth-limit: lots\n",
     "python3.health.memory-growth-limit = 'lots': expected a size"),
    ("python3:\n  alerts:\n    throttle:\n      repeat-interval: true\n",
     "python3.alerts.throttle.repeat-interval = True: expected a duration"),
])
def test_duration_and_size_fields_name_key_and_value(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(text=text)
    assert message in str(info.value)


def test_duration_and_size_fields_read_units() -> None:
    c = load(text="python3:\n  fallback:\n    remote:\n      grace: 2s\n  health:\n"
             "    memory-limit: 1GiB\n").python3
    assert (c.fallback.remote.grace, c.health.memory_limit) == (2.0, 1 << 30)
