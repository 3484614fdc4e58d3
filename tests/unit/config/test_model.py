"""Covers: sidecar.config.model.

The config models: the embedded default, YAML overrides, and refusals naming the key."""

import pytest

from sidecar.config import model as config
from sidecar.config.model import ConfigError


def test_embedded_default_is_valid_and_in_the_spec_shape():
    cfg = config.load()
    assert cfg.python3.pool.initial_size == 2
    assert cfg.python3.worker.call_timeout == 30.0
    assert cfg.python3.worker.max_output == 64 * 1024
    assert cfg.python3.bridge.zmq.endpoint == "tcp://127.0.0.1:5557"


def test_file_overrides_merge_over_the_default(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("python3:\n  pool:\n    max-size: 8\n  worker:\n    call-timeout: 250ms\n")
    cfg = config.load(path)
    assert cfg.python3.pool.max_size == 8 and cfg.python3.pool.initial_size == 2
    assert cfg.python3.worker.call_timeout == 0.25


@pytest.mark.parametrize("text, message", [
    ("python3:\n  pool:\n    max-size: lots\n", "python3.pool.max-size = 'lots'"),
    ("python3:\n  pool:\n    min-size: 3\n    initial-size: 2\n", "min-size <= initial-size"),
    ("python3:\n  worker:\n    call-timeout: forever\n", "python3.worker.call-timeout = 'forever'"),
    ("python3:\n  worker:\n    call-timeout: 2h\n", "must not exceed max-call-timeout"),
    ("python3:\n  worker:\n    max-output: 12 parsecs\n", "python3.worker.max-output"),
    ("python3:\n  bridge:\n    zmq:\n      endpoint: ipc:///tmp/x\n", "expected tcp://HOST:PORT"),
    ("python3:\n  poool: {}\n", "unknown key 'python3.poool'"),
    ("python3:\n  logging:\n    level: LOUD\n", "python3.logging.level = 'LOUD'"),
    ("- a list\n", "top-level key 'python3:'"),
    ("python3: [unclosed\n", "is not valid YAML"),
])
def test_bad_config_names_key_value_and_what_is_allowed(text, message):
    with pytest.raises(ConfigError) as info:
        config.load(text=text)
    assert message in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the config file"):
        config.load(tmp_path / "absent.yml")


@pytest.mark.parametrize("text, seconds", [("500ms", 0.5), ("30s", 30), ("5m", 300),
                                           ("1h", 3600), ("7d", 604800), (2, 2.0)])
def test_durations(text, seconds):
    assert config.parse_duration(text) == seconds


@pytest.mark.parametrize("text, message", [
    ("python3:\n  circuit-breaker:\n    failure-threshold: 0\n", "failure-threshold = 0"),
    ("python3:\n  circuit-breaker:\n    minimum-calls: 30\n", "minimum-calls = 30 cannot exceed"),
    ("python3:\n  circuit-breaker:\n    failure-rate-threshold: 1.5\n",
     "failure-rate-threshold = 1.5"),
    ("python3:\n  circuit-breaker:\n    timeout: soon\n", "python3.circuit-breaker.timeout"),
    ("python3:\n  fallback:\n    strategies: [primary, backup]\n", "no pool named ['backup']"),
    ("python3:\n  fallback:\n    strategies: [direct, primary]\n", "must start with 'primary'"),
    ("python3:\n  fallback:\n    strategies: [primary, direct, direct]\n",
     "names a strategy twice"),
    ("python3:\n  fallback:\n    fall-through: [overloaded, user]\n", "['user'] never fall"),
    ("python3:\n  fallback:\n    fall-through: [timeout]\n", "['timeout'] never fall"),
    ("python3:\n  fallback:\n    fall-through: [bad_request]\n", "cannot fall through"),
    ("python3:\n  fallback:\n    strategies: [primary, remote]\n", "remote.endpoint is empty"),
    ("python3:\n  fallback:\n    strategies: [primary, remote]\n    remote:\n"
     "      endpoint: tcp://10.0.0.2:5557\n", "neither remote.token nor remote.token-file"),
    ("python3:\n  fallback:\n    remote:\n      endpoint: http://x\n", "expected tcp://HOST:PORT"),
    ("python3:\n  fallback:\n    secondary:\n      initial-size: 0\n", "initial-size >= 1"),
    ("python3:\n  fallback:\n    direct:\n      max-concurrent: 0\n", "max-concurrent = 0"),
])
def test_breaker_and_fallback_config_rejects_bad_combinations(text, message):
    with pytest.raises(ConfigError) as info:
        config.load(text=text)
    assert message in str(info.value)


def test_breaker_and_fallback_defaults_mirror_the_spec():
    cfg = config.load().python3
    assert (cfg.circuit_breaker.enabled, cfg.circuit_breaker.failure_threshold,
            cfg.circuit_breaker.timeout, cfg.circuit_breaker.success_threshold) == (True, 5, 60, 3)
    assert cfg.fallback.strategies == ["primary"]
    assert cfg.fallback.fall_through == ["circuit_open", "overloaded", "unavailable"]
