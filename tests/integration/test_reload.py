"""Covers: sidecar.supervision.reload, sidecar.pool.lifecycle.

Reload on edit: a saved module under worker.paths renews the workers while calls run."""

import threading
import time

from bridge.protocol import SidecarError
from sidecar.testing import SidecarProcess, wait_until


def write_module(path, version, body=None):
    # the way an editor saves: a new file renamed over the old one
    tmp = path.with_suffix(".tmp")
    tmp.write_text(body if body is not None else
                   f"import os\nVERSION = {version}\n"
                   "def version():\n    return VERSION, os.getpid()\n")
    tmp.replace(path)


def scripts_with_module(tmp_path):
    """A worker.paths folder holding editmod.py at version 1."""
    folder = tmp_path / "scripts"
    folder.mkdir()
    module = folder / "editmod.py"
    write_module(module, 1)
    return folder, module


class Caller(threading.Thread):
    """Calls usermod:version in a loop and keeps every outcome with its time."""

    def __init__(self, client):
        super().__init__(daemon=True)
        self.client, self.stop, self.outcomes = client, threading.Event(), []

    def run(self):
        while not self.stop.is_set():
            try:
                value = tuple(self.client.call("editmod:version"))
            except SidecarError as exc:
                value = exc
            self.outcomes.append((time.monotonic(), value))

    def versions_since(self, since):
        return [v for t, v in self.outcomes if t >= since]


def test_edit_renews_workers_without_a_failed_call(tmp_path):
    folder, module = scripts_with_module(tmp_path)
    with SidecarProcess({"pool": {"initial-size": 2, "spares": 1},
                         "worker": {"paths": [str(folder)]}, "scaling": {"enabled": False}},
                        workdir=str(tmp_path / "sidecar")) as proc:
        client = proc.client(timeout=10)
        assert client.call("editmod:version")[0] == 1
        old_pids = {w["pid"] for w in proc.pool()["workers"]}
        callers = [Caller(proc.client(timeout=10)) for _ in range(3)]
        for c in callers:
            c.start()
        wait_until(lambda: all(c.outcomes for c in callers), 10, message="calls running")
        written = time.monotonic()
        write_module(module, 2)

        def renewed():
            workers = proc.pool()["workers"]
            return (not {w["pid"] for w in workers} & old_pids
                    and all(w["state"] in ("idle", "busy") for w in workers))
        # the new code within 2 s of the write, and every old worker gone
        wait_until(lambda: any(v[0] == 2 for c in callers for v in c.versions_since(written)
                               if isinstance(v, tuple)), 2.0, message="new code served")
        wait_until(renewed, 10, message="every worker renewed")
        done = time.monotonic()
        wait_until(lambda: all(c.versions_since(done) for c in callers), 10)
        for c in callers:
            c.stop.set()
            c.join(10)
        outcomes = [v for c in callers for _, v in c.outcomes]
        failures = [v for v in outcomes if not isinstance(v, tuple)]
        assert not failures, failures[:3]
        assert len(outcomes) > 20
        assert all(v[0] == 2 for c in callers for v in c.versions_since(done))
        report = client.health()
        assert report["reload"]["reloads"] >= 1 and report["reload"]["errors"] == []
        assert report["pool"]["size"]["ready"] >= 2  # never below strength afterwards


def test_syntax_error_keeps_the_old_workers_until_fixed(tmp_path):
    folder, module = scripts_with_module(tmp_path)
    with SidecarProcess({"pool": {"initial-size": 1, "spares": 0},
                         "worker": {"paths": [str(folder)]}, "scaling": {"enabled": False}},
                        workdir=str(tmp_path / "sidecar")) as proc:
        client = proc.client(timeout=10)
        first_pid = client.call("editmod:version")[1]
        write_module(module, 0, body="def version(:\n    return 3\n")
        report = wait_until(lambda: (lambda r: r if r["reload"]["errors"] else None)(
            client.health()), 5, message="syntax error reported in health")
        assert "editmod.py:1" in report["reload"]["errors"][0]
        assert "not reloading" in proc.log() and "editmod.py:1" in proc.log()
        # the old worker keeps serving the old code
        assert tuple(client.call("editmod:version")) == (1, first_pid)
        write_module(module, 3)
        wait_until(lambda: client.call("editmod:version")[0] == 3, 5, message="fixed code served")
        assert client.health()["reload"]["errors"] == []


def test_reload_can_be_switched_off(tmp_path):
    """A window in which a reload would show: a second sidecar with reload on watches the same
    folder, and only once it has served the new code and renewed every worker is the first
    one looked at; a reloader running there anyway would have renewed its worker by then."""
    folder, module = scripts_with_module(tmp_path)
    config = {"pool": {"initial-size": 1, "spares": 0}, "scaling": {"enabled": False}}
    with SidecarProcess({**config, "worker": {"paths": [str(folder)], "reload": False}},
                        workdir=str(tmp_path / "off")) as off, \
            SidecarProcess({**config, "worker": {"paths": [str(folder)]}},
                           workdir=str(tmp_path / "on")) as on:
        client, witness = off.client(timeout=10), on.client(timeout=10)
        pid = client.call("editmod:version")[1]
        old_pids = {w["pid"] for w in on.pool()["workers"]}
        assert witness.call("editmod:version")[0] == 1
        write_module(module, 2)
        wait_until(lambda: witness.call("editmod:version")[0] == 2, 10,
                   message="the sidecar with reload on serves the new code")
        wait_until(lambda: not {w["pid"] for w in on.pool()["workers"]} & old_pids, 10,
                   message="the sidecar with reload on renewed its workers")
        # a module already imported stays as it was: the same worker, the old code
        assert tuple(client.call("editmod:version")) == (1, pid)
        assert off.pool()["counters"]["recycled"] == 0
        assert {w["pid"] for w in off.pool()["workers"]} == {pid}
        assert client.health()["reload"] is None
        assert "reload on edit" not in off.log()
