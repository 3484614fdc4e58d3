"""The Jython side of the before/after figures: TREE's Ignition library in a JVM of its own,
calling TREE's sidecar, round by round with this tree's JVM (``cpu_per_call.py --before``).

The JVM runs this tree's ``benchmarks/jy/bench_cpu.py`` with TREE's library
(``ignition-scripts/ignition/script-python``), TREE's harness (``tests/jython/jy``) and the jars
TREE's own ``tests/jython/jvm.py`` and gateway-jar builder make (into the before sidecar's
folder, so TREE itself is only read). When any of that fails (another layout, a library that
does not load), the reason is printed and the Jython before column is left out.

The two JVMs go in lockstep: this tree's round 1 (its warm-up first), then TREE's JVM starts,
warms up and does its round 1, then round 2 of each, and so on. Between its rounds a JVM waits,
idle, for its next GO. TREE's figures are stored with a ``before_`` prefix; each JVM's
``py4j_echo_thread`` (the same echo server) is its own floor.

Owns: that lockstep and the classpath of TREE. Must not touch: the library, this tree's
Jython figures (their names and meaning stay cpu_per_call's).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

# Run with PYTHONPATH=TREE, cwd=TREE: argv[1] the folder the jars go to. 9f4ee9f's layout.
CLASSPATH = r"""
import sys
from pathlib import Path
from tests.jython import jvm
from sidecar import gateway_jar
out = Path(sys.argv[1])
jars = [jvm.JAVA_DIR / "jython.jar", jvm.JAVA_DIR / "msgpack-core.jar",
        jvm.JAVA_DIR / "jeromq.jar", jvm.py4j_jar(),
        gateway_jar.compile_jar(jvm.DOUBLES, out / "ignition-test-doubles.jar", []),
        gateway_jar.ensure_jar(out / "py3sidecar-gateway.jar")]
print(":".join(map(str, jars)))
"""


def tree_jvm(tree: str, out: Path) -> tuple[str, str, str] | str:
    """(library, harness, classpath) of TREE, or why not."""
    root = Path(tree).resolve()
    library = root / "ignition-scripts" / "ignition" / "script-python"
    harness = root / "tests" / "jython" / "jy"
    if not library.is_dir() or not (harness / "harness.py").is_file():
        return f"{tree} has no ignition-scripts/ignition/script-python or tests/jython/jy"
    done = subprocess.run([sys.executable, "-c", CLASSPATH, str(out)], cwd=str(root),
                          env=dict(os.environ, PYTHONPATH=str(root)), capture_output=True,
                          text=True, timeout=300)
    if done.returncode != 0:
        return f"its jars could not be built: {done.stderr.strip()[-500:]}"
    return str(library), str(harness), done.stdout.strip()


def jython_rounds(after: Any, pair: Any, echo_port: int, calls: int,
                  transports: tuple[str, ...]) -> list[dict[str, float]]:
    """This tree's JVM rounds (``after``, a JythonRun), with TREE's figures merged in when
    ``pair`` (a cpu_before_after.BeforeAfter) is given and TREE's JVM runs cleanly."""
    from benchmarks.cpu_per_call import JythonRun

    if pair is None:
        return after.rounds()
    ours = after.iter_rounds()
    out: list[dict[str, float]] = []
    first = next(ours)  # this JVM's warm-up and round 1 before TREE's JVM starts
    sidecar = pair.sidecars["before"]
    jvm = tree_jvm(pair.tree, sidecar.workdir)
    theirs = None
    if isinstance(jvm, str):
        print(f"before/after: no Jython before figure: {jvm}")
    else:
        theirs = JythonRun(sidecar, echo_port, calls, transports, tree=jvm).iter_rounds()
    for figures in itertools.chain([first], ours):  # lazily: one round of each in turn
        out.append(figures)
        if theirs is None:
            continue
        try:
            figures.update({f"before_{k}": v for k, v in next(theirs).items()})
        except (RuntimeError, StopIteration) as error:
            print(f"before/after: the Jython before run stopped: {str(error)[:1500]}")
            theirs = None
    if theirs is not None:
        for _ in theirs:  # to its DONE: the JVM closes and exits
            pass
    return out
