"""Covers: sidecar.cli.ops.

The packages CLI takes its own options out of pip's."""

from __future__ import annotations

import argparse

from sidecar.cli.ops import split_own_options


def test_the_cli_takes_its_options_out_of_pips() -> None:
    args = argparse.Namespace(pip_args=["--pool", "ml", "--no-index", "--find-links", "/w",
                                        "--timeout=30", "x", "--json"],
                              pool=None, url=None, token=None, timeout=600.0, json=False)
    split_own_options(args)
    assert args.pool == "ml" and args.timeout == 30.0 and args.json
    assert args.pip_args == ["--no-index", "--find-links", "/w", "x"]
