"""Covers: pyproject.toml.

The import-linter layer contract (pyproject.toml [tool.importlinter]) holds and can break.

The second test copies the packages, adds one forbidden import per contract and checks that
``lint-imports`` names it: a contract that cannot fail (a typo, a dropped config section after a
merge) would otherwise pass silently.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")

# (file, import added after `from __future__ import annotations`, text the report must contain)
FORBIDDEN = [
    ("bridge/client.py", "import sidecar.routing.chain", "bridge.client -> sidecar.routing.chain"),
    ("bridge/client.py", "import bridge.zmq_server", "bridge.client -> bridge.zmq_server"),
    ("sidecar/supervision/score.py", "import subprocess",
     "sidecar.supervision.score -> subprocess"),
    ("sidecar/supervision/health.py", "import sidecar.pool.local",
     "sidecar.supervision.health -> sidecar.pool.local"),
    ("sidecar/service.py", "import sidecar.cli.commands",
     "sidecar.service -> sidecar.cli.commands"),
    # one per package boundary
    ("sidecar/worker/isolation.py", "import sidecar.pool.local",
     "sidecar.worker.isolation -> sidecar.pool.local"),
    ("sidecar/http/server.py", "import sidecar.process.spawn",
     "sidecar.http.server -> sidecar.process.spawn"),
    ("sidecar/platform/memtune.py", "import sidecar.config.model",
     "sidecar.platform.memtune -> sidecar.config.model"),
    ("sidecar/install/rest.py", "import sidecar.service",
     "sidecar.install.rest -> sidecar.service"),
    ("sidecar/supervision/scaling.py", "import sidecar.routing.chain",
     "sidecar.supervision.scaling -> sidecar.routing.chain"),
    ("sidecar/observability/views.py", "import sidecar.supervision.recovery",
     "sidecar.observability.views -> sidecar.supervision.recovery"),
    ("sidecar/process/spawn.py", "import fcntl", "sidecar.process.spawn -> fcntl"),
    ("sidecar/worker/main.py", "import resource", "sidecar.worker.main -> resource"),
    ("sidecar/loop.py", "import ctypes", "sidecar.loop -> ctypes"),
]


def lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    # cwd comes first on lint-imports' path, so a copy is analysed instead of the install.
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def test_the_tree_keeps_every_contract() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("path, line, expected", FORBIDDEN, ids=[f[1] for f in FORBIDDEN])
def test_a_forbidden_import_breaks_the_contract(tmp_path: Path, path: str, line: str,
                                                expected: str) -> None:
    for package in ("bridge", "sidecar"):
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    target = tmp_path / path
    marker = "from __future__ import annotations\n"
    source = target.read_text()
    assert marker in source, f"{path} has no {marker!r} line to add the import after"
    target.write_text(source.replace(marker, marker + line + "\n", 1))

    result = lint(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout
    assert expected in result.stdout, result.stdout
