"""`make bench`'s one table (issue 10 item 7): every figure a ratio against a peer measured in
the same run, and the issue's Goals table filled in from those figures.

    .venv/bin/python benchmarks/report.py [--short] [--only PART ...] [--out-dir DIR]

Parts, each run in turn (a part that fails prints why and leaves its rows "not measured"):

    latency     call('operator:add') and execute('1+1') through the CPython client and a 1-worker
                sidecar, interleaved with ProcessPoolExecutor(1), multiprocessing.Pool(1),
                pebble.ProcessPool(1), loky's executor(1) and the pipe floor (one byte through
                an os.pipe to a child process and back); ping (the sidecar answers, no worker)
    jython      benchmarks/jython_bench.py: real Jython 2.7 python3.call/ping over Py4J and
                ZeroMQ against a bare py4j echo and a bare JeroMQ echo, same run
    throughput  benchmarks/throughput.py: calls/s, 1-4 workers x 1-64 threads, ours against PPE
                and multiprocessing.Pool; Jython gateway threads against the CPython client's 8
    payload     benchmarks/payload_scaling.py: 1 KiB to 64 MiB, MB/s, ours against PPE's pickle
    datasets    5-column Datasets of 10 to 1M cells sent, described (pandas) and returned
                unchanged, against PPE; from Jython when jython_bench.py exports a Dataset
                benchmark (see ``jython_dataset_rows``), otherwise the CPython client
    recovery    a warm spare refilled after SIGKILL of the serving worker (median)

Writes ``benchmarks/results/report.csv``, ``report.json`` (rows as in results/README.md) and
``report.png``. ``--short`` is the CI smoke (benchmarks/test_report.py): every row present, few
rounds, nothing large; its figures are not worth quoting.

Owns: collecting figures, the goals and the table. Must not touch: the library (it only calls
it) or how the part scripts measure (it calls their ``run`` functions).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import operator
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: the checkout's root importable
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from benchmarks import payload_scaling, targets, throughput  # noqa: E402
from benchmarks.report_jython import (  # noqa: E402
    JYTHON_PAIRS,
    jython_bench_dataset_rows,
    measure_jython,
)
from benchmarks.report_output import table, write_csv, write_json, write_png  # noqa: E402
from benchmarks.report_rows import Row  # noqa: E402
from sidecar.testing import SidecarProcess, wait_until  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PARTS = ("latency", "jython", "throughput", "payload", "datasets", "recovery")
KIB, MIB = 1 << 10, 1 << 20
DATASET_CELLS = (10, 1_000, 10_000, 100_000, 500_000, 1_000_000)
SHORT_DATASET_CELLS = (10, 1_000, 10_000)
GOAL_CELLS = 500_000  # the 100,000 rows x 5 columns


# ----------------------------------------------------------------------------- latency

def median_p99(samples: list[int]) -> tuple[float, float]:
    samples = sorted(samples)
    return samples[len(samples) // 2] / 1e3, samples[len(samples) * 99 // 100] / 1e3


PIPE_CHILD = ("import os,sys\nr,w=int(sys.argv[1]),int(sys.argv[2])\n"
              "while True:\n b=os.read(r,1)\n if not b: break\n os.write(w,b)\n")


@contextlib.contextmanager
def pipe_floor() -> Iterator[Callable[[], bytes]]:
    """A raw os.pipe round trip to a child process: the least any process pool can cost."""
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    child = subprocess.Popen([sys.executable, "-c", PIPE_CHILD, str(to_child_r),
                              str(from_child_w)], pass_fds=(to_child_r, from_child_w))
    os.close(to_child_r)
    os.close(from_child_w)

    def round_trip() -> bytes:
        os.write(to_child_w, b"x")
        return os.read(from_child_r, 1)

    try:
        yield round_trip
    finally:
        # Forked pool workers may hold the write end too, so the child would never see EOF.
        child.kill()
        child.wait(10)
        os.close(to_child_w)
        os.close(from_child_r)


def interleaved(calls: dict[str, Callable[[], Any]], rounds: int,
                batch: int) -> dict[str, list[int]]:
    """Per-call ns of each peer, measured in alternating batches (the order rotated each
    round) so the machine's other load falls on all of them alike."""
    samples: dict[str, list[int]] = {name: [] for name in calls}
    names = list(calls)
    for name in names:  # warm-up
        for _ in range(max(50, batch // 4)):
            calls[name]()
    for turn in range(rounds):
        for name in names[turn % len(names):] + names[:turn % len(names)]:
            fn, out = calls[name], samples[name]
            for _ in range(batch):
                t = time.perf_counter_ns()
                fn()
                out.append(time.perf_counter_ns() - t)
    return samples


def measure_latency(short: bool) -> list[Row]:
    import loky
    import pebble

    sidecar = SidecarProcess(throughput.pool_config(1))
    sidecar.start()
    try:
        client = sidecar.client(timeout=30)
        with (ProcessPoolExecutor(1) as ppe, multiprocessing.Pool(1) as mpool,
              pebble.ProcessPool(max_workers=1) as pbl,
              loky.ProcessPoolExecutor(1) as lky, pipe_floor() as pipe):
            calls = {
                "ours_call": lambda: client.call("operator:add", 1, 2),
                "ours_execute": lambda: client.execute("1+1").value,
                "ours_ping": client.ping,
                "ppe": lambda: ppe.submit(operator.add, 1, 2).result(),
                "ppe_eval": lambda: ppe.submit(eval, "1+1").result(),
                "mp_pool": lambda: mpool.apply(operator.add, (1, 2)),
                "pebble": lambda: pbl.schedule(operator.add, args=(1, 2)).result(),
                "loky": lambda: lky.submit(operator.add, 1, 2).result(),
                "pipe": pipe,
            }
            assert calls["ours_call"]() == 3 and calls["ours_execute"]() == 2
            assert calls["pebble"]() == 3 and calls["loky"]() == 3 and pipe() == b"x"
            got = {k: median_p99(v) for k, v in
                   interleaved(calls, 4 if short else 20, 100 if short else 300).items()}
    finally:
        sidecar.stop()
    call_m, call_p = got["ours_call"]
    peers = (("ppe", "ProcessPoolExecutor(1)"), ("mp_pool", "multiprocessing.Pool(1)"),
             ("pebble", "pebble.ProcessPool(1)"), ("loky", "loky.ProcessPoolExecutor(1)"),
             ("pipe", "pipe floor (os.pipe to a child)"))
    rows = [Row("latency", f"call('operator:add') median / {key}", call_m, got[key][0], "us",
                name) for key, name in peers]
    rows.append(Row("latency", "call('operator:add') p99 / ppe", call_p, got["ppe"][1], "us",
                    "ProcessPoolExecutor(1)"))
    rows.append(Row("latency", "execute('1+1') median / ppe eval", got["ours_execute"][0],
                    got["ppe_eval"][0], "us", "ProcessPoolExecutor(1), eval"))
    rows.append(Row("latency", "ping (no worker) median / pipe floor", got["ours_ping"][0],
                    got["pipe"][0], "us", "pipe floor (os.pipe to a child)"))
    return rows


# ----------------------------------------------------------------------------- throughput

def measure_throughput(short: bool) -> list[Row]:
    if short:
        rows = throughput.run_matrix(throughput.SHORT_WORKERS, throughput.SHORT_THREADS, 0.2,
                                     repeats=1)
    else:
        rows = throughput.run_matrix()
    out = [Row("throughput", r["figure"], r["ours"], r["peer"], r["unit"], r["peer_name"],
               r["goal"], extra={"workers": r["workers"], "threads": r["threads"]})
           for r in rows]
    if shutil.which("java") is None:
        return out + [Row("throughput", "jython 16 gateway threads / cpython 8t",
                          note="java is not installed")]
    jrows = throughput.run_jython((16,) if short else throughput.JYTHON_THREADS,
                                  seconds=0.3 if short else 1.0)
    return out + [Row("throughput", r["figure"], r["ours"], r["peer"], r["unit"], r["peer_name"],
                      r["goal"], extra={"workers": r["workers"], "threads": r["threads"]})
                  for r in jrows]


# ----------------------------------------------------------------------------- payload

def measure_payload(short: bool) -> list[Row]:
    sizes = payload_scaling.SHORT_SIZES if short else payload_scaling.SIZES
    rows = payload_scaling.run(sizes)
    out = [Row("payload", r["figure"], r["ours"], r["peer"], r["unit"], r["peer_name"],
               r["goal"], note=f"{r['ours_mb_s']:.0f} vs {r['peer_mb_s']:.0f} MB/s",
               extra={"bytes": r["bytes"], "ours_mb_s": r["ours_mb_s"],
                      "peer_mb_s": r["peer_mb_s"]}) for r in rows]
    if short:
        out.append(Row("payload", "reply 32 MiB / PPE", goal="<= 1.5x",
                       note="not run in --short"))
    return out


# ----------------------------------------------------------------------------- datasets

def jython_dataset_rows(short: bool) -> list[Row] | None:
    """The Jython Dataset benchmark, when ``benchmarks/jython_bench.py`` exports one:
    ``dataset_figures(cells: list[int]) -> {f"{op} {cells}": ms}`` with ``op`` one of send,
    describe, unchanged (a peer, when it has one, as ``(ms, peer_ms, peer_name)``). None when
    it does not (then the CPython client stands in)."""
    from benchmarks import jython_bench

    bench = getattr(jython_bench, "dataset_figures", None)
    if bench is None or shutil.which("java") is None:
        return None
    cells = list(SHORT_DATASET_CELLS if short else DATASET_CELLS)
    rows = []
    for name, value in bench(cells).items():
        ours, peer, peer_name = (value if isinstance(value, (tuple, list)) else
                                 (value, None, ""))
        rows.append(Row("datasets", f"jython: {name}", ours, peer, "ms", peer_name,
                        extra={"cells": int(name.split()[-1]) if name.split()[-1].isdigit()
                               else None, "op": name.split()[0], "from": "jython"}))
    return rows


def measure_datasets(short: bool) -> list[Row]:
    try:
        rows = jython_dataset_rows(short)
    except Exception:  # the other benchmark is work in progress: fall back, say why
        traceback.print_exc()
        rows = None
    rows = (rows or []) + jython_bench_dataset_rows()
    cells_list = SHORT_DATASET_CELLS if short else DATASET_CELLS
    # pandas preloaded, as a user of it would: imported in a call, numpy's BLAS threads would
    # count as left behind and recycle the worker after every call (about 350 ms each here).
    sidecar = SidecarProcess({**throughput.pool_config(1), "worker": {"preload": ["pandas"]},
                              "bridge": {"max-message-size": 512 * MIB}})
    sidecar.start()
    out = rows
    try:
        client = sidecar.client(timeout=300)
        with ProcessPoolExecutor(1) as ppe:
            ppe.submit(targets.unchanged, 0).result()
            for cells in cells_list:
                value = targets.dataset(cells)
                for op, fn in (("send", targets.row_count), ("describe", targets.describe),
                               ("unchanged", targets.unchanged)):
                    target = f"benchmarks.targets:{fn.__name__}"
                    ours = best_of(lambda t=target, v=value: client.call(t, v), cells)
                    peer = best_of(lambda f=fn, v=value: ppe.submit(f, v).result(), cells)
                    out.append(Row("datasets", f"{op} {cells:,} cells / PPE", ours * 1e3,
                                   peer * 1e3, "ms", "ProcessPoolExecutor(1), pickle",
                                   note="CPython client",
                                   extra={"cells": cells, "op": op, "from": "cpython"}))
                    print(f"dataset {op} {cells} cells: ours {ours * 1e3:.1f} ms, PPE "
                          f"{peer * 1e3:.1f} ms", flush=True)
    finally:
        sidecar.stop()
    return out


def best_of(fn: Callable[[], Any], cells: int) -> float:
    """Median seconds of a few calls after one warm-up (fewer for big values)."""
    rounds = 9 if cells <= 10_000 else 3
    fn()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


# ----------------------------------------------------------------------------- recovery

def measure_recovery(short: bool) -> list[Row]:
    from benchmarks.test_recovery_figures import full_strength, member_pid

    config = {"pool": {"initial-size": 1, "min-size": 1, "spares": 1, "max-restarts": 100000},
              "circuit-breaker": {"enabled": False}, "scaling": {"enabled": False}}
    refill, served = [], []
    with SidecarProcess(config) as proc:
        client = proc.client(timeout=10)
        for _ in range(3 if short else 20):
            wait_until(lambda: full_strength(client), 10)
            pid = member_pid(client)
            t0 = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            for _attempt in range(3):
                with contextlib.suppress(Exception):  # a call raced the kill: try again
                    client.execute("1+1")
                    break
            served.append(time.perf_counter() - t0)
            wait_until(lambda pid=pid: full_strength(client, pid), 5, interval=0.0005)
            refill.append(time.perf_counter() - t0)
    return [Row("recovery", "spare refilled after a kill (median)",
                statistics.median(refill) * 1e3, None, "ms", goal="<= 20 ms",
                note=f"{len(refill)} SIGKILLs"),
            Row("recovery", "next call served after a kill (median)",
                statistics.median(served) * 1e3, None, "ms", note=f"{len(served)} SIGKILLs")]


# ----------------------------------------------------------------------------- goals

def find(rows: list[Row], section: str, figure: str) -> Row | None:
    return next((r for r in rows if r.section == section and r.figure == figure), None)


def dataset_goal(rows: list[Row], op: str) -> Row | None:
    for source in ("jython", "cpython"):
        hit = next((r for r in rows if r.section == "datasets"
                    and r.extra.get("op") == op and r.extra.get("cells") == GOAL_CELLS
                    and r.extra.get("from") == source), None)
        if hit:
            return hit
    return None


GOALS: tuple[tuple[str, str, Callable[[list[Row]], Row | None], str], ...] = (
    ("Jython python3.call median / bare py4j echo median", "<= 2.0x",
     lambda rows: find(rows, "jython", JYTHON_PAIRS[0][0]), ""),
    ("Jython python3.call p99 / echo p99", "<= 3x",
     lambda rows: find(rows, "jython", JYTHON_PAIRS[1][0]), ""),
    ("Jython python3.ping / echo", "<= 1.3x",
     lambda rows: find(rows, "jython", JYTHON_PAIRS[2][0]), ""),
    ("CPython client median / PPE median (execute('1+1'))", "<= 1.0x",
     lambda rows: find(rows, "latency", "execute('1+1') median / ppe eval"), ""),
    ("throughput, 2 workers, 8 threads / PPE(2)", ">= 1.2x",
     lambda rows: find(rows, "throughput", "throughput 2w 8t / ppe"), ""),
    ("Jython, 16 gateway threads / CPython client's 8 threads, same sidecar", ">= 1.0x",
     lambda rows: find(rows, "throughput", "jython 16 gateway threads / cpython 8t"), ""),
    ("32 MiB reply / PPE", "<= 1.5x", lambda rows: find(rows, "payload", "reply 32 MiB / PPE"),
     ""),
    ("spare refilled after a kill (median)", "<= 20 ms",
     lambda rows: find(rows, "recovery", "spare refilled after a kill (median)"), ""),
    ("100,000-row x 5-column Dataset sent to a worker", "<= 100 ms",
     lambda rows: dataset_goal(rows, "send"), "Jython"),
    ("describe() of that Dataset, back as a Dataset", "<= 200 ms",
     lambda rows: dataset_goal(rows, "describe"), "Jython"),
    ("that Dataset returned unchanged (both directions)", "<= 250 ms",
     lambda rows: dataset_goal(rows, "unchanged"), "Jython"),
)


def goal_rows(rows: list[Row]) -> list[Row]:
    out = []
    for figure, goal, pick, wants in GOALS:
        hit = pick(rows)
        if hit is None or hit.ours is None:
            out.append(Row("goals", figure, goal=goal, note="not measured in this run"))
            continue
        note = hit.figure
        if wants == "Jython" and hit.extra.get("from") != "jython":
            note += "; CPython client stands in (no Jython Dataset figure in this run)"
        out.append(Row("goals", figure, hit.ours, hit.peer, hit.unit, hit.peer_name, goal,
                       note, dict(hit.extra)))
    return out


def expected_figures(short: bool) -> list[tuple[str, str]]:
    """(section, figure) of every row a run must print: the smoke test checks them."""
    out = [("latency", f"call('operator:add') median / {k}")
           for k in ("ppe", "mp_pool", "pebble", "loky", "pipe")]
    out += [("jython", f) for f, *_ in JYTHON_PAIRS]
    for w in (throughput.SHORT_WORKERS if short else throughput.WORKERS):
        for t in (throughput.SHORT_THREADS if short else throughput.THREADS):
            out += [("throughput", f"throughput {w}w {t}t / {p}") for p in ("ppe", "mp_pool")]
    for size in (payload_scaling.SHORT_SIZES if short else payload_scaling.SIZES):
        for kind in ("reply", "request", "round trip"):
            out.append(("payload", f"{kind} {payload_scaling.label(size)} / PPE"))
    out += [("recovery", "spare refilled after a kill (median)")]
    out += [("goals", figure) for figure, *_ in GOALS]
    return out


MEASURES: dict[str, Callable[[bool], list[Row]]] = {
    "latency": measure_latency, "jython": measure_jython, "throughput": measure_throughput,
    "payload": measure_payload, "datasets": measure_datasets, "recovery": measure_recovery,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="the CI smoke: few rounds")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS),
                        help="run only these parts")
    parser.add_argument("--out-dir", default=str(RESULTS), help="where report.* go")
    args = parser.parse_args(argv)
    rows: list[Row] = []
    failed = []
    for part in args.only:
        started = time.monotonic()
        print(f"== {part}", flush=True)
        try:
            rows += MEASURES[part](args.short)
        except Exception as exc:  # one part's failure must not lose the others' figures
            traceback.print_exc()
            failed.append(part)
            rows.append(Row(part, f"{part} failed", note=f"{type(exc).__name__}: {exc}"[:200]))
        print(f"== {part}: {time.monotonic() - started:.0f} s", flush=True)
    present = {(r.section, r.figure) for r in rows}
    for section, figure in expected_figures(args.short):
        if section in args.only and (section, figure) not in present:
            rows.append(Row(section, figure, note="not measured in this run"))
    rows += goal_rows(rows)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "report.csv")
    write_json(rows, out / "report.json")
    try:
        write_png(rows, out / "report.png")
    except Exception:  # the plot is a convenience: the table and CSV stand without it
        traceback.print_exc()
    print()
    print("py3sidecar benchmark report: ratios are ours / peer, both measured in this run"
          + (" (--short: a smoke run, figures not worth quoting)" if args.short else ""))
    print(table(rows))
    print(f"\nwrote {out / 'report.csv'}, {out / 'report.json'}, {out / 'report.png'}")
    if failed:
        print(f"parts that failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
