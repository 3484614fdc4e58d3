"""Covers: sidecar.supervision.reload.

The reloader's syntax check: a module that compiles passes, one that does not is named by
file and line, a deleted one is left to the worker's import.
"""

from __future__ import annotations

from sidecar.supervision.reload import check_syntax


def test_syntax_is_checked_by_file_and_line(tmp_path):
    good = tmp_path / "good.py"
    good.write_text("def f():\n    return 1\n")
    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\ndef f(:\n")
    assert check_syntax(str(good)) is None
    problem = check_syntax(str(bad))
    assert problem is not None and "bad.py" in problem and ":2" in problem
    assert check_syntax(str(tmp_path / "gone.py")) is None
