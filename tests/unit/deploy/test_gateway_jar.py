"""Covers: sidecar.deploy.gateway_jar.

The helper jar compiles against Jython and msgpack-core; a missing jar is named with the
packages that provide it.
"""

from __future__ import annotations

import pytest

from sidecar.deploy import gateway_jar


def test_missing_jars_are_named(tmp_path):
    with pytest.raises(gateway_jar.BuildError, match="jython.jar.*msgpack-core.jar"):
        gateway_jar.compile_classpath(tmp_path)


def test_present_jars_are_the_classpath(tmp_path):
    for name in ("jython.jar", "msgpack-core.jar"):
        (tmp_path / name).write_bytes(b"")
    assert gateway_jar.compile_classpath(tmp_path) == [tmp_path / "jython.jar",
                                                       tmp_path / "msgpack-core.jar"]
