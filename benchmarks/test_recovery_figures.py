"""Covers: sidecar.supervision.recovery, sidecar.pool.lifecycle, sidecar.supervision.watchdog.

Recovery figures: time to recover from SIGKILL, recovery success rate, calls served
while workers are killed under load, health-check false positives under heavy healthy load,
and throughput with monitoring on vs off in the same run.

`make bench` runs 200 kills (PY3SIDECAR_BENCH_KILLS); `make test` a short run. Figures are
printed at the end; the assertions check correctness (every call answered, recovery happened),
never an absolute time.
"""

import os
import random
import signal
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from benchmarks.conftest import LINES
from bridge.client import WorkerCrashed
from sidecar.testing import SidecarProcess, wait_until

KILLS = int(os.environ.get("PY3SIDECAR_BENCH_KILLS", "20"))
LOAD_SECONDS = float(os.environ.get("PY3SIDECAR_BENCH_LOAD_SECONDS", "3"))


def pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def full_strength(client, old_pid=None):
    pool = client.health()["pool"]
    size = pool["size"]
    pids = {w["pid"] for w in pool["workers"]}
    return (size["ready"] >= size["target"] and size["spares_ready"] >= size["spares_wanted"]
            and old_pid not in pids)


def members_back(client, old_pid):
    pool = client.health()["pool"]
    pids = {w["pid"] for w in pool["workers"] if w["state"] != "stopping"}
    return pool["size"]["ready"] >= pool["size"]["target"] and old_pid not in pids


def member_pid(client):
    """A serving member's pid. Full strength can be seen while the member is in a health check
    (state "checking") or between states, so wait for it rather than assume it."""
    def find():
        return next((w["pid"] for w in client.health()["pool"]["workers"]
                     if w["role"] == "member" and w["state"] in ("idle", "busy", "checking")), None)
    return wait_until(find, 10, interval=0.001, message="a serving member")


@pytest.mark.parametrize("spawn", ["plain", "template"])
@pytest.mark.parametrize("spares", [1, 0], ids=["warm-spare", "no-spare"])
def test_time_to_recover_after_sigkill(tmp_path, spares, spawn):
    """Both spawn modes in the same run (python3.worker.spawn): plain starts a Python per
    worker, template forks it from a warm process that did the preload
    (sidecar.process.template)."""
    kills = KILLS if spares else max(10, KILLS // 4)
    config = {"pool": {"initial-size": 1, "min-size": 1, "spares": spares,
                       "max-restarts": 100000}, "worker": {"spawn": spawn},
              "circuit-breaker": {"enabled": False}, "scaling": {"enabled": False}}
    with SidecarProcess(config, workdir=str(tmp_path)) as proc:
        client = proc.client(timeout=10)
        if spawn == "template":
            wait_until(lambda: client.health()["pool"]["template"]["state"] == "ready", 20)
        served, members, strength, recovered, raced = [], [], [], 0, 0
        for _ in range(kills):
            wait_until(lambda: full_strength(client), 10)
            pid = member_pid(client)
            t0 = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            for _attempt in range(3):
                try:
                    assert client.execute("1+1").value == 2
                    break
                except WorkerCrashed:
                    raced += 1  # the dying worker had already read it: answered `crashed`
            served.append(time.perf_counter() - t0)
            try:
                wait_until(lambda pid=pid: members_back(client, pid), 15, interval=0.0005)
                members.append(time.perf_counter() - t0)
                wait_until(lambda pid=pid: full_strength(client, pid), 15, interval=0.0005)
            except TimeoutError:
                continue
            strength.append(time.perf_counter() - t0)
            recovered += 1
        label = (f"{'with a warm spare' if spares else 'without a spare'}, {spawn} spawn, "
                 f"{kills} SIGKILLs")

        def ms(values):
            return (f"median {statistics.median(values) * 1000:.1f} ms, p99 "
                    f"{pct(values, 99) * 1000:.1f} ms")

        LINES.append(f"recovery {label}: kill -> next call served {ms(served)}; kill -> "
                     f"serving workers back at full strength {ms(members)}; kill -> spare "
                     f"replenished too {ms(strength)}; recovered {recovered}/{kills} "
                     f"({recovered / kills:.0%}); {raced} calls raced the kill (crashed)")
        assert recovered == kills


def test_calls_served_while_a_worker_is_killed_every_second(tmp_path):
    config = {"pool": {"initial-size": 2, "spares": 1}, "scaling": {"enabled": False}}
    with SidecarProcess(config, workdir=str(tmp_path)) as proc:
        client = proc.client(timeout=10)
        outcomes, lock = [], threading.Lock()
        stop = time.monotonic() + LOAD_SECONDS

        def load():
            while time.monotonic() < stop:
                try:
                    value = client.execute("import time; time.sleep(0.002); 1").value
                except Exception as exc:  # recorded and judged below
                    value = exc
                with lock:
                    outcomes.append(value)

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        killed, rng = [], random.Random(1)
        while time.monotonic() < stop - 0.5:
            time.sleep(1.0)  # the kill rate under test
            pids = [w["pid"] for w in client.health()["pool"]["workers"]
                    if w["role"] == "member" and w["state"] in ("idle", "busy")]
            pid = rng.choice(pids)
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        for t in threads:
            t.join(30)
        crashed = [o for o in outcomes if isinstance(o, WorkerCrashed)]
        other = [o for o in outcomes if isinstance(o, Exception) and o not in crashed]
        ok = sum(1 for o in outcomes if o == 1)
        LINES.append(f"under load with one SIGKILL per second ({len(killed)} kills): "
                     f"{ok}/{len(outcomes)} calls succeeded ({ok / len(outcomes):.2%}); "
                     f"{len(crashed)} failed, all in flight on a killed worker; "
                     f"{len(other)} other failures")
        assert not other
        assert {c.details["pid"] for c in crashed} <= set(killed)
        assert len(crashed) <= len(killed)


def test_health_check_false_positives_under_heavy_load(tmp_path):
    config = {"pool": {"initial-size": 2, "spares": 1},
              "health": {"quick-check-interval": "50ms", "check-interval": "100ms",
                         "resource-check-interval": "100ms", "ping-timeout": "250ms",
                         "hang-after": "1s"},
              "scaling": {"enabled": False}}
    with SidecarProcess(config, workdir=str(tmp_path)) as proc:
        client = proc.client(timeout=30)
        deadline = time.monotonic() + LOAD_SECONDS

        def load(_):
            n = 0
            while time.monotonic() < deadline:
                client.execute("sum(i * i for i in range(200_000))")
                n += 1
            return n

        with ThreadPoolExecutor(6) as pool:
            calls = sum(pool.map(load, range(6)))
        report = client.health()
        evaluations = report["watchdog"]["evaluations"]
        findings = report["watchdog"]["findings"]
        LINES.append(f"health checks under heavy healthy load ({calls} CPU-bound calls, 6 "
                     f"threads, 2 workers): {findings} false positives in {evaluations} "
                     f"verdicts ({findings / max(evaluations, 1):.1%}); "
                     f"{report['watchdog']['pings']} pings, "
                     f"{report['watchdog']['benchmarks']} benchmarks")
        assert evaluations > 0
        assert findings == 0 and report["pool"]["counters"]["kills"] == 0


def test_throughput_with_monitoring_on_vs_off(tmp_path):
    base = {"pool": {"initial-size": 2, "min-size": 2, "max-size": 2, "spares": 1},
            "scaling": {"enabled": False}}
    # "off": no health checks, no HTTP, no alerts (the per-call metrics observation cannot be
    # switched off: benchmarks/test_metrics_overhead.py prices it alone). "on": everything, and
    # /metrics scraped every second while the load runs (Prometheus is usually 15 s).
    configs = {
        "off": {"health": {"enabled": False}, "http": {"enabled": False},
                "alerts": {"enabled": False}},
        "on (defaults: 5 s / 30 s / 60 s)": {},
        "on (aggressive: 100 ms / 300 ms / 300 ms)": {
            "health": {"quick-check-interval": "100ms", "check-interval": "300ms",
                       "resource-check-interval": "300ms"}},
    }
    procs = {name: SidecarProcess({**base, **extra}, workdir=str(tmp_path / str(i))).start()
             for i, (name, extra) in enumerate(configs.items())}
    stop_scraping = threading.Event()

    def scrape() -> None:
        import urllib.request
        urls = [p.http_url + "/metrics" for p in procs.values() if p.http_url]
        while not stop_scraping.wait(1.0):
            for url in urls:
                with urllib.request.urlopen(url, timeout=5) as answer:
                    answer.read()
    scraper = threading.Thread(target=scrape, daemon=True)
    scraper.start()
    try:
        rates: dict[str, list[float]] = {name: [] for name in procs}
        names = list(procs)
        for round_ in range(len(names) * 2):  # rotated order: noise and drift hit all alike
            for name in names[round_ % len(names):] + names[:round_ % len(names)]:
                proc = procs[name]
                client = proc.client(timeout=10)
                deadline = time.monotonic() + LOAD_SECONDS / 6

                def loop(_, client=client, deadline=deadline):
                    n = 0
                    while time.monotonic() < deadline:
                        client.call("operator:add", 1, 2)
                        n += 1
                    return n

                started = time.monotonic()
                with ThreadPoolExecutor(8) as pool:
                    total = sum(pool.map(loop, range(8)))
                rates[name].append(total / (time.monotonic() - started))
        medians = {name: statistics.median(r) for name, r in rates.items()}
        off = medians.pop("off")
        LINES.append(f"throughput, 2 workers, 8 threads: monitoring (health checks, HTTP with a "
                     f"1 s scrape, alerts) off {off:.0f} calls/s; "
                     + "; ".join(f"{name} {rate:.0f} calls/s, overhead {1 - rate / off:.1%}"
                                 for name, rate in medians.items()))
        assert off > 0 and all(rate > 0 for rate in medians.values())
        assert scraper.is_alive()  # every scrape answered (a failed one ends the thread)
    finally:
        stop_scraping.set()
        scraper.join(10)
        for proc in procs.values():
            proc.stop()
