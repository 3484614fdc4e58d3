"""The ``py3sidecar`` command: serve, and talk to a running sidecar from a shell.

Owns: arguments, output, exit codes (``sidecar.cli.commands``). Must not touch: the pool or the
wire format. ``main`` here keeps the entry point ``sidecar.cli.commands:main`` of installed scripts.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> None:
    from sidecar.cli.commands import main as run

    run(argv)
