"""Covers: sidecar.cli.commands, sidecar.observability.diagnostics.

The `py3sidecar` command against a real sidecar, as an operator would type it."""

import os
import subprocess
import sys

import pytest


def run_cli(sidecar, *args, timeout=30):
    env = dict(sidecar.env)
    return subprocess.run([sys.executable, "-m", "sidecar", *args, "--endpoint",
                           sidecar.endpoint], capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_exec_prints_value_as_json(sidecar):
    result = run_cli(sidecar, "exec", "1+1")
    assert (result.returncode, result.stdout.strip()) == (0, "2")
    result = run_cli(sidecar, "exec", "a * b", "--var", "a=3", "--var", 'b=[1, "x"]')
    assert result.stdout.strip().replace("\n", "").replace(" ", "") == '[1,"x",1,"x",1,"x"]'


def test_exec_crash_names_signal_then_next_call_works(sidecar):
    result = run_cli(sidecar, "exec", "import os; os.kill(os.getpid(), 9)")
    assert result.returncode == 1
    assert "crashed" in result.stderr and "signal 9" in result.stderr
    assert run_cli(sidecar, "exec", "1+1").stdout.strip() == "2"


def test_exec_timeout(sidecar):
    result = run_cli(sidecar, "exec", "while True: pass", "--timeout", "1")
    assert result.returncode == 1 and "timeout" in result.stderr
    sidecar.wait_full_strength(2)


def test_call_and_ping(sidecar):
    result = run_cli(sidecar, "call", "statistics:mean", "[1, 2, 3]")
    assert (result.returncode, result.stdout.strip()) == (0, "2")
    result = run_cli(sidecar, "ping")
    assert result.returncode == 0 and '"state": "running"' in result.stdout


def test_user_error_exit_code_and_message(sidecar):
    result = run_cli(sidecar, "exec", "1/0")
    assert result.returncode == 1 and "ZeroDivisionError" in result.stderr


def test_bad_var_json_is_a_usage_error(sidecar):
    result = run_cli(sidecar, "exec", "x", "--var", "x={nope")
    assert result.returncode != 0 and "--var x is not valid JSON" in result.stderr


def test_print_default_config():
    result = subprocess.run([sys.executable, "-m", "sidecar", "config", "--print-default"],
                            capture_output=True, text=True, timeout=30,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert result.returncode == 0 and "python3:" in result.stdout and "pool:" in result.stdout


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:1"])
def test_exec_against_nothing_fails_fast(endpoint):
    result = subprocess.run([sys.executable, "-m", "sidecar", "exec", "1", "--endpoint", endpoint],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "cannot reach the sidecar" in result.stderr
