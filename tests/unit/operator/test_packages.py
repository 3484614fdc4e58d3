"""Covers: sidecar.operator.packages, sidecar.operator.operations.

The operator console's pure parts: the log ring, sessions, pip's refusals, the pool cards'
member/spare counts, and the packages CLI's option split."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sidecar.operator.operations import ActionError
from sidecar.operator.packages import check_arguments, pool_interpreter


def test_the_sidecars_own_environment_and_a_plain_interpreter_are_refused(tmp_path) -> None:
    with pytest.raises(ActionError, match="sidecar's own environment.*python3.worker.virtualenv"):
        pool_interpreter("primary", [sys.executable])
    plain = tmp_path / "bin" / "python"
    plain.parent.mkdir()
    plain.write_text("")
    with pytest.raises(ActionError, match="not a virtualenv.*python3.pools.ml.worker.virtualenv"):
        pool_interpreter("ml", [str(plain)])
    (tmp_path / "pyvenv.cfg").write_text("home = /usr/bin\n")
    assert pool_interpreter("ml", [str(plain), "-X", "utf8"]) == [str(plain), "-X", "utf8"]
    assert Path(sys.prefix, "pyvenv.cfg").exists()  # the refusal above is the venv check's


@pytest.mark.parametrize("action, args, message", [
    ("freeze", [], "unknown packages action"), ("install", "x", "list of strings"),
    ("install", ["--no-index"], "at least one package"),
    ("download", ["numpy"], "-d DIR")])
def test_pip_arguments_are_checked(action, args, message) -> None:
    with pytest.raises(ActionError, match=message):
        check_arguments(action, args)


def test_download_takes_a_destination() -> None:
    assert check_arguments("download", ["-d", "/w", "numpy"]) == ["-d", "/w", "numpy"]
    assert check_arguments("download", ["--dest=/w", "numpy"])
