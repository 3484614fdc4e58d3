"""Covers: sidecar.

The house by concern: sidecar/ in sub-packages of at most 12 modules each.

A new module goes into the package of its concern (docs/architecture.md, "Layout"); a package
that outgrows 12 modules is split by concern, not allowed to sprawl.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SIDECAR = ROOT / "sidecar"
MAX_MODULES = 12


def modules(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.py") if p.name != "__init__.py")


def packages() -> list[Path]:
    return sorted(p.parent for p in SIDECAR.rglob("__init__.py") if p.parent != SIDECAR)


def test_the_top_holds_few_modules() -> None:
    top = [m for m in modules(SIDECAR) if m != "__main__.py"]
    assert len(top) <= MAX_MODULES, top


@pytest.mark.parametrize("package", packages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_each_package_holds_at_most_twelve_modules(package: Path) -> None:
    assert len(modules(package)) <= MAX_MODULES, modules(package)


def test_each_package_says_what_it_owns() -> None:
    silent = [str(p.relative_to(ROOT)) for p in packages()
              if not (p / "__init__.py").read_text().startswith('"""')]
    assert not silent, f"packages without a header: {silent}"
