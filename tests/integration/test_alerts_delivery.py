"""Covers: sidecar.alerts.policy, sidecar.alerts.manager, sidecar.alerts.channels.

Alerts from a real sidecar to real receivers on loopback: SMTP (aiosmtpd), a JSON webhook and a
Slack-format webhook (apprise's ``mmost://``: Mattermost's Slack-compatible incoming webhook),
and a real kill storm capped by ``max-per-hour`` with the suppression summary last."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from sidecar.testing import SidecarProcess, free_port, wait_until


class WebhookReceiver:
    """A local HTTP server that records every POST (path and JSON body)."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict]] = []
        received = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append((self.path, json.loads(body or b"{}")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def on(self, path: str) -> list[dict]:
        return [body for p, body in list(self.posts) if p == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpReceiver:
    def __init__(self) -> None:
        self.messages: list = []
        messages = self.messages

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802
                messages.append(message_from_bytes(envelope.original_content))
                return "250 OK"

        self.port = free_port()  # aiosmtpd checks its socket by connecting: it needs a number
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()


@pytest.fixture
def receivers():
    web, smtp = WebhookReceiver(), SmtpReceiver()
    yield web, smtp
    web.close()
    smtp.close()


def member_pids(proc: SidecarProcess) -> list[int]:
    return [w["pid"] for w in proc.pool()["workers"]
            if w["role"] == "member" and w["state"] in ("idle", "busy")]


def kill_one_and_wait(proc: SidecarProcess, size: int) -> None:
    victim = member_pids(proc)[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: victim not in member_pids(proc) and len(member_pids(proc)) >= size, 15,
               message="the killed worker replaced")


def plain_text(message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            return part.get_payload(decode=True).decode()
    return ""


def test_a_dead_worker_reaches_email_json_and_slack_format_hooks_then_resolves(
        tmp_path, receivers) -> None:
    web, smtp = receivers
    channels = [
        {"url": f"mailto://127.0.0.1:{smtp.port}?from=sidecar@plant.test&to=ops@plant.test"
                "&mode=insecure", "levels": ["CRITICAL"]},
        {"url": f"json://127.0.0.1:{web.port}/alerts", "levels": ["WARNING", "CRITICAL"]},
        {"url": f"mmost://127.0.0.1:{web.port}/hooktoken", "levels": ["CRITICAL"]},
    ]
    config = {"pool": {"initial-size": 1, "min-size": 1, "spares": 0},
              "alerts": {"channels": channels, "throttle": {"group-wait": "0s",
                                                            "group-interval": "1s"}}}
    with SidecarProcess(config, workdir=str(tmp_path)) as proc:
        victim = member_pids(proc)[0]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: smtp.messages and web.on("/alerts") and web.on("/hooks/hooktoken"),
                   20, message="the CRITICAL alert on all three channels")
        subject = smtp.messages[0]["Subject"]
        assert subject.startswith("[CRITICAL] Python3 Module: pool primary: worker ")
        assert f"(pid {victim}) died unexpectedly" in subject
        assert "FIRING CRITICAL worker_crashed/primary" in plain_text(smtp.messages[0])
        hook = web.on("/alerts")[0]
        assert hook["type"] == "failure" and hook["title"] == subject
        slack = web.on("/hooks/hooktoken")[0]   # Slack's incoming-webhook fields
        assert f"(pid {victim}) died unexpectedly" in slack["text"] and slack["username"]

        # The replacement is ready: one resolved notification, to the channels that had it.
        wait_until(lambda: any(h["type"] == "success" for h in web.on("/alerts")), 20,
                   message="the resolved notification")
        resolved = [h for h in web.on("/alerts") if h["type"] == "success"][0]
        assert "resolved" in resolved["title"] and "full strength" in resolved["message"]
        wait_until(lambda: len(smtp.messages) >= 2, 10, message="the resolution by email")
        assert "resolved" in smtp.messages[1]["Subject"]

        # A WARNING (an operator forcing the breaker open) goes to the JSON hook only.
        client = proc.client()
        client.breaker("open")
        wait_until(lambda: any("breaker" in h["title"] for h in web.on("/alerts")), 20,
                   message="the breaker WARNING")
        warning = [h for h in web.on("/alerts") if "breaker" in h["title"]][0]
        assert warning["type"] == "warning" and warning["title"].startswith("[WARNING]")
        shown = subprocess.run([sys.executable, "-m", "sidecar", "health", "--endpoint",
                                proc.endpoint], capture_output=True, text=True, env=proc.env,
                               timeout=30)
        assert "alert WARNING breaker_open/primary: the primary circuit breaker is forced_open" \
            in shown.stdout, shown.stdout
        client.breaker("close")
        report = client.health()["alerts"]
        assert not any("breaker" in m["Subject"] for m in smtp.messages)
        assert not any("breaker" in h["text"] for h in web.on("/hooks/hooktoken"))
        assert report["counts"]["sent"] >= 3 and report["recent"]
        # named by scheme and position: a URL's host or path may be its secret
        assert [c["name"] for c in report["delivery"]["channels"]] == [
            "mailto#0", "json#1", "mmost#2"]


def test_a_real_kill_storm_is_capped_and_the_last_notification_counts_the_rest(
        tmp_path, receivers) -> None:
    web, _ = receivers
    cap = 4
    config = {"pool": {"initial-size": 2, "min-size": 1, "spares": 1, "max-restarts": 1000},
              "alerts": {"channels": [{"url": f"json://127.0.0.1:{web.port}/storm",
                                       "levels": ["INFO", "WARNING", "CRITICAL"]}],
                         "throttle": {"max-per-hour": cap, "group-wait": "0s",
                                      "group-interval": "300ms"}}}
    with SidecarProcess(config, workdir=str(tmp_path)) as proc:
        client = proc.client()

        def suppressed() -> int:
            return client.health()["alerts"]["counts"].get("suppressed", 0)

        # Kill until the cap has held notifications back. The policy tells a change at most
        # every group-interval, so what counts is how long the storm lasts, not how many kills
        # it has: a fast storm of 60 kills can fit in three group-intervals (CI saw it).
        kills, storm_ends = 0, time.monotonic() + 30
        while kills < 12 or (not suppressed() and time.monotonic() < storm_ends):
            kill_one_and_wait(proc, 2)
            kills += 1
        # The last change is told (here: held back) one group-interval after the last send.
        wait_until(lambda: suppressed() > 0, 10, message=f"a notification suppressed "
                   f"after {kills} kills")
        wait_until(lambda: any(h["title"].endswith("notifications suppressed")
                               for h in web.on("/storm")), 20, message="the summary")
        hooks = web.on("/storm")
        assert len(hooks) == cap
        summary = hooks[-1]
        assert f"{suppressed()} notification(s)" in summary["message"]
        assert "worker_crashed/primary" in summary["message"]
        assert client.execute("1+1").value == 2


def test_a_secondary_pool_worker_death_is_its_own_condition(tmp_path) -> None:
    config = {"pool": {"initial-size": 1, "spares": 0},
              "fallback": {"strategies": ["primary", "secondary"],
                           "secondary": {"initial-size": 1, "min-size": 1}},
              "alerts": {"throttle": {"group-wait": "0s", "group-interval": "0s"}}}
    with SidecarProcess(config, workdir=str(tmp_path)) as proc:
        client = proc.client()
        wait_until(lambda: client.health()["pools"]["secondary"]["size"]
                   ["ready"] >= 1, 15, message="the secondary pool ready")
        secondary = client.health()["pools"]["secondary"]
        pid = next(w["pid"] for w in secondary["workers"]
                   if w["state"] in ("idle", "busy", "checking"))
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: any("worker_crashed/secondary" in r["keys"]
                               for r in client.health()["alerts"]["recent"]), 15,
                   message="the secondary pool's crash alert")
        recent = client.health()["alerts"]["recent"]
        assert not any("worker_crashed/primary" in r["keys"] for r in recent)
        assert any(r["group"] == "pool secondary" and r["level"] == "CRITICAL" for r in recent)
