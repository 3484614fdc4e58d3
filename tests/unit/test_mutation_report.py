"""Covers: tests/mutation/report.py, tests/mutation/equivalent.py.

The mutation report (``make mutate``) without running mutmut: mutant names become functions,
diffs become the changed lines the equivalents are keyed by, and the report fails a module
under the bar or a survivor nobody explained, counting equivalent ones as not killed.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mutation"))

import report  # noqa: E402
from equivalent import EQUIVALENT  # noqa: E402


def test_mutant_names_become_functions():
    assert report.function_of("sidecar.pool.xǁPoolǁexpire__mutmut_3") == "Pool.expire"
    assert report.function_of("bridge.preauth.x_skip_values__mutmut_12") == "skip_values"


def test_a_diff_becomes_its_changed_lines():
    diff = ("--- a.py\n+++ a.py\n@@ -1,3 +1,3 @@\n def f():\n-    return  1\n+    return 2\n")
    assert report.changed_lines(diff) == "- return 1 | + return 2"


def mutant(status: str, change: str = "- a | + b", module: str = "m.py") -> report.Mutant:
    return report.Mutant(module, "m.x_f__mutmut_1", "f", status, change)


def test_the_bar_is_per_module_and_equivalents_count_as_not_killed(monkeypatch):
    monkeypatch.setattr(report, "EQUIVALENT", {("m.py", "f", "- a | + b"): "why"})
    nine_of_ten = [mutant("killed")] * 9 + [mutant("survived")]
    text, ok = report.render(nine_of_ten, None, "", 90.0)
    assert ok and "| m.py | 10 | 9 | 1 | 0 | 1 | 90.0 |" in text and "— why" in text
    text, ok = report.render(nine_of_ten, None, "", 95.0)
    assert not ok


def test_an_unexplained_survivor_fails_the_report(monkeypatch):
    monkeypatch.setattr(report, "EQUIVALENT", {})
    text, ok = report.render([mutant("killed")] * 99 + [mutant("no tests", "- c | + d")], 60.0,
                             "2 cores", 90.0)
    assert not ok and "## Survivors not yet accounted for" in text
    assert "`m.py` `f` (no tests): `- c | + d`" in text
    assert "Last run: 1.0 minutes for `make mutate` (2 cores)." in text


def test_every_equivalent_names_an_existing_module_and_a_reason():
    root = Path(__file__).resolve().parents[2]
    for (module, function, change), why in EQUIVALENT.items():
        assert (root / module).is_file(), module
        assert function and change.startswith("- "), (module, function, change)
        assert len(why) > 20, (module, function)
