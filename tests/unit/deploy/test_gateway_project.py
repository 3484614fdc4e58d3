"""Covers: sidecar.deploy.gateway_project.

The gateway project's descriptor: it inherits from the script library the bundle ships and is
enabled.
"""

from __future__ import annotations

from sidecar.deploy import gateway_project


def test_the_gateway_project_inherits_the_library():
    project = gateway_project.gateway_project_json()
    assert project["parent"] == gateway_project.LIBRARY_NAME and project["enabled"] is True
    assert gateway_project.gateway_project_json("other")["parent"] == "other"
    assert gateway_project.LIBRARY_JSON["title"]
