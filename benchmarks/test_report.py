"""Covers: benchmarks.report, benchmarks.report_rows.

CI smoke of benchmarks/report.py (`make bench`'s table): the shortest run prints every row
the table promises and writes a CSV that parses, with a ratio wherever both sides were
measured. No time is asserted; a part that cannot run here (no java) leaves its rows marked
"not measured", which this smoke tolerates only for that reason."""

import csv
import shutil

from benchmarks import report


def test_short_report_has_every_row_and_a_csv(tmp_path, capsys):
    status = report.main(["--short", "--out-dir", str(tmp_path)])
    printed = capsys.readouterr().out
    assert status == 0, printed[-4000:]
    with (tmp_path / "report.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    by_figure = {(r["section"], r["figure"]): r for r in rows}
    for section, figure in report.expected_figures(short=True):
        assert (section, figure) in by_figure, f"no row {section}: {figure}"
        assert f"| {section} | {figure} |" in printed
    for row in rows:  # wherever both sides were measured, the ratio is theirs
        if row["ours"] and row["peer"]:
            assert float(row["ratio"]) == float(row["ours"]) / float(row["peer"]) > 0, row
    always_measured = {"latency", "throughput", "recovery"} | ({"jython"} if shutil.which("java")
                                                             else set())
    for section, figure in report.expected_figures(short=True):
        row = by_figure[(section, figure)]
        if section in always_measured and "zmq" not in figure:  # --short: Jython over Py4J only
            assert row["ours"], row
    goals = [r for r in rows if r["section"] == "goals"]
    assert len(goals) == len(report.GOALS)
    assert {r["met"] for r in goals} <= {"yes", "NO", "not measured"}
    assert (tmp_path / "report.png").stat().st_size > 0
