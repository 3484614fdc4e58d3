"""Covers: ignition-scripts/ignition/script-python/python3.

The Jython facade (ignition-scripts/.../python3/code.py) stays short: the exception classes,
then the public API, then only the few private helpers the API shares; the internals live in
py3sidecar.client (gateway scope) and py3sidecar.background (every scope).

The facade is Jython 2.7 source, so it is read with regular expressions, not CPython's ast.
Behaviour is covered by the real-Jython suite in tests/jython.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[2] / "ignition-scripts" / "ignition" / "script-python"
FACADE = LIBRARY / "python3" / "code.py"

PUBLIC = ["execute", "executeFull", "call", "callFull", "executeAsync", "callAsync", "ping",
          "health", "clientStatus", "diagnostics", "selfTest", "close"]
EXCEPTIONS = ["Python3Error", "PythonError", "Timeout", "WorkerCrashed", "Overloaded",
              "CircuitOpen", "Unavailable", "BadRequest", "Unauthorized", "InternalError",
              "Quarantined", "Forbidden", "TypeConversionError"]


TOP = re.compile(r"^(def|class) (\w+)", re.M)


def top_level() -> list[tuple[str, str, int]]:
    """(def|class, name, line) of the facade's top-level statements, in order."""
    text = FACADE.read_text()
    return [(m[1], m[2], text.count("\n", 0, m.start()) + 1) for m in TOP.finditer(text)]


def last_statement(name: str) -> str:
    """The last line of a top-level function's body, stripped."""
    text = FACADE.read_text()
    start = re.search(rf"^def {name}\(", text, re.M)
    assert start, f"python3.{name} is missing"
    end = TOP.search(text, start.end())
    body = text[start.start():end.start() if end else len(text)]
    lines = [line.strip() for line in body.splitlines()
             if line.strip() and not line.startswith("#")]
    return lines[-1]


def test_facade_is_exceptions_then_public_api_then_a_short_private_tail() -> None:
    items = top_level()
    classes = [name for kind, name, _ in items if kind == "class"]
    functions = [name for kind, name, _ in items if kind == "def"]
    assert classes == EXCEPTIONS, "only the exception classes users catch are classes here"
    assert functions[:len(PUBLIC)] == PUBLIC, functions
    private = functions[len(PUBLIC):]
    assert all(name.startswith("_") for name in private), private
    assert len(private) <= 5, f"internals belong in py3sidecar.client/background: {private}"
    last_class = max(line for kind, _, line in items if kind == "class")
    first_function = min(line for kind, _, line in items if kind == "def")
    assert last_class < first_function, "exception classes first, then the functions"
    assert len(FACADE.read_text().splitlines()) <= 290


def test_full_and_plain_variants_share_one_implementation() -> None:
    assert last_statement("execute") == \
        "return _execute(code, variables, timeout, pool).get('value')"
    assert last_statement("executeFull") == \
        "return _full(_execute(code, variables, timeout, pool))"
    assert last_statement("call") == \
        "return _call(target, args, kwargs, timeout, pool).get('value')"
    assert last_statement("callFull") == \
        "return _full(_call(target, args, kwargs, timeout, pool))"


def test_facade_reaches_the_wire_only_through_the_library_modules() -> None:
    code = "\n".join(line for line in FACADE.read_text().splitlines()
                     if not line.lstrip().startswith("#"))
    code = re.sub(r'"""[\s\S]*?"""', "", code)  # docstrings may name what they explain
    for internal in ("py3sidecar.transport", "py3sidecar.zmtp", "py3sidecar.breaker",
                     "py3sidecar.codec", "py3sidecar.datasets", "py3sidecar.decoder",
                     "py3sidecar.valuepath", "getGlobals", "import java"):
        assert internal not in code, f"{internal} belongs in py3sidecar.client"


def test_new_modules_ship_with_their_scope() -> None:
    def scope(module: str) -> str:
        return json.loads((LIBRARY / module / "resource.json").read_text())["scope"]

    assert scope("py3sidecar/client") == "G"       # drives the gateway-only transport
    assert scope("py3sidecar/endpoints") == "G"    # reads the sidecar's files on the gateway
    assert scope("py3sidecar/background") == "A"   # executeAsync in the Designer too
    for part in ("datasets", "decoder", "valuepath", "breaker"):  # the codec's and transport's
        assert scope(f"py3sidecar/{part}") == "G"
    assert scope("python3") == "A"
