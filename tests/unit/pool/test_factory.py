"""Covers: sidecar.pool.factory, sidecar.pool.worker_handle.

What making a worker needs, owned by the factory: numbers counted from 1, one stack file per
worker inside the pool's own stack folder (removed at shutdown), the fake process a unit test
passes used as given (no template is started for it), and a snapshot that says the template is
off when there is none.
"""

from __future__ import annotations

import os

from sidecar.loop import Loop
from sidecar.pool.factory import WorkerFactory
from sidecar.pool.local import MEMBER, SPARE, PoolSettings

from ..pool_doubles import FakeProcess

STACK_FILES: dict[int, str] = {}


def recording_process(loop, spec, *, stack_file="", fd_output=None, label=""):
    """The pool's fake process, remembering the stack file the factory gave it."""
    process = FakeProcess(loop, spec, stack_file=stack_file, fd_output=fd_output, label=label)
    STACK_FILES[process.pid] = stack_file
    return process


def factory(tmp_path) -> WorkerFactory:
    return WorkerFactory(Loop(), PoolSettings(stack_root=str(tmp_path)),
                         process_factory=recording_process)


def test_workers_are_numbered_from_one_with_a_stack_file_each_in_the_pool_folder(tmp_path):
    made = factory(tmp_path)
    first, second = made.make(MEMBER), made.make(SPARE)
    assert (first.id, second.id) == (1, 2)
    assert (first.role, second.role) == (MEMBER, SPARE)
    assert os.path.dirname(made.stack_dir) == str(tmp_path)
    files = [STACK_FILES[w.process.pid] for w in (first, second)]
    assert files == [os.path.join(made.stack_dir, "worker-1.stack"),
                     os.path.join(made.stack_dir, "worker-2.stack")]


def test_a_test_double_process_gets_no_template_and_the_snapshot_says_so(tmp_path):
    made = factory(tmp_path)
    made.start_template()  # a test double spawns by itself: no template
    assert made.spec.template is None
    assert made.snapshot()["template"] == {"state": "off"}
    made.renew_template("a reload")  # nothing to renew: no error
    made.close(deadline=0.0)


def test_the_stack_folder_is_removed_with_what_is_left_in_it(tmp_path):
    made = factory(tmp_path)
    worker = made.make(MEMBER)
    with open(STACK_FILES[worker.process.pid], "w") as handle:
        handle.write("a stack dump")
    made.remove_stack_dir()
    assert not os.path.exists(made.stack_dir)
    made.remove_stack_dir()  # twice: already gone, no error
