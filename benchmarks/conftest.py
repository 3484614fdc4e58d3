"""Benchmarks: our round trips against a peer measured in the same run, so the ratio survives a
noisy machine. Figures are printed at the end of the run; nothing asserts an absolute time."""

import pytest

from sidecar.testing import SidecarProcess

FIGURES: dict[str, float] = {}
LINES: list[str] = []  # other figures, printed as they are at the end of the run
RATIOS = [
    ("execute('1+1') vs ProcessPoolExecutor", "ours_execute", "ppe_eval"),
    ("call('operator:add') vs ProcessPoolExecutor", "ours_call", "ppe_add"),
]


@pytest.fixture(scope="session")
def bench_sidecar(tmp_path_factory):
    proc = SidecarProcess({"pool": {"initial-size": 2, "min-size": 2, "max-size": 2}},
                          workdir=str(tmp_path_factory.mktemp("bench")))
    proc.start()
    yield proc
    proc.stop()


def record(name: str, benchmark) -> None:
    if benchmark.stats is not None:  # None under --benchmark-disable
        FIGURES[name] = benchmark.stats.stats.median


def pytest_terminal_summary(terminalreporter):
    write = terminalreporter.write_line
    if LINES:
        write("")
        for line in LINES:
            write(line)
    if not FIGURES:
        return
    write("")
    write("py3sidecar figures (medians):")
    for name, value in sorted(FIGURES.items()):
        unit = "calls/s" if name.endswith("_per_s") else "us"
        shown = value if unit == "calls/s" else value * 1e6
        write(f"  {name:32s} {shown:12.1f} {unit}")
    for label, ours, peer in RATIOS:
        if ours in FIGURES and peer in FIGURES:
            write(f"  ratio {label}: {FIGURES[ours] / FIGURES[peer]:.2f}x")
    if "ours_per_s" in FIGURES and "ppe2_per_s" in FIGURES:
        write(f"  throughput ratio (2 workers, 8 threads) ours/ProcessPoolExecutor(2): "
              f"{FIGURES['ours_per_s'] / FIGURES['ppe2_per_s']:.2f}x")
