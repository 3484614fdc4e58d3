"""How the worker set gets a new worker: its process, its handle, its number and stack file.

``sidecar.pool.lifecycle.WorkerSet`` holds one ``WorkerFactory`` (composition: it asks for a
worker, the factory owns what making one needs).

Owns: the worker spec (``sidecar.process.spawn.WorkerSpec``), the pool's warm template
(``sidecar.process.template``: started, renewed and stopped with the pool), worker numbers, the
stack-file directory (removed at shutdown), the fd 1/2 sink (``sidecar.process.fd_output``).
Must not touch: membership or *whether* a start is allowed (``sidecar.pool.lifecycle``,
``sidecar.pool.spawn_policy``), descriptors and signals (``sidecar.process.spawn``).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from sidecar.loop import Loop
from sidecar.pool.settings import PoolSettings
from sidecar.pool.worker_handle import WorkerHandle
from sidecar.process.fd_output import FdOutput
from sidecar.process.spawn import WorkerProcess, WorkerSpec
from sidecar.process.template import TEMPLATE, WorkerTemplate, template_unsupported

log = logging.getLogger("py3sidecar.pool")


class WorkerFactory:
    """Makes ``WorkerHandle``s for one pool: plain spawns, or forks of its warm template."""

    def __init__(self, loop: Loop, settings: PoolSettings,
                 process_factory: Callable[..., WorkerProcess] = WorkerProcess) -> None:
        self.loop = loop
        self.settings = settings
        self.clock = loop.clock
        self.process_factory = process_factory  # the unit tests pass a fake process
        self.next_worker_id = 1
        self.stack_dir = tempfile.mkdtemp(prefix=f"py3sidecar-{settings.name}-stacks-",
                                          dir=settings.stack_root or None)
        self.spec = WorkerSpec.from_settings(settings)
        self.fd_output = FdOutput(settings.fd_output, settings.output_log_rate, self.clock)

    def make(self, role: str) -> WorkerHandle:
        """A new worker process and its handle (``OSError`` when it cannot be started)."""
        wid = self.next_worker_id
        self.next_worker_id += 1
        stack_file = os.path.join(self.stack_dir, f"worker-{wid}.stack")
        process = self.process_factory(self.loop, self.spec, stack_file=stack_file,
                                       fd_output=self.fd_output, label=f"worker {wid}")
        worker = WorkerHandle(wid, role, process, self.settings, self.clock(), self.clock)
        process.label = worker.describe()
        return worker

    def start_template(self) -> None:
        """The warm template workers are forked from (``sidecar.process.template``), if this pool
        uses one: started with the pool; until it is ready, workers are spawned plain."""
        reason = template_unsupported(self.settings)
        if reason or self.process_factory is not WorkerProcess:  # doubles spawn by themselves
            if self.settings.spawn == TEMPLATE and reason:
                log.info("pool %s spawns its workers plain: %s", self.settings.name, reason)
            return
        self.spec = replace(self.spec, template=WorkerTemplate(self.loop, self.settings,
                                                                self.spec))
        self.spec.template.start()

    def renew_template(self, reason: str) -> None:
        """Its preload is stale too: later forks come from a new template."""
        if self.spec.template is not None:
            self.spec.template.renew(reason)

    def close(self, deadline: float) -> None:
        """Stop the template (bounded by ``deadline``)."""
        if self.spec.template is not None:
            self.spec.template.close(deadline)

    def remove_stack_dir(self) -> None:
        for leftover in Path(self.stack_dir).glob("*"):
            leftover.unlink(missing_ok=True)
        try:
            os.rmdir(self.stack_dir)
        except OSError:
            pass

    def snapshot(self) -> dict[str, Any]:
        return {"fd_output": self.fd_output.snapshot(),
                "template": (self.spec.template.snapshot() if self.spec.template is not None
                             else {"state": "off"})}
