"""Covers: sidecar.observability.metrics, sidecar.http.handler, sidecar.service.

Metrics and HTTP endpoints against real sidecars: scraped over real sockets and parsed with
prometheus_client's own parser; the access rules and the 503 cases."""

import json
import os
import signal
import socket
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge.client import CallTimeout, PythonError, WorkerCrashed
from sidecar.testing import SidecarProcess, wait_until


def get(url, token=None, accept=None, timeout=10.0):
    """(status, headers, body) for a GET; HTTP errors are answers too."""
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    if accept:
        request.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read().decode()


def scrape(url):
    status, _, body = get(url + "/metrics")
    assert status == 200
    samples = {}
    families = {}
    for family in text_string_to_metric_families(body):
        families[family.name] = family
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return families, samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.fixture(scope="module")
def metered():
    proc = SidecarProcess({"pool": {"initial-size": 2, "max-size": 2, "spares": 1},
                           "worker": {"kill-grace": "200ms"},
                           "circuit-breaker": {"enabled": False},
                           "scaling": {"enabled": False}})
    proc.start()
    yield proc
    proc.stop()


def test_a_scrape_counts_every_outcome_and_exposes_the_pool(metered):
    client = metered.client(timeout=10.0)
    for _ in range(3):
        assert client.execute("1+1").value == 2
    client.execute("'x' * 5000")
    with pytest.raises(PythonError):
        client.execute("raise ValueError('boom')")
    with pytest.raises(CallTimeout):
        client.execute("import time; time.sleep(5)", timeout=0.3)
    metered.wait_full_strength(2)
    with pytest.raises(WorkerCrashed):
        client.execute("import os; os._exit(3)")
    metered.wait_full_strength(2)
    url = metered.http_url
    # the warm spare is back too: 2 members + 1 spare idle
    wait_until(lambda: value(scrape(url)[1], "py3sidecar_workers", pool="primary",
                             state="idle") == 3, 10, 0.05, "members and spare idle")
    families, samples = scrape(url)

    calls = "py3sidecar_calls_total"
    assert value(samples, calls, op="execute", outcome="ok") == 4
    for kind in ("user", "timeout", "crashed"):
        assert value(samples, calls, op="execute", outcome=kind) == 1, kind
    assert value(samples, calls, op="health", outcome="ok") >= 1  # the sidecar's own ops
    # histograms: 50 us .. 60 s, one observation per execute
    duration = "py3sidecar_call_duration_seconds"
    assert value(samples, duration + "_bucket", le="5e-05") is not None
    assert value(samples, duration + "_bucket", le="60.0") is not None
    assert value(samples, duration + "_count") == 7
    assert value(samples, duration + "_bucket", le="0.25") < 7  # the timed-out call took 0.3 s
    assert value(samples, "py3sidecar_queue_wait_seconds_count") >= 7
    size = "py3sidecar_output_size_bytes"
    assert value(samples, size + "_count") == 7
    assert value(samples, size + "_bucket", le="4096.0") < value(samples, size + "_bucket",
                                                                  le="16384.0")
    # gauges read at scrape time
    assert value(samples, "py3sidecar_queue_length", pool="primary") == 0
    for slot in ("0", "1", "2"):
        assert 0 <= value(samples, "py3sidecar_worker_health_score", pool="primary",
                          slot=slot) <= 100
        assert value(samples, "py3sidecar_worker_resident_memory_bytes", pool="primary",
                     slot=slot) > 1 << 20
    assert value(samples, "py3sidecar_worker_restarts_total", reason="crashed") == 1
    assert value(samples, "py3sidecar_worker_restarts_total", reason="timeout") == 1
    states = {dict(k[1])["state"]: v for k, v in samples.items()
              if k[0] == "py3sidecar_breaker_state"}
    assert sum(states.values()) == 1 and states["disabled"] == 1 and len(states) == 5
    assert value(samples, "py3sidecar_fallback_served_total", strategy="primary") == 4
    assert value(samples, "py3sidecar_process_resident_memory_bytes") > 1 << 20
    assert value(samples, "py3sidecar_process_open_fds") > 3
    assert value(samples, "py3sidecar_loop_lag_seconds") is not None
    assert value(samples, "py3sidecar_loop_responsive") == 1
    assert value(samples, "py3sidecar_health_status", status="HEALTHY") == 1
    assert "py3sidecar_alerts_sent" in families and "py3sidecar_quarantined_requests" in families
    # naming: prefix everywhere, counters end in _total
    for name, family in families.items():
        assert name.startswith("py3sidecar_"), name
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples), name


def test_refused_requests_are_counted_by_kind(metered):
    from bridge.client import Client, SidecarError

    intruder = Client(metered.endpoint, "not-the-token", timeout=5.0)
    try:
        with pytest.raises(SidecarError):
            intruder.ping()
    finally:
        intruder.close()
    _, samples = scrape(metered.http_url)
    assert value(samples, "py3sidecar_requests_refused_total", kind="unauthorized") >= 1


def test_openmetrics_when_the_accept_header_asks(metered):
    status, headers, body = get(metered.http_url + "/metrics",
                                accept="application/openmetrics-text; version=1.0.0")
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith("# EOF")
    status, headers, body = get(metered.http_url + "/metrics")
    assert headers["Content-Type"].startswith("text/plain") and "# EOF" not in body


def test_livez_readyz_and_health_pass(metered):
    url = metered.http_url
    status, _, body = get(url + "/livez")
    assert (status, body.startswith("ok")) == (200, True)
    status, _, body = get(url + "/readyz")
    assert status == 200 and "2 of 2 workers ready" in body
    status, headers, body = get(url + "/health")
    assert status == 200 and headers["Content-Type"] == "application/health+json"
    doc = json.loads(body)
    assert doc["status"] == "pass"
    assert all(":" in key for key in doc["checks"])
    assert doc["checks"]["pool:readyWorkers"][0]["observedValue"] == 2


def test_diagnostics_need_the_token_even_on_loopback(metered):
    url = metered.http_url + "/api/diagnostics/workers"
    assert get(url)[0] == 401
    status, headers, body = get(url, token="wrong")
    assert status == 401 and "Bearer" in headers["WWW-Authenticate"] and "token" in body
    assert str(metered.runtime_dir) not in body and "/" not in body, body  # no host layout
    status, _, body = get(url, token=metered.token)
    assert status == 200
    workers = json.loads(body)["value"]
    assert {w["pid"] for w in workers} == {w["pid"] for w in metered.pool()["workers"]}
    # the same function as the bridge's diag op: its command list, its errors
    status, _, body = get(metered.http_url + "/api/diagnostics/help", token=metered.token)
    assert json.loads(body)["value"] == metered.client().diagnostics("help")
    status, _, body = get(metered.http_url + "/api/diagnostics/nope", token=metered.token)
    assert status == 400 and "nope" in json.loads(body)["error"]["message"]
    # configuration never leaks the token
    status, _, body = get(metered.http_url + "/api/diagnostics/config", token=metered.token)
    assert status == 200 and metered.token not in body
    # loopback: the rest is open
    assert get(metered.http_url + "/api/dashboard")[0] == 200
    assert get(metered.http_url + "/no/such/thing")[0] == 404


def test_beyond_loopback_only_livez_and_readyz_are_open():
    with SidecarProcess({"http": {"host": "0.0.0.0"}, "pool": {"initial-size": 1}}) as proc:
        url = proc.http_url.replace("0.0.0.0", "127.0.0.1")
        assert get(url + "/livez")[0] == 200
        # open without a token (readiness itself may lag on a loaded machine: wait for it)
        wait_until(lambda: get(url + "/readyz")[0] == 200, 10, 0.1, "/readyz 200")
        for path in ("/health", "/metrics", "/api/dashboard", "/api/logs",
                     "/api/diagnostics/workers"):
            assert get(url + path)[0] == 401, path
            assert get(url + path, token=proc.token)[0] == 200, path
        # the page's files hold no data and carry the login form: a browser must reach them
        assert get(url + "/dashboard")[0] == 200


def test_readyz_and_health_say_503_when_no_worker_can_start():
    overrides = {"worker": {"python": "/nonexistent/python3"}, "pool": {"initial-size": 1}}
    with SidecarProcess(overrides, ready_workers=0) as proc:
        url = proc.http_url
        status, _, body = get(url + "/readyz")
        assert status == 503 and "no Python worker could be started" in body
        status, headers, body = get(url + "/health")
        assert status == 503 and json.loads(body)["status"] == "fail"
        assert json.loads(body)["output"] == "no worker is ready"
        assert get(url + "/livez")[0] == 200  # the sidecar itself is alive
        _, samples = scrape(url)
        assert value(samples, "py3sidecar_worker_spawn_failures_total", pool="primary") >= 1
        assert value(samples, "py3sidecar_health_status", status="UNHEALTHY") == 1


def test_a_port_in_use_is_reported_and_calls_are_still_served():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with SidecarProcess({"http": {"port": port}, "pool": {"initial-size": 1}}) as proc:
            http = proc.connection["http"]
            assert http["url"] is None and str(port) in http["error"]
            assert proc.client().execute("2+2").value == 4


def test_http_can_be_switched_off():
    with SidecarProcess({"http": {"enabled": False}, "pool": {"initial-size": 1}}) as proc:
        assert proc.connection["http"] is None and proc.http_url is None


def test_a_worker_killed_from_outside_shows_in_the_next_scrape(metered):
    _, before = scrape(metered.http_url)
    victim = next(w for w in metered.pool()["workers"] if w["role"] == "member")
    os.kill(victim["pid"], signal.SIGKILL)
    wait_until(lambda: value(scrape(metered.http_url)[1], "py3sidecar_worker_restarts_total",
                             reason="crashed") == (value(before, "py3sidecar_worker_restarts_total",
                                                         reason="crashed") or 0) + 1,
               10, 0.1, "the kill counted as a crash restart")
    metered.wait_full_strength(2)


def test_breaker_state_and_fallback_use_by_strategy():
    with SidecarProcess({"pool": {"initial-size": 1},
                         "fallback": {"strategies": ["primary", "secondary"]}}) as proc:
        client = proc.client()
        wait_until(lambda: value(scrape(proc.http_url)[1], "py3sidecar_workers",
                                 pool="secondary", state="idle") or 0, 10, 0.05,
                   "the secondary pool ready")
        client.breaker("open")
        for _ in range(3):
            assert client.execute("6*7").value == 42
        _, samples = scrape(proc.http_url)
        assert value(samples, "py3sidecar_breaker_state", breaker="primary",
                     state="forced_open") == 1
        assert value(samples, "py3sidecar_breaker_state", breaker="primary", state="closed") == 0
        assert value(samples, "py3sidecar_fallback_served_total", strategy="secondary") == 3
        assert value(samples, "py3sidecar_fallback_fell_through_total", strategy="primary") == 3
        assert value(samples, "py3sidecar_queue_wait_seconds_count") == 3  # secondary's too
        status, _, body = get(proc.http_url + "/health")
        assert status == 503 and json.loads(body)["status"] == "fail"  # breaker open: UNHEALTHY
        checks = json.loads(body)["checks"]["circuitBreaker:state"]
        assert {c["componentId"]: c["status"] for c in checks}["primary"] == "fail"


def test_a_stuck_loop_makes_livez_503_and_the_scrape_says_so(tmp_path, monkeypatch):
    """A real Service whose loop never runs (as if stuck in a handler): HTTP still answers,
    within its deadline, and says the loop is not answering."""
    from sidecar.config import model as config
    from sidecar.service import Service
    from sidecar.testing import free_port

    monkeypatch.setenv("PY3SIDECAR_RUNTIME_DIR", str(tmp_path))
    service = Service(config.load(text=(
        "python3:\n  http: {port: 0}\n  bridge:\n"
        f"    zmq: {{endpoint: 'tcp://127.0.0.1:{free_port()}'}}\n    py4j: {{python-port: 0}}\n")))
    service.http.start()
    try:
        status, _, body = get(service.http.url + "/livez")
        assert status == 503 and "did not answer within 2s" in body
        assert get(service.http.url + "/readyz")[0] == 503
        _, samples = scrape(service.http.url)
        assert value(samples, "py3sidecar_loop_responsive") == 0
        assert value(samples, "py3sidecar_process_open_fds") > 0
    finally:
        service.http.stop()
        service.loop.close()
