"""The gateway helper jar: ``javac`` over ``ignition-scripts/java`` into ``py3sidecar-gateway.jar``.

Owns: compiling the Java sources of the Jython library's helper (``com.py3sidecar.gateway``:
the hot codec work, see ``ignition-scripts/java/``) with the JDK's ``javac --release 11`` (the
bytecode Ignition 8.1's Java 11 loads) against the jars the gateway has anyway (Jython,
msgpack-core), and packing them into one jar, rebuilt only when a source is newer than it.
Also compiles the Jython tests' Java test doubles the same way (``compile_jar``). Must not
touch: the bundle's layout (``sidecar.deploy.bundle`` copies the jar), the library's behaviour (the
jar is optional: without it the library runs its pure-Jython codec).

    python -m sidecar.deploy.gateway_jar [OUT]     # default build/py3sidecar-gateway.jar
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SOURCES = PROJECT_ROOT / "ignition-scripts" / "java"
DEFAULT_JAR = PROJECT_ROOT / "build" / "py3sidecar-gateway.jar"
JAR_NAME = "py3sidecar-gateway.jar"
JAVA_DIR = Path("/usr/share/java")
JAVA_RELEASE = "11"  # Ignition 8.1 runs Java 11; 8.3 runs 17 and loads 11's bytecode too


class BuildError(RuntimeError):
    """The jar could not be built; the message says what is missing."""


def compile_classpath(java_dir: Path = JAVA_DIR) -> list[Path]:
    """What the helper compiles against: Jython and msgpack-core (both on every gateway)."""
    jars = [java_dir / "jython.jar", java_dir / "msgpack-core.jar"]
    missing = [str(j) for j in jars if not j.exists()]
    if missing:
        raise BuildError(f"cannot build {JAR_NAME}: missing {', '.join(missing)} (Debian jython "
                         "libmsgpack-java: `make system-deps`)")
    return jars


def compile_jar(sources: Path, out: Path, classpath: list[Path]) -> Path:
    """``javac`` every ``.java`` under ``sources`` into the jar ``out`` (written atomically);
    skipped when ``out`` is newer than every source."""
    files = sorted(sources.rglob("*.java"))
    if not files:
        raise BuildError(f"no Java sources under {sources}")
    if out.exists() and out.stat().st_mtime >= max(f.stat().st_mtime for f in files):
        return out
    javac, jar = shutil.which("javac"), shutil.which("jar")
    if not javac or not jar:
        raise BuildError(f"cannot build {out.name}: the JDK's javac and jar are not installed "
                         "(Debian default-jdk-headless: `make system-deps`)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="py3sidecar-javac-") as tmp:
        classes = Path(tmp) / "classes"
        classes.mkdir()
        cmd = [javac, "--release", JAVA_RELEASE, "-encoding", "UTF-8", "-nowarn",
               "-cp", os.pathsep.join(map(str, classpath)), "-d", str(classes), *map(str, files)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise BuildError(f"javac failed for {sources}:\n{done.stderr[-4000:]}")
        staged = Path(tmp) / out.name
        done = subprocess.run([jar, "--create", "--file", str(staged), "-C", str(classes), "."],
                              capture_output=True, text=True)
        if done.returncode:
            raise BuildError(f"jar failed for {out.name}:\n{done.stderr[-4000:]}")
        os.replace(shutil.copy2(staged, out.with_suffix(".jar.tmp")), out)  # atomic for readers
    return out


def ensure_jar(out: Path = DEFAULT_JAR, java_dir: Path = JAVA_DIR) -> Path:
    """The helper jar, built first when it is missing or older than its sources."""
    return compile_jar(SOURCES, out, compile_classpath(java_dir))


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else DEFAULT_JAR
    try:
        print(ensure_jar(out.resolve()))
    except BuildError as exc:
        print(f"py3sidecar: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
