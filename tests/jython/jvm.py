"""Starting real Jython 2.7 with the gateway's jars (CPython side of the Jython harness).

The Jython sources (Python 2 syntax) live in ``jy/``: the batch runner, the loader, the test
double of ``system.*`` and the case files. ``run_cases`` runs many case files in ONE JVM (Jython
starts in about a second) and turns its ``CASE`` lines into results. A case can ask the CPython
side to act on the world (stop a sidecar, force its breaker open) by printing a ``CTL <json>``
line and reading the answer on stdin: see ``jy/harness.py``.
"""
from __future__ import annotations

import json
import os
import re
import selectors
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
JY = HERE / "jy"
REPO = HERE.parent.parent
LIBRARY = REPO / "ignition-scripts" / "ignition" / "script-python"
JAVA_DIR = Path("/usr/share/java")


def py4j_jar() -> str:
    from py4j.java_gateway import find_jar_path

    path = find_jar_path()
    if not path:
        raise RuntimeError("the py4j jar (share/py4j/py4j*.jar of the py4j wheel) was not found")
    return path


DOUBLES = HERE / "java"  # Java test doubles of Ignition's classes (BasicDataset)
DOUBLES_JAR = REPO / "build" / "ignition-test-doubles.jar"


def helper_jar() -> str:
    """The bundle's gateway helper jar (com.py3sidecar.gateway), built when stale."""
    from sidecar.deploy import gateway_jar

    return str(gateway_jar.ensure_jar())


def doubles_jar() -> str:
    """The TEST DOUBLE of Ignition's BasicDataset, compiled for these tests only."""
    from sidecar.deploy import gateway_jar

    return str(gateway_jar.compile_jar(DOUBLES, DOUBLES_JAR, []))


def gateway_jars(helper: bool = True, basic_dataset: bool = True) -> list[str]:
    """What the bundle puts on a gateway (msgpack-core, JeroMQ, py4j, and the helper jar unless
    ``helper`` is False), plus the test double of Ignition's BasicDataset (``basic_dataset``)."""
    jars = [str(JAVA_DIR / "msgpack-core.jar"), str(JAVA_DIR / "jeromq.jar"), py4j_jar()]
    if basic_dataset:
        jars.append(doubles_jar())
    return [*jars, helper_jar()] if helper else jars


# The two ways the library runs: with the helper jar, and without it (pure Jython; no
# BasicDataset either, so Datasets are built by the system.dataset double, as before).
LIBRARY_VARIANTS = {"helper": {"helper": True, "basic_dataset": True},
                    "no_helper": {"helper": False, "basic_dataset": False}}


def classpath(jars: list[str] | None = None) -> str:
    """jython.jar plus the gateway's jars (default: ``gateway_jars()``, the helper included)."""
    if jars is None:
        jars = gateway_jars()
    jars = [str(JAVA_DIR / "jython.jar"), *jars]
    missing = [j for j in jars if not Path(j).exists()]
    if missing:
        raise RuntimeError(f"missing {', '.join(missing)}: run `make system-deps` (Debian "
                           "jython libmsgpack-java libjeromq-java)")
    return os.pathsep.join(jars)


def jython_command(script: str, *args: str, jars: list[str] | None = None) -> list[str]:
    # Debian's /usr/bin/jython runs `java -jar`, which ignores the class path: call the main class.
    return ["java", "-Xss2m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp",
            classpath(jars), "-Dpython.cachedir.skip=true", "-Dpython.console.encoding=UTF-8",
            "org.python.util.jython", script, *args]


CASE_LINE = re.compile(r"^CASE (\S+)::(\S+) (PASS|FAIL)(?: (.*))?$")


def case_names(case_file: Path) -> list[str]:
    """The `test_*` functions of a Jython case file (Python 2 syntax: a regex, not ast)."""
    return re.findall(r"^def (test_\w+)\(", case_file.read_text(), re.M)


Control = Callable[[dict[str, Any]], Any]


def serve_control(control: Control | None, request: str) -> dict[str, Any]:
    """The answer to one ``CTL`` line of a case (JSON both ways)."""
    try:
        return {"ok": True, "value": control(json.loads(request)) if control else None}
    except Exception as exc:  # reported to the case, which fails with it
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def run_cases(case_files: list[Path], env: dict[str, str], timeout: float,
              control: Control | None = None, library: Path | None = None,
              jars: list[str] | None = None,
              prefix: list[str] | None = None) -> dict[str, tuple[str, Any]]:
    """Runs the case files in ONE JVM; returns {"file::name": (PASS|FAIL, detail)}.

    ``control(request) -> answer`` serves the cases' ``CTL`` requests (JSON both ways).
    The whole run has a deadline of ``timeout`` seconds. ``prefix``: what the JVM's command
    is run through (e.g. ``setpriv`` to run it as another account).
    """
    full_env = dict(os.environ, PY3_LIBRARY_DIR=str(library or LIBRARY), **env)
    proc = subprocess.Popen(
        [*(prefix or []),
         *jython_command(str(JY / "run_cases.py"), *map(str, case_files), jars=jars)],
        cwd=str(JY), env=full_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, bufsize=1)
    out_lines: list[str] = []
    err_chunks: list[str] = []
    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "out")
    sel.register(proc.stderr, selectors.EVENT_READ, "err")
    open_streams = 2
    try:
        while open_streams:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            for key, _ in sel.select(left):
                line = key.fileobj.readline()
                if not line:
                    sel.unregister(key.fileobj)
                    open_streams -= 1
                    continue
                if key.data == "err":
                    err_chunks.append(line)
                    continue
                out_lines.append(line.rstrip("\n"))
                if line.startswith("CTL "):
                    proc.stdin.write(json.dumps(serve_control(control, line[4:])) + "\n")
                    proc.stdin.flush()
        proc.wait(max(1.0, deadline - time.monotonic()))
    except (TimeoutError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait(10)
        out_lines.append(f"<killed after the {timeout:g}s deadline>")
    finally:
        sel.close()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            stream.close()
    return parse_results(out_lines, err_chunks, proc.returncode)


def parse_results(out_lines: list[str], err_chunks: list[str],
                  returncode: int | None) -> dict[str, tuple[str, Any]]:
    results: dict[str, tuple[str, Any]] = {}
    for line in out_lines:
        m = CASE_LINE.match(line)
        if m:
            detail: Any = m.group(4) or ""
            if m.group(3) == "FAIL":
                detail = json.loads(detail)
            results[f"{m.group(1)}::{m.group(2)}"] = (m.group(3), detail)
    if "DONE" not in out_lines:
        stdout, stderr = "\n".join(out_lines)[-4000:], "".join(err_chunks)[-4000:]
        results["<run>"] = ("FAIL", f"Jython did not finish (exit {returncode})\n"
                                    f"stdout:\n{stdout}\nstderr:\n{stderr}")
    return results


def assert_case_passed(results: dict[str, Any], module: str, name: str) -> None:
    """Fail with the JVM's own words unless case ``module::name`` ran and passed (and the run,
    the module's load, setup and teardown did not fail)."""
    assert "<run>" not in results, results["<run>"][1]
    for stage in ("<load>", "<setup>", "<teardown>"):
        key = f"{module}::{stage}"
        assert key not in results, results[key][1]
    status, detail = results.get(f"{module}::{name}", ("MISSING", "case did not run"))
    assert status == "PASS", detail
