"""Covers: sidecar.observability.redaction, sidecar.alerts.channels, sidecar.config.model,
    sidecar.cli.commands, bridge.py4j_connection.

Against a real sidecar (serve, config --check): `diag
config`, health, /metrics, the dashboard and the log show no secret (by key or by value), a channel
is named `json#0`, a channel URL apprise cannot use is refused naming its key, a short token is
refused when a front listens beyond loopback, a junk py4j line is logged by size only."""

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sidecar.testing import SidecarProcess, free_port, wait_until


def test_diag_config_redacts_every_secret(tmp_path):
    with SidecarProcess({"pool": {"initial-size": 1, "spares": 0},
                         "worker": {"env": {"DB_PASSWORD": "pw-secret"}},
                         "fallback": {"remote": {"token": "remote-secret"}}},
                        workdir=str(tmp_path)) as proc:
        shown = proc.client(timeout=5).diagnostics("config")
        text = repr(shown)
        assert "remote-secret" not in text and "pw-secret" not in text
        assert proc.token not in text
        assert shown["python3"]["fallback"]["remote"]["token"] == "<redacted>"


def test_a_short_token_is_refused_when_listening_beyond_loopback(tmp_path):
    proc = SidecarProcess({"bridge": {"token": "short", "zmq": {
        "endpoint": f"tcp://0.0.0.0:{free_port()}"}}}, workdir=str(tmp_path))
    with pytest.raises(RuntimeError) as err:
        proc.start(timeout=20)
    proc.stop()
    assert "python3.bridge.token" in str(err.value) and "at least 32" in str(err.value)


# ---------------------------------------------------------------- secrets by value
ALERT_PASSWORD, DB_PASSWORD = "alertpass", "dbpass123"
PY4J_JUNK = "py4j-junk-token-7Hq2ZkP9aVxW3mN8"


class BasicAuthReceiver:
    """A loopback HTTP server recording each POST's path and Authorization header."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, str]] = []
        received = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append((self.path, self.headers.get("Authorization", "")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    web = BasicAuthReceiver()
    yield web
    web.close()


def get(url: str) -> str:
    """The body, whatever the status (/health answers 503 while the pool is short)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:  # loopback only
            return answer.read().decode()
    except urllib.error.HTTPError as answer:
        return answer.read().decode()


def test_no_secret_reaches_diag_health_metrics_dashboard_alerts_or_the_log(tmp_path, receiver):
    channel = f"json://alertuser:{ALERT_PASSWORD}@127.0.0.1:{receiver.port}/alerts"
    db_url = f"postgres://app:{DB_PASSWORD}@db/x"
    config = {"pool": {"initial-size": 1, "min-size": 1, "spares": 0},
              "logging": {"level": "DEBUG"},  # apprise's and urllib3's own lines too
              "worker": {"env": {"DATABASE_URL": db_url, "PLANT": "north-line"},
                         "env-not-secret": ["PLANT"]},
              "alerts": {"channels": [{"url": channel, "levels": ["CRITICAL"]}],
                         "throttle": {"group-wait": "0s", "group-interval": "1s"}}}
    with SidecarProcess(config, workdir=str(tmp_path)) as proc:
        client = proc.client(timeout=10)
        assert client.execute("import os; os.environ['DATABASE_URL']").value == db_url
        # the worker writes the value to its fd 2: the sidecar logs that output
        client.execute("import os; os.write(2, b'worker says ' + "
                       "os.environ['DATABASE_URL'].encode() + b'\\n')")
        victim = next(w["pid"] for w in proc.pool()["workers"] if w["state"] == "idle")
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: receiver.posts, 20, message="the CRITICAL alert at the JSON hook")
        path, auth = receiver.posts[0]
        assert path == "/alerts"  # the URL with its credentials really was used
        assert base64.b64decode(auth.split()[1]).decode() == f"alertuser:{ALERT_PASSWORD}"
        wait_until(lambda: "worker says" in proc.log(), 10, message="the worker's fd output")

        health = client.health()
        assert [c["name"] for c in health["alerts"]["delivery"]["channels"]] == ["json#0"]
        wait_until(lambda: 'channel="json#0"' in get(f"{proc.http_url}/metrics"), 10,
                   message="the delivery counted under json#0")
        shown = {
            "diag config": json.dumps(client.diagnostics("config")),
            "diag health": json.dumps(client.diagnostics("health")),
            "health": json.dumps(client.health()),
            "/metrics": get(f"{proc.http_url}/metrics"),
            "/health": get(f"{proc.http_url}/health"),
            "/api/dashboard": get(f"{proc.http_url}/api/dashboard"),
        }
        assert 'py3sidecar_alerts_sent_total{channel="json#0",level="CRITICAL"}' \
            in shown["/metrics"]
        assert "north-line" in shown["diag config"]  # listed as not secret: shown
    log = proc.log()
    assert "worker says <redacted>" in log or "worker says postgres://<redacted>" in log, log
    for where, text in shown.items():  # the channel's URL is not shown at all
        for secret in (ALERT_PASSWORD, DB_PASSWORD, f"127.0.0.1:{receiver.port}/alerts"):
            assert secret not in text, f"{secret!r} in {where}"
    for secret in (ALERT_PASSWORD, DB_PASSWORD):  # apprise's DEBUG lines name the host
        assert secret not in log, f"{secret!r} in the sidecar's log"


def test_a_channel_url_apprise_cannot_use_is_refused_by_check_and_serve_naming_the_key(
        tmp_path):
    bot_token = "badbottokenzx"  # apprise logs this one whole
    config = {"alerts": {"channels": [{"url": "json://127.0.0.1:9/a"},
                                      {"url": f"tgram://{bot_token}/4242"}]}}
    proc = SidecarProcess(config, workdir=str(tmp_path))
    checked = subprocess.run([sys.executable, "-m", "sidecar", "config", "--check",
                              str(proc.config_path)], capture_output=True, text=True,
                             env=proc.env, timeout=60)
    assert checked.returncode != 0
    assert "python3.alerts.channels.1.url" in checked.stderr and "tgram://" in checked.stderr
    assert bot_token not in checked.stdout + checked.stderr
    with pytest.raises(RuntimeError) as err:  # serve refuses it the same way, and exits
        proc.start(timeout=30)
    proc.stop()
    assert proc.proc.returncode == 2  # EXIT_USAGE: a bad config, not a crash
    assert "python3.alerts.channels.1.url" in str(err.value)
    assert bot_token not in str(err.value) and bot_token not in proc.log()


def test_a_junk_py4j_line_is_logged_by_size_and_peer_only(tmp_path):
    with SidecarProcess({"pool": {"initial-size": 1, "spares": 0}},
                        workdir=str(tmp_path)) as proc:
        # before authenticating: the line where "A" belongs
        with socket.create_connection(("127.0.0.1", proc.py4j_port), timeout=5) as sock:
            sock.sendall(f"{PY4J_JUNK}-before\n".encode())
            wait_until(lambda: "did not authenticate first" in proc.log(), 10,
                       message="the refusal of the unauthenticated line")
        # authenticated, then an unknown command (a token where a command belongs)
        with socket.create_connection(("127.0.0.1", proc.py4j_port), timeout=5) as sock:
            sock.sendall(f"A\n{proc.token}\ne\n".encode())
            assert sock.recv(16).startswith(b"!yv")
            sock.sendall(f"{PY4J_JUNK}-after\nt\n".encode())
            assert sock.recv(64).startswith(b"!x")  # py4j's error answer
            wait_until(lambda: "unknown command" in proc.log(), 10,
                       message="the unknown command logged")
        assert proc.client().execute("1+1").value == 2  # still serving
    log = proc.log()
    assert f"unknown command (a {len(PY4J_JUNK) + 6}-byte line)" in log
    assert PY4J_JUNK not in log and PY4J_JUNK[:20] not in log
