"""Covers: sidecar.cli.commands, sidecar.config.serve_checks.

``py3sidecar config --check FILE`` refuses what ``py3sidecar serve`` refuses: a
short token with a front beyond loopback, a token file others may read. Both commands run as an
operator types them, on the same file and environment.

The front "beyond loopback" is 192.0.2.1 (TEST-NET-1, on no interface here): even if a check
were missing, nothing could listen beyond loopback.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sidecar.testing import PROJECT_ROOT

EXPOSED = "tcp://192.0.2.1:5557"
LONG = "L" * 43


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sidecar", *args], capture_output=True,
                          text=True, timeout=60, env=env)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k != "PY3SIDECAR_TOKEN"}
    environ["PYTHONPATH"] = str(PROJECT_ROOT)
    environ["PY3SIDECAR_RUNTIME_DIR"] = str(tmp_path / "runtime")
    return environ


def config_file(tmp_path: Path, bridge: str) -> Path:
    path = tmp_path / "config.yml"
    path.write_text("python3:\n  pool: {initial-size: 1, max-size: 1}\n"
                    "  http: {enabled: false}\n  bridge:\n" + bridge)
    return path


def private_token_file(tmp_path: Path, token: str, mode: int = 0o600) -> Path:
    path = tmp_path / "token"
    path.write_text(token + "\n")
    os.chmod(path, mode)
    return path


REFUSED = {
    "1-character token, ZeroMQ beyond loopback":
        (lambda tmp: f"    token: x\n    zmq: {{endpoint: '{EXPOSED}'}}\n"
                     "    py4j: {enabled: false}\n", {}, "has 1 characters"),
    "1-character token, Py4J beyond loopback":
        (lambda tmp: "    token: x\n    zmq: {enabled: false}\n"
                     "    py4j: {host: 192.0.2.1, python-port: 25334}\n", {}, "has 1 characters"),
    "short token from the environment":
        (lambda tmp: f"    zmq: {{endpoint: '{EXPOSED}'}}\n    py4j: {{enabled: false}}\n",
         {"PY3SIDECAR_TOKEN": "short"}, "$PY3SIDECAR_TOKEN"),
    "short token in the token file":
        (lambda tmp: f"    token-file: '{private_token_file(tmp, 'abc')}'\n"
                     f"    zmq: {{endpoint: '{EXPOSED}'}}\n    py4j: {{enabled: false}}\n",
         {}, "has 3 characters"),
    "token file others can read":
        (lambda tmp: f"    token-file: '{private_token_file(tmp, LONG, 0o644)}'\n"
                     "    py4j: {enabled: false}\n", {}, "chmod 600"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_config_check_refuses_what_serve_refuses(tmp_path, env, case):
    bridge, extra_env, fragment = REFUSED[case]
    path = config_file(tmp_path, bridge(tmp_path))
    env.update(extra_env)
    checked = run("config", "--check", str(path), env=env)
    assert checked.returncode == 2 and fragment in checked.stderr, checked
    assert "valid" not in checked.stdout
    served = run("serve", "--config", str(path), env=env)
    assert served.returncode != 0 and fragment in served.stderr, served
    assert "x\n" not in checked.stderr and "short\n" not in checked.stderr  # no value shown


@pytest.mark.parametrize("bridge", [
    "    token: x\n    py4j: {enabled: false}\n",  # a short token on loopback only
    f"    token: {LONG}\n    zmq: {{endpoint: '{EXPOSED}'}}\n    py4j: {{enabled: false}}\n",
    f"    zmq: {{endpoint: '{EXPOSED}'}}\n    py4j: {{enabled: false}}\n",  # a new token
], ids=["short-on-loopback", "long-beyond-loopback", "generated-beyond-loopback"])
def test_config_check_accepts_what_serve_accepts(tmp_path, env, bridge):
    path = config_file(tmp_path, bridge)
    checked = run("config", "--check", str(path), env=env)
    assert checked.returncode == 0 and checked.stdout.strip() == f"{path}: valid", checked
    assert not (tmp_path / "runtime" / "token").exists()  # a check creates nothing
