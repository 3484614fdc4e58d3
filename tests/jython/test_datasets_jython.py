"""Covers: ignition-scripts/ignition/script-python/py3sidecar/datasets, bridge.dataset,
    bridge.codec.

Datasets and DataFrames between real Jython 2.7 and a real sidecar, column by column, with
the gateway helper jar and without it (the library's pure-Jython codec)."""
from __future__ import annotations

import json

import pytest

from sidecar.testing import SidecarProcess

from . import jvm

pytestmark = pytest.mark.jython

CASES = jvm.JY / "cases_datasets.py"


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory):
    # pandas preloaded: numpy's threads, started by a call, would recycle the worker after it
    proc = SidecarProcess({"pool": {"initial-size": 1, "min-size": 1, "max-size": 1,
                                    "spares": 0},
                           "worker": {"preload": ["pandas"]},
                           "scaling": {"enabled": False}, "health": {"enabled": False}},
                          workdir=str(tmp_path_factory.mktemp("jy_datasets")), py4j_port=0)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module", params=sorted(jvm.LIBRARY_VARIANTS))
def datasets_run(request, sidecar):
    variant = jvm.LIBRARY_VARIANTS[request.param]
    settings = {"CONNECTION_FILE": str(sidecar.connection_file)}
    return jvm.run_cases([CASES], {"PY3_SETTINGS": json.dumps(settings),
                                   "PY3_EXPECT_HELPER": "1" if variant["helper"] else "0"},
                         timeout=180, jars=jvm.gateway_jars(**variant))


@pytest.mark.parametrize("name", jvm.case_names(CASES))
def test_jython_datasets(datasets_run, name):
    jvm.assert_case_passed(datasets_run, "cases_datasets", name)
