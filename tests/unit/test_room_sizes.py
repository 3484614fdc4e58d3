"""Covers: bridge, sidecar, benchmarks, ignition-scripts.

The size of every room (bridge/, sidecar/, benchmarks/, ignition-scripts/): no
product module over 500 lines and no function over 60 anywhere, the loop's ``run`` aside;
``sidecar/pool/local.py`` under 450 lines. A big class is split by composition, so classes have no
cap of their own: the module's is what keeps a room walkable.

CPython files are measured with ``ast``; the Jython 2.7 files (the Ignition library, the Jython
test cases) do not parse as Python 3, so they are measured by indentation: a ``def``/``class``
runs until the next line indented at or left of it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TREES = ("bridge", "sidecar", "benchmarks", "tests", "ignition-scripts")
MAX_FUNCTION, MAX_MODULE, MAX_POOL = 60, 500, 450
PRODUCT = ("bridge", "sidecar", "benchmarks", "ignition-scripts")
EXEMPT = {("sidecar/loop.py", "run")}  # the event loop's one dispatch loop, kept whole on purpose
_BLOCK = re.compile(r"^(\s*)(def|class)\s+(\w+)")


def python_files() -> list[Path]:
    files = []
    for tree in TREES:
        files += [p for p in (ROOT / tree).rglob("*.py") if ".venv" not in p.parts]
    return sorted(files)


def blocks_by_ast(tree: ast.AST) -> list[tuple[str, str, int, int]]:
    return [("class" if isinstance(n, ast.ClassDef) else "def", n.name, n.lineno,
             n.end_lineno - n.lineno + 1)
            for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def blocks_by_indent(lines: list[str]) -> list[tuple[str, str, int, int]]:
    found = []
    for i, line in enumerate(lines):
        match = _BLOCK.match(line)
        if not match:
            continue
        indent, end = len(match.group(1)), i
        for j in range(i + 1, len(lines)):
            text = lines[j]
            if not text.strip() or text.lstrip().startswith("#"):
                continue
            if len(text) - len(text.lstrip()) <= indent:
                break
            end = j
        found.append((match.group(2), match.group(3), i + 1, end - i + 1))
    return found


def blocks(path: Path) -> list[tuple[str, str, int, int]]:
    text = path.read_text()
    try:
        return blocks_by_ast(ast.parse(text))
    except SyntaxError:  # Jython 2.7
        return blocks_by_indent(text.splitlines())


def test_the_indentation_measure_agrees_with_ast_on_cpython_code() -> None:
    path = ROOT / "sidecar" / "pool" / "local.py"
    text = path.read_text()
    by_ast = {(k, n, start): size for k, n, start, size in blocks_by_ast(ast.parse(text))}
    by_indent = {(k, n, start): size for k, n, start, size in blocks_by_indent(text.splitlines())}
    assert by_ast and set(by_ast) == set(by_indent)
    assert all(abs(by_ast[key] - by_indent[key]) <= 1 for key in by_ast)


def test_a_long_function_is_found() -> None:
    lines = ["def long():"] + ["    x = 1"] * 70 + ["", "def short():", "    pass"]
    sizes = {name: size for _, name, _, size in blocks_by_indent(lines)}
    assert sizes == {"long": 71, "short": 2}


@pytest.mark.parametrize("path", python_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_function_over_60_lines_and_no_product_module_over_500(path: Path) -> None:
    rel = str(path.relative_to(ROOT))
    over = [f"{kind} {name} (line {start}): {size} lines"
            for kind, name, start, size in blocks(path)
            if (rel, name) not in EXEMPT and kind == "def" and size > MAX_FUNCTION]
    lines = len(path.read_text().splitlines())
    if rel.split("/")[0] in PRODUCT and lines > MAX_MODULE:
        over.append(f"the module has {lines} lines (at most {MAX_MODULE}: split it by concern)")
    assert not over, f"{rel}: " + "; ".join(over)


def test_the_pool_room_stays_small() -> None:
    lines = len((ROOT / "sidecar" / "pool" / "local.py").read_text().splitlines())
    assert lines < MAX_POOL, f"sidecar/pool/local.py has {lines} lines"
