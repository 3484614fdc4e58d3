"""Covers: tests, benchmarks.

Every test module says first what it exercises: its docstring starts with ``Covers:`` and the
product modules (``sidecar.pool``), folders or files (``ignition-scripts/...``) it covers, each
of which exists; so ``grep -rl "Covers:.*sidecar.pool" tests benchmarks`` finds a module's tests.
And no test names an issue number in place of the behaviour it guards. (tests/unit/test_mirror.py
checks something else: that a file of a mirror folder is named after a module of its package and
names that module first.)
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEST_MODULES = sorted(
    [p for p in (ROOT / "tests").rglob("test_*.py") if "jy" not in p.relative_to(ROOT).parts]
    + list((ROOT / "benchmarks").glob("test_*.py")))
ISSUE_NUMBER = re.compile(r"\bissue \d+", re.I)


def covered_entries(docstring: str) -> list[str]:
    """The entries of the ``Covers:`` paragraph (up to the first blank line), in order."""
    clause = docstring.split("\n\n", 1)[0][len("Covers:"):]
    return [entry.strip() for entry in " ".join(clause.split()).rstrip(".").split(",")]


def exists(entry: str) -> bool:
    """A dotted module (``sidecar.pool``, a package ``sidecar``) or a path from the root."""
    as_module = ROOT / entry.replace(".", "/")
    return ((ROOT / entry).exists() or as_module.with_suffix(".py").is_file()
            or (as_module / "__init__.py").is_file() or as_module.is_dir())


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_test_modules_are_found():
    assert len(TEST_MODULES) > 80
    assert ROOT / "tests/unit/test_covers_heads.py" in TEST_MODULES


@pytest.mark.parametrize("path", TEST_MODULES, ids=rel)
def test_docstring_starts_with_covers_naming_existing_modules(path):
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")), clean=False)
    assert doc and doc.startswith("Covers: "), (
        f"{rel(path)}: start the module docstring with 'Covers: <the product modules it "
        "exercises>.' (e.g. 'Covers: sidecar.pool, sidecar.call.')")
    entries = covered_entries(doc)
    missing = [entry for entry in entries if not entry or not exists(entry)]
    assert not missing, f"{rel(path)}: Covers: names what does not exist: {missing}"


@pytest.mark.parametrize("path", TEST_MODULES, ids=rel)
def test_no_test_names_an_issue_number_instead_of_a_behaviour(path):
    hits = [f"{rel(path)}:{n}: {line.strip()}"
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if ISSUE_NUMBER.search(line)]
    assert not hits, "name the behaviour, not the issue: " + "; ".join(hits)


@pytest.mark.parametrize(("docstring", "ok"), [
    ("Covers: sidecar.pool, bridge.token.\n\nText.", True),
    ("Covers: sidecar.pool,\n    sidecar/config/default.yml.", True),
    ("Covers: sidecar.no_such_module.", False),
    ("Covers: sidecar.pool, .", False),
])
def test_the_check_itself_tells_real_entries_from_made_up_ones(docstring, ok):
    assert all(entry and exists(entry) for entry in covered_entries(docstring)) is ok
