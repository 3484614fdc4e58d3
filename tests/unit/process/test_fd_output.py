"""Covers: sidecar.process.fd_output, sidecar.config.model.

The fd 1/2 forwarder's rate limit with an injected clock (no sleeping), and its config keys."""

import logging
import os

import pytest

from sidecar.config import model as config
from sidecar.config.model import ConfigError
from sidecar.process.fd_output import RECORD_OVERHEAD, FdOutput


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def logged(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "py3sidecar.worker.output"]


def test_the_bucket_lets_the_rate_through_and_counts_the_rest(caplog):
    clock = Clock()
    out = FdOutput("log", 1000, clock)
    line = b"x" * (100 - RECORD_OVERHEAD - 1) + b"\n"  # each record costs 99 of the budget
    with caplog.at_level(logging.INFO, "py3sidecar.worker.output"):
        out.forward(line * 50, "worker 1 (pid 7)")
    assert out.logged_bytes == 10 * len(line)  # 10 records fit a second's worth of burst
    assert out.dropped_bytes == 40 * len(line)
    clock.now += 0.5  # half a second refills half the bucket
    out.forward(line * 50, "worker 1 (pid 7)")
    assert out.logged_bytes == 15 * len(line)
    records = [m for m in logged(caplog) if m.startswith("worker 1 (pid 7): x")]
    assert len(records) == 15
    assert any("not logged" in m and "output-log-rate" in m for m in logged(caplog))


def test_a_long_line_is_cut_and_many_short_lines_cannot_outrun_the_rate():
    out = FdOutput("log", 10_000, Clock())
    out.forward(b"y" * 100_000, "w")
    assert out.logged_bytes <= 10_000 and out.dropped_bytes >= 90_000
    out = FdOutput("log", 10_000, Clock())
    out.forward(b"\n" * 100_000, "w")  # empty lines still cost a record header each
    assert out.logged_bytes <= 10_000 // RECORD_OVERHEAD + 1


def test_discard_logs_nothing_and_counts_everything(caplog):
    out = FdOutput("discard", 1 << 20, Clock())
    with caplog.at_level(logging.INFO, "py3sidecar.worker.output"):
        out.forward(b"secret\n" * 10, "w")
    assert out.snapshot() == {"mode": "discard", "rate": 1 << 20, "logged_bytes": 0,
                              "dropped_bytes": 70}
    assert not any("secret" in m for m in logged(caplog))


def test_reading_a_pipe_never_blocks_and_sees_its_end():
    out = FdOutput("discard", 0, Clock())
    read_end, write_end = out.open_pipe()
    try:
        assert out.on_readable(read_end, "w") is True  # nothing there: no block, still open
        os.write(write_end, b"z" * 70_000)
        assert out.on_readable(read_end, "w") is True
        assert out.dropped_bytes == 70_000
        os.close(write_end)
        assert out.on_readable(read_end, "w") is False
    finally:
        os.close(read_end)


@pytest.mark.parametrize("text, message", [
    ("python3:\n  worker:\n    fd-output: syslog\n", "python3.worker.fd-output"),
    ("python3:\n  worker:\n    output-log-rate: fast\n", "python3.worker.output-log-rate"),
])
def test_bad_fd_output_settings_name_the_key(text, message):
    with pytest.raises(ConfigError) as info:
        config.load(text=text)
    assert message in str(info.value)


def test_fd_output_defaults():
    worker = config.load().python3.worker
    assert (worker.fd_output, worker.output_log_rate) == ("log", 64 * 1024)
