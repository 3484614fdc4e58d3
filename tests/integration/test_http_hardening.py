"""Covers: sidecar.http.server, sidecar.http.handler.

The HTTP front against real sidecars: HTTPS (python3.http.tls), the Host check (DNS
rebinding), the header deadline, the bounded pool of threads, and the diagnostics' options.

Certificates come from a throwaway CA made in tmp_path; threads are counted in /proc/<pid>/task.
Every wait has a deadline.
"""
from __future__ import annotations

import http.client
import json
import os
import select
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request

import pytest

from sidecar.testing import SidecarProcess, wait_until
from sidecar.testing_tls import make_test_certificates

DEADLINE = 10.0


def get(url, token=None, host=None, context=None, timeout=DEADLINE):
    """(status, body) of a GET; HTTP errors are answers too."""
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    if host is not None:
        request.add_header("Host", host)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def threads_of(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_test_certificates(tmp_path_factory.mktemp("http-tls"))


@pytest.fixture(scope="module")
def plain():
    proc = SidecarProcess({"pool": {"initial-size": 1, "max-size": 1, "spares": 0},
                           "scaling": {"enabled": False},
                           "http": {"max-connections": 4, "header-timeout": "1s",
                                    "allowed-hosts": ["scada-gw.plant.local"]}})
    proc.start()
    yield proc
    proc.stop()


# ---------------------------------------------------------------- HTTPS
def test_https_serves_health_and_metrics_to_a_client_trusting_the_ca(certs, tmp_path):
    with SidecarProcess({"pool": {"initial-size": 1},
                         "http": {"tls": {"cert-file": str(certs.cert),
                                          "key-file": str(certs.key)}}},
                        workdir=str(tmp_path)) as proc:
        url = proc.http_url
        assert url.startswith("https://127.0.0.1:"), url
        context = ssl.create_default_context(cafile=str(certs.ca))
        wait_until(lambda: get(url + "/health", context=context)[0] == 200, DEADLINE, 0.1,
                   "/health 200 over HTTPS")
        status, body = get(url + "/metrics", context=context)
        assert status == 200 and "py3sidecar_calls_total" in body
        assert get(url.replace("127.0.0.1", "localhost") + "/livez", context=context)[0] == 200
        with pytest.raises(urllib.error.URLError):  # not trusted: a CA that signed nothing
            get(url + "/livez", context=ssl.create_default_context(cafile=str(certs.other_ca)))
        # Plain HTTP on the HTTPS port gets nothing (the connection is closed unanswered).
        with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
            get(url.replace("https://", "http://") + "/livez")
        assert proc.client().execute("1+1").value == 2


# ---------------------------------------------------------------- Host check
@pytest.mark.parametrize("path", ["/api/dashboard", "/health", "/metrics"])
def test_a_foreign_host_header_is_refused_before_any_handler(plain, path):
    url = plain.http_url
    status, body = get(url + path, host="attacker.example:5558")
    assert status == 421 and "python3.http.allowed-hosts" in body, (status, body)
    assert "unauthorized" not in body
    assert get(url + path, host="attacker.example")[0] == 421
    port = url.rsplit(":", 1)[1]
    for host in ("127.0.0.1", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}",
                 "scada-gw.plant.local", f"scada-gw.plant.local:{port}"):
        status, _ = get(url + path, host=host)
        assert status in (200, 503), (host, status)  # served (503: /health while warming)


# ---------------------------------------------------------------- header deadline, the pool
def slow_headers(port: int, stop: threading.Event) -> socket.socket:
    """A client that sends a request line, then one header byte every 0.2 s: a per-read
    timeout would never fire."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    sock.sendall(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")

    def trickle() -> None:
        while not stop.wait(0.2):
            try:
                sock.sendall(b"a")
            except OSError:
                return
    threading.Thread(target=trickle, daemon=True).start()
    return sock


def closed_after(sock: socket.socket) -> tuple[bytes, float]:
    started = time.monotonic()
    got = bytearray()
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except ConnectionResetError:
        pass
    return bytes(got), time.monotonic() - started


def test_a_slow_header_client_is_cut_at_the_deadline_while_others_are_served(plain):
    port = int(plain.http_url.rsplit(":", 1)[1])
    stop = threading.Event()
    try:
        sock = slow_headers(port, stop)
        started = time.monotonic()
        for _ in range(5):  # served meanwhile
            assert get(plain.http_url + "/livez")[0] == 200
        got, _ = closed_after(sock)
        took = time.monotonic() - started
        assert got == b"", got[:200]
        assert 0.8 <= took < 1.0 + 3.0, f"cut after {took:.2f}s, the deadline is 1s"
        sock.close()
    finally:
        stop.set()


def busy_replies(socks: list[socket.socket], want: int) -> list[bytes] | None:
    """The first bytes of every socket that has been answered (or closed), once ``want`` have."""
    ready, _, _ = select.select(socks, [], [], 0)
    if len(ready) < want:
        return None
    answers = []
    for sock in ready:
        answers.append(sock.recv(4096, socket.MSG_PEEK))
    return [a for a in answers if a] if len([a for a in answers if a]) >= want else None


def test_more_connections_than_the_pool_start_no_threads(plain):
    pid = plain.proc.pid
    port = int(plain.http_url.rsplit(":", 1)[1])
    assert get(plain.http_url + "/livez")[0] == 200
    before = threads_of(pid)
    stop = threading.Event()
    holders = []
    try:
        # 4 pool threads + 4 waiting; the other 12 are answered 503 at once (the first 8 are
        # cut at the 1 s header deadline later).
        holders = [slow_headers(port, stop) for _ in range(20)]
        turned_away = wait_until(lambda: busy_replies(holders, 12), DEADLINE, 0.05,
                                 "12 connections answered 503")
        assert all(b.startswith(b"HTTP/1.1 503") for b in turned_away), turned_away[:3]
        during = threads_of(pid)
        assert during <= before, f"{during - before} thread(s) started for connections"
    finally:
        stop.set()
        for sock in holders:
            sock.close()
    # Once the slow ones are cut (1 s), everyone is served again.
    wait_until(lambda: get(plain.http_url + "/livez", timeout=3)[0] == 200, DEADLINE, 0.1,
               "/livez served after the slow clients were cut")


# ---------------------------------------------------------------- diagnostics options
def test_diagnostics_history_honours_its_limit_option(plain):
    client = plain.client(timeout=DEADLINE)
    for i in range(3):
        assert client.execute(f"{i}+1").value == i + 1
    status, body = get(plain.http_url + "/api/diagnostics/history?limit=1", token=plain.token)
    assert status == 200, body
    calls = json.loads(body)["value"]["calls"]
    assert len(calls) == 1, calls
    status, body = get(plain.http_url + "/api/diagnostics/history?limit=nope",
                       token=plain.token)
    assert status == 400 and "'limit'" in body
