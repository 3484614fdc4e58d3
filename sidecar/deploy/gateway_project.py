"""The bundle's two Ignition projects: the script library and the runnable events project.

Owns: building ``py3sidecar`` (the inheritable script library, ``ignition-scripts/ignition``) and
``py3sidecar-gateway`` (its runnable child holding the gateway events: the health-poll timer, the
startup script and the ``py3sidecar`` message handler) as project folders and as the zips the
gateway imports; the 8.3 event resources are made from the same paste-in bodies 8.1 users type
into the Designer (``ignition-scripts/gateway-events``). Must not touch: jars, host files.

Why two projects: an inheritable project is not runnable, so gateway events placed in the library
would run once in *every* child project; on 8.1 all gateway events of a project are one resource,
so a child with an event of its own would lose the message handler. The runnable child runs them
once, and the library stays free of events.

8.3 layouts (third-party measurements, not Inductive Automation's documentation: medium
confidence; see docs/architecture.md "Ignition facts")::

    ignition/timer/<name>/handleTimerEvent.py + resource.json
        (attributes delay, fixedDelay, sharedThread, enabled)
    ignition/message/<name>/handleMessage.py + resource.json
        (enabled, threadType Shared|Dedicated)
    ignition/startup/onStartup.py + resource.json   (a singleton: enabled)

each file holding ``def <event>(<args>):`` and a tab-indented body.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = PROJECT_ROOT / "ignition-scripts"
EVENTS = SCRIPTS / "gateway-events"
LIBRARY_NAME = "py3sidecar"
GATEWAY_PROJECT_NAME = "py3sidecar-gateway"
MODIFIED = {"actor": "py3sidecar", "timestamp": "2025-01-01T00:00:00Z"}

LIBRARY_JSON = {
    "title": "py3sidecar",
    "description": "python3.* script library: call CPython 3 through the py3sidecar service",
    "parent": "",
    "enabled": True,
    "inheritable": True,
}


def gateway_project_json(parent: str = LIBRARY_NAME) -> dict:
    return {"title": "py3sidecar gateway events",
            "description": "runs the py3sidecar gateway events once per gateway: health-poll "
                           "timer, startup ping, the py3sidecar message handler",
            "parent": parent, "enabled": True, "inheritable": False}


# (resource folder, file, function signature, paste-in source, resource attributes)
EVENT_RESOURCES = [
    ("ignition/timer/py3sidecar-healthpoll", "handleTimerEvent.py", "handleTimerEvent()",
     "timer-healthpoll.py",
     {"delay": 10000, "fixedDelay": True, "sharedThread": False, "enabled": True}),
    ("ignition/message/py3sidecar", "handleMessage.py", "handleMessage(payload)",
     "message-handler-py3sidecar.py", {"enabled": True, "threadType": "Shared"}),
    ("ignition/startup", "onStartup.py", "onStartup()", "startup.py", {"enabled": True}),
]


def tab_indented(source: str) -> str:
    """Four-space indentation levels as tabs, as Ignition's event-script files hold them."""
    out = []
    for line in source.splitlines():
        spaces = len(line) - len(line.lstrip(" "))
        # a continuation line keeps its alignment beyond whole levels (inside brackets, it
        # does not count as indentation)
        out.append("\t" * (spaces // 4) + " " * (spaces % 4) + line[spaces:])
    return "\n".join(out)


def event_file(signature: str, body: str) -> str:
    """``def <signature>:`` and the paste-in body, one tab deeper."""
    lines = tab_indented(body).splitlines()
    return f"def {signature}:\n" + "\n".join("\t" + line if line else "" for line in lines) + "\n"


def write_library(project: Path) -> Path:
    """The script library as a project folder (replaced when it exists)."""
    if project.exists():
        shutil.rmtree(project)
    shutil.copytree(SCRIPTS / "ignition", project / "ignition",
                    ignore=shutil.ignore_patterns("*.class", "__pycache__", "*$py.class"))
    (project / "project.json").write_text(json.dumps(LIBRARY_JSON, indent=2) + "\n")
    return project


def write_gateway_project(project: Path, version: str = "8.3",
                          parent: str = LIBRARY_NAME) -> Path:
    """The runnable child project. 8.3: with its event resources; 8.1: project.json only (8.1
    keeps gateway events in a binary resource: they are pasted into the Designer)."""
    if project.exists():
        shutil.rmtree(project)
    project.mkdir(parents=True)
    (project / "project.json").write_text(json.dumps(gateway_project_json(parent), indent=2)
                                          + "\n")
    if version.startswith("8.1"):
        return project
    for folder, name, signature, source, attributes in EVENT_RESOURCES:
        target = project / folder
        target.mkdir(parents=True)
        (target / name).write_text(event_file(signature, (EVENTS / source).read_text()))
        meta = {"scope": "G", "version": 1, "restricted": False, "overridable": True,
                "files": [name], "attributes": {"lastModification": MODIFIED, **attributes}}
        (target / "resource.json").write_text(json.dumps(meta, indent=2) + "\n")
    return project


def zip_project(project: Path, archive: Path) -> Path:
    """The folder as the gateway imports it: project.json at the zip's root."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(project.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(project).as_posix())
    return archive
