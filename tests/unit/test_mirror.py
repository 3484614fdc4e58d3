"""Covers: tests/unit, sidecar, bridge.

Unit tests mirror the packages: a product module ``sidecar/<package>/<module>.py`` has its unit
tests in ``tests/unit/<package>/test_<module>.py``, ``bridge/<module>.py`` in
``tests/unit/bridge/``, and sidecar's top modules (``sidecar/loop.py``) in
``tests/unit/sidecar/``; so a newcomer finds a module's tests without searching. At least 80% of
the product's modules have their mirror; a file in a mirror folder is named after a module (or a
data file) of that package and names that module first in its ``Covers:`` head. Whole-project
checks (sizes, layers, heads) stay at ``tests/unit/``'s top; integration tests stay named by
behaviour.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "tests" / "unit"
MINIMUM_SHARE = 0.80
NOT_MODULES = {"__init__.py", "__main__.py"}


def product_modules() -> list[Path]:
    found = [p for top in ("sidecar", "bridge") for p in (ROOT / top).rglob("*.py")
             if p.name not in NOT_MODULES]
    return sorted(found)


def mirror_folder(package: Path) -> Path:
    """``sidecar/pool`` -> tests/unit/pool; ``sidecar`` -> tests/unit/sidecar; ``bridge`` ->
    tests/unit/bridge."""
    rel = package.relative_to(ROOT)
    return UNIT / (rel.parts[-1] if len(rel.parts) > 1 else rel.parts[0])


def mirror_of(module: Path) -> Path:
    return mirror_folder(module.parent) / f"test_{module.stem}.py"


def dotted(module: Path) -> str:
    return ".".join(module.relative_to(ROOT).with_suffix("").parts)


def package_of_folder(folder: Path) -> Path:
    name = folder.name
    if name in ("sidecar", "bridge"):
        return ROOT / name
    return ROOT / "sidecar" / name


def test_the_product_modules_are_found():
    modules = product_modules()
    assert len(modules) > 90
    assert ROOT / "sidecar" / "pool" / "local.py" in modules
    assert mirror_of(ROOT / "sidecar" / "pool" / "local.py") == UNIT / "pool" / "test_local.py"
    assert mirror_of(ROOT / "sidecar" / "loop.py") == UNIT / "sidecar" / "test_loop.py"
    assert mirror_of(ROOT / "bridge" / "codec.py") == UNIT / "bridge" / "test_codec.py"


def test_at_least_80_percent_of_the_product_modules_have_a_mirrored_test():
    modules = product_modules()
    without = [str(m.relative_to(ROOT)) for m in modules if not mirror_of(m).is_file()]
    share = 1 - len(without) / len(modules)
    assert share >= MINIMUM_SHARE, (
        f"{share:.0%} of {len(modules)} product modules have tests/unit/<package>/test_<module>.py"
        f" (at least {MINIMUM_SHARE:.0%} must): add one for some of {without}")


MIRROR_FILES = sorted(p for p in UNIT.glob("*/test_*.py"))


@pytest.mark.parametrize("path", MIRROR_FILES, ids=lambda p: str(p.relative_to(UNIT)))
def test_a_mirror_file_is_named_after_a_file_of_its_package_and_covers_it(path):
    package = package_of_folder(path.parent)
    stem = path.stem[len("test_"):]
    named = [p for p in package.iterdir() if p.is_file() and p.name.split(".")[0] == stem]
    assert package.is_dir() and named, (
        f"{path.relative_to(ROOT)}: tests/unit/<package>/ holds test_<module>.py for a module "
        f"(or data file) of {package.relative_to(ROOT)}/; move it to the package it tests")
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    head = " ".join(doc.split("\n\n", 1)[0].split())
    expected = {dotted(p) if p.suffix == ".py" else str(p.relative_to(ROOT)) for p in named}
    first = head[len("Covers: "):].split(",")[0].strip().rstrip(".")
    assert head.startswith("Covers: ") and first in expected, (
        f"{path.relative_to(ROOT)}: its docstring starts 'Covers: {sorted(expected)[0]}, ...'")
