"""Covers: sidecar.observability.metrics, sidecar.config.model.

Metrics pieces that need no sidecar: the loop hand-off, the histograms, the minute ring, the
counters other parts feed (the scrape of a real sidecar is in tests/integration)."""

import threading

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sidecar.loop import Loop
from sidecar.observability.metrics import (
    DURATION_BUCKETS,
    LoopHistogram,
    LoopUnresponsive,
    Metrics,
    ask,
    classify_restart,
    percentile,
)


def test_ask_runs_in_the_loop_thread_and_has_a_deadline():
    loop = Loop()
    with pytest.raises(LoopUnresponsive, match="did not answer within 0.2s"):
        ask(loop, lambda: 1, 0.2)  # a loop that does not run never answers: no hang
    runner = threading.Thread(target=loop.run)
    runner.start()
    try:
        assert ask(loop, threading.get_ident, 5.0) == runner.ident
        with pytest.raises(ZeroDivisionError):  # the loop's exception reaches the asker
            ask(loop, lambda: 1 / 0, 5.0)
    finally:
        loop.stop()
        runner.join(5)
        loop.close()


def test_histogram_buckets_follow_prometheus_le():
    h = LoopHistogram((1.0, 2.0))
    for value in (0.5, 1.0, 1.5, 3.0):
        h.observe(value)
    family = h.family("py3sidecar_x_seconds", "x")
    buckets = {s.labels["le"]: s.value for s in family.samples if s.name.endswith("_bucket")}
    assert buckets == {"1.0": 2, "2.0": 3, "+Inf": 4}
    assert DURATION_BUCKETS[0] == 50e-6 and DURATION_BUCKETS[-1] == 60.0


def test_percentile_interpolates_within_its_bucket():
    assert percentile((1.0, 2.0), [0, 0, 0], 0.5) is None
    assert percentile((1.0, 2.0), [0, 10, 0], 0.5) == pytest.approx(1.5)
    assert percentile((1.0, 2.0), [98, 2, 0], 0.99) == pytest.approx(1.5)


def test_calls_feed_the_minute_ring_and_the_recent_summary():
    now = [600.0]
    metrics = Metrics(clock=lambda: now[0])
    for i in range(100):
        metrics.observe_answer("execute", None if i < 99 else "crashed", now[0] - 0.0008, 120,
                               "primary")
    now[0] += 10
    summary = metrics.recent_summary()
    assert summary["calls_per_second"] == pytest.approx(10.0)
    assert summary["error_ratio"] == pytest.approx(0.01)
    assert 0.0005 < summary["p50_seconds"] <= 0.001
    (minute,) = metrics.minutes_view()
    assert (minute["calls"], minute["errors"]) == (100, 1)
    now[0] += 60
    metrics.observe_answer("call", None, now[0] - 0.002, 10, "primary")
    assert [m["calls"] for m in metrics.minutes_view()] == [100, 1]
    assert metrics.calls == {("execute", "ok"): 99, ("execute", "crashed"): 1, ("call", "ok"): 1}


def test_alert_and_quarantine_counters_are_exposed():
    metrics = Metrics()
    metrics.record_alert("slack", "CRITICAL")
    metrics.record_alert("slack", "CRITICAL")
    metrics.record_quarantined(3)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(generate_latest(metrics.registry).decode())
               for s in f.samples}
    assert samples[("py3sidecar_alerts_sent_total",
                    (("channel", "slack"), ("level", "CRITICAL")))] == 2
    assert samples[("py3sidecar_quarantined_requests_total", ())] == 3


@pytest.mark.parametrize("reason, label", [
    ("its call passed the 0.3s timeout", "timeout"),
    ("it served 100 calls (python3.resources.max-calls-per-worker)", "max_calls"),
    ("its memory (600 MiB) is above python3.resources.max-memory-per-worker (512 MiB)",
     "memory"),
    ("the pool is scaling down", "scale_down"),
    ("it did not answer a health probe in time", "hang"),
    ("something new", "other"),
])
def test_restart_reasons_are_a_bounded_set(reason, label):
    assert classify_restart(reason) == label


def test_http_config_defaults_and_errors_name_the_key():
    from sidecar.config import model as config

    http = config.load().python3.http
    assert (http.enabled, http.host, http.port) == (True, "127.0.0.1", 5558)
    with pytest.raises(config.ConfigError, match=r"python3\.http\.port = 70000: .*0\.\.65535"):
        config.load(text="python3:\n  http: {port: 70000}\n")
    with pytest.raises(config.ConfigError, match=r"unknown key 'python3\.http\.bind'"):
        config.load(text="python3:\n  http: {bind: x}\n")


def test_observe_answer_counts_both_keys_and_fills_the_histograms_as_observe_does():
    """The one call per answer (both paths, sidecar/routing/lean.py): the op's and the pool's
    counts, histograms equal to ``LoopHistogram.observe`` of the same values, a minute ring
    slot per minute, and the clock reading it took."""
    now = [600.0]
    metrics = Metrics(clock=lambda: now[0])
    duration, sizes = LoopHistogram(DURATION_BUCKETS), LoopHistogram(metrics.output_size.bounds)
    for i, outcome in enumerate([None, "user", None, "crashed"]):
        now[0] += 30.0
        size = 10 ** i
        assert metrics.observe_answer("call", outcome, now[0] - 0.0003 * i, size,
                                      "primary") == now[0]
        duration.observe(0.0003 * i)
        sizes.observe(size)
    assert metrics.duration.counts == duration.counts
    assert metrics.duration.total == pytest.approx(duration.total)
    assert metrics.output_size.copy() == sizes.copy()
    assert [(m[0], m[2], m[3]) for m in metrics.minutes] == [(10, 1, 0), (11, 2, 1), (12, 1, 1)]
    assert metrics.calls == {("call", "ok"): 2, ("call", "user"): 1, ("call", "crashed"): 1}
    assert metrics.pool_calls == {("primary", "ok"): 2, ("primary", "user"): 1,
                                  ("primary", "crashed"): 1}
