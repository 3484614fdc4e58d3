"""Covers: sidecar.observability.metrics, sidecar.pool.call.

What metrics cost a call, measured in the same run: the one hot-path addition (a MeteredCall
observed as it is answered) against a plain Call, both against an execute round trip; and a
/metrics scrape of a real sidecar (the loop's share is one snapshot per scrape)."""

import urllib.request

from benchmarks.conftest import FIGURES, LINES, RATIOS, record
from sidecar.observability.metrics import MeteredCall, Metrics
from sidecar.pool.call import Call

RATIOS.append(("MeteredCall vs Call (create + answer)", "metered_answer", "plain_answer"))
METRICS = Metrics()
PAYLOAD = b"\x83\xa2id\x01\xa2ok\xc3\xa5value\x02"


def _sink(data: bytes) -> None:
    pass


def test_plain_call_answer(benchmark):
    benchmark(lambda: Call(1, b"", 1.0, _sink, 0.0).answer(PAYLOAD))
    record("plain_answer", benchmark)


def test_metered_call_answer(benchmark):
    benchmark(lambda: MeteredCall(METRICS, "execute", 1, b"", 1.0, _sink, 0.0).answer(PAYLOAD))
    record("metered_answer", benchmark)


def test_execute_round_trip_for_scale(benchmark, bench_sidecar):
    client = bench_sidecar.client(timeout=10)
    assert benchmark(lambda: client.execute("1+1").value) == 2
    record("metrics_execute_rt", benchmark)


def test_scrape(benchmark, bench_sidecar):
    url = bench_sidecar.http_url + "/metrics"
    body = benchmark(lambda: urllib.request.urlopen(url, timeout=10).read())
    assert b"py3sidecar_calls_total" in body
    record("metrics_scrape", benchmark)
    if {"metered_answer", "plain_answer", "metrics_execute_rt"} <= FIGURES.keys():
        added = FIGURES["metered_answer"] - FIGURES["plain_answer"]
        LINES.append(f"metrics per call: +{added * 1e6:.2f} us = "
                     f"{100 * added / FIGURES['metrics_execute_rt']:.2f}% of an execute round "
                     f"trip ({FIGURES['metrics_execute_rt'] * 1e6:.0f} us), same run")
