"""Values and code for ``py3sidecar exec``/``call`` from the command line, files or stdin.

Owns: turning ``--var NAME=JSON``, ``--var NAME=@file.json``, ``--vars-file FILE.json``,
``exec -`` / ``exec --file F`` and ``call`` arguments (``ARG_JSON``, ``@file.json``,
``--args-file``, ``--kwargs-file``) into Python values, with usage errors that name the flag and
the file. Must not touch: the client or the wire (``sidecar/cli/commands.py`` sends what this
returns).

Files are how large values get in: the OS caps one argument at 128 KiB (``MAX_ARG_STRLEN``), so a
5 MiB value can only come from a file or stdin.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


class UsageError(Exception):
    """A command-line value that cannot be read or parsed; the message names the flag."""


def parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        shown = text if len(text) <= 200 else text[:200] + "..."
        raise UsageError(f"{what} is not valid JSON ({exc.msg} at line {exc.lineno} column "
                         f"{exc.colno}): {shown!r}") from None


def read_text(path: str, what: str) -> str:
    """The text of ``path`` (``-`` is stdin), or a usage error naming ``what``."""
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"{what}: cannot read {path!r} ({reason})") from None


def value(text: str, what: str) -> Any:
    """``JSON`` as it is, or ``@file.json`` read from the file (``@-`` is stdin)."""
    if text.startswith("@"):
        path = text[1:]
        return parse_json(read_text(path, what), f"{what} (from {path})")
    return parse_json(text, what)


def variables(items: list[str] | None, files: list[str] | None) -> dict[str, Any]:
    """``--vars-file`` objects first (in order), then each ``--var`` on top."""
    out: dict[str, Any] = {}
    for path in files or ():
        loaded = parse_json(read_text(path, "--vars-file"), f"--vars-file {path}")
        if not isinstance(loaded, dict) or not all(
                isinstance(k, str) and k.isidentifier() for k in loaded):
            raise UsageError(f"--vars-file {path} must hold a JSON object whose keys are "
                             "Python identifiers, e.g. {\"rows\": [1, 2, 3]}")
        out.update(loaded)
    for item in items or ():
        name, sep, text = item.partition("=")
        if not sep or not name.isidentifier():
            raise UsageError(f"--var expects NAME=JSON or NAME=@file.json, got {item[:200]!r}")
        out[name] = value(text, f"--var {name}")
    return out


def code(positional: str | None, file: str | None) -> str:
    """The code to run: the argument, ``-`` for stdin, or ``--file F``; exactly one of them."""
    if (positional is None) == (file is None):
        raise UsageError("exec needs the code: as an argument, '-' to read it from stdin, "
                         "or --file F (one of them)")
    if file is not None:
        return read_text(file, "--file")
    if positional == "-":
        return read_text("-", "exec -")
    return positional


def call_arguments(args: list[str], args_file: str | None,
                   kwargs_file: str | None) -> tuple[list[Any], dict[str, Any]]:
    """Positional values (each JSON or @file), after the ``--args-file`` list; keyword values."""
    values: list[Any] = []
    if args_file is not None:
        loaded = parse_json(read_text(args_file, "--args-file"), f"--args-file {args_file}")
        if not isinstance(loaded, list):
            raise UsageError(f"--args-file {args_file} must hold a JSON array of arguments")
        values.extend(loaded)
    values.extend(value(a, f"argument {i + 1}") for i, a in enumerate(args))
    kwargs: dict[str, Any] = {}
    if kwargs_file is not None:
        loaded = parse_json(read_text(kwargs_file, "--kwargs-file"),
                            f"--kwargs-file {kwargs_file}")
        if not isinstance(loaded, dict) or not all(isinstance(k, str) for k in loaded):
            raise UsageError(f"--kwargs-file {kwargs_file} must hold a JSON object")
        kwargs = loaded
    return values, kwargs
