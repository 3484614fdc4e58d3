import pytest

from sidecar import config
from sidecar.config import ConfigError


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
