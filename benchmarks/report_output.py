"""What ``benchmarks/report.py`` writes: the Markdown table it prints, the CSV and JSON rows,
and the PNG plot (one function per panel).

Owns: formatting and drawing the report's rows. Must not touch: measuring (``report.py``).
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.report_rows import Row


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "calls/s" or value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def table(rows: list[Row]) -> str:
    """The Markdown table (pastes into docs/performance.md as it is)."""
    lines = ["| part | figure | ours | peer | unit | ratio | peer is | goal | goal met? | note |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
        lines.append(f"| {r.section} | {r.figure} | {fmt(r.ours, r.unit)} | "
                     f"{fmt(r.peer, r.unit)} | {r.unit} | {ratio} | {r.peer_name} | {r.goal} | "
                     f"{r.met} | {r.note} |")
    return "\n".join(lines)


def write_csv(rows: list[Row], path: Path) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["section", "figure", "ours", "peer", "unit", "ratio", "peer_name", "goal",
                    "met", "note"])
        for r in rows:
            w.writerow([r.section, r.figure, r.ours, r.peer, r.unit, r.ratio, r.peer_name,
                        r.goal, r.met, r.note])


def write_json(rows: list[Row], path: Path) -> None:
    path.write_text(json.dumps([{**asdict(r), "ratio": r.ratio, "met": r.met} for r in rows],
                               indent=1))


def plot_latency(ax: Any, rows: list[Row]) -> None:
    """Our median call against each peer's, same run."""
    lat = [r for r in rows if r.section == "latency" and "median / " in r.figure
           and r.figure.startswith("call")]
    if lat and all(r.ours and r.peer for r in lat):
        names = ["ours"] + [r.peer_name.split(" (")[0] for r in lat]
        values = [lat[0].ours] + [r.peer for r in lat]
        ax.barh(names, values, color=["tab:red"] + ["tab:blue"] * len(lat))
        ax.set_xlabel("median us per call('operator:add'), same run")
        ax.set_title("latency against the peers")


def plot_throughput(ax: Any, rows: list[Row]) -> None:
    """Calls/s against client threads, per pool size and peer."""
    tp = [r for r in rows if r.section == "throughput" and r.figure.startswith("throughput")]
    for workers in sorted({r.extra["workers"] for r in tp}):
        mine = [r for r in tp if r.extra["workers"] == workers and r.figure.endswith("/ ppe")]
        ax.plot([r.extra["threads"] for r in mine], [r.ours for r in mine], "o-",
                label=f"ours, {workers} workers")
    for peer, name in (("/ ppe", "ProcessPoolExecutor"), ("/ mp_pool", "multiprocessing.Pool")):
        two = [r for r in tp if r.extra["workers"] == 2 and r.figure.endswith(peer)]
        if two:
            ax.plot([r.extra["threads"] for r in two], [r.peer for r in two], "x--",
                    label=f"{name}(2)")
    jy = [r for r in rows if r.section == "throughput" and r.figure.startswith("jython")]
    if jy:
        ax.plot([r.extra["threads"] for r in jy], [r.ours for r in jy], "s-k",
                label="Jython gateway threads, 2 workers")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("client threads")
    ax.set_ylabel("calls/s")
    ax.set_title("throughput")
    ax.legend(fontsize=7, ncol=2)


def plot_payload(ax: Any, rows: list[Row]) -> None:
    """MB/s against value size, ours and PPE's."""
    for kind in ("reply", "request", "round trip"):
        mine = [r for r in rows if r.section == "payload" and r.figure.startswith(kind + " ")
                and "bytes" in r.extra]
        if mine:
            sizes = [r.extra["bytes"] for r in mine]
            ax.plot(sizes, [r.extra["ours_mb_s"] for r in mine], "o-", label=f"ours {kind}")
            ax.plot(sizes, [r.extra["peer_mb_s"] for r in mine], "x--", label=f"PPE {kind}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("bytes")
    ax.set_ylabel("MB/s")
    ax.set_title("payload scaling")
    ax.legend(fontsize=7)


def plot_datasets(ax: Any, rows: list[Row]) -> None:
    """Milliseconds against Dataset cells, per operation."""
    for op in ("send", "describe", "unchanged"):
        from_jython = [r for r in rows if r.section == "datasets" and r.extra.get("op") == op
                       and r.extra.get("from") == "jython" and r.ours]
        if from_jython:
            ax.plot([r.extra["cells"] for r in from_jython], [r.ours for r in from_jython], "s",
                    label=f"Jython {op}")
        mine = [r for r in rows if r.section == "datasets" and r.extra.get("op") == op
                and r.extra.get("cells") and r.extra.get("from") != "jython"]
        if mine:
            cells = [r.extra["cells"] for r in mine]
            ax.plot(cells, [r.ours for r in mine], "o-", label=f"ours {op}")
            if all(r.peer for r in mine):
                ax.plot(cells, [r.peer for r in mine], "x--", label=f"PPE {op}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("Dataset cells (5 columns)")
    ax.set_ylabel("ms")
    ax.set_title("Datasets")
    ax.legend(fontsize=7)


def write_png(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    for ax, draw in zip((axes[0][0], axes[0][1], axes[1][0], axes[1][1]),
                        (plot_latency, plot_throughput, plot_payload, plot_datasets)):
        draw(ax, rows)
    fig.suptitle("py3sidecar, same-run figures (benchmarks/report.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
