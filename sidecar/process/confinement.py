"""What ties a worker process to the sidecar, and what keeps it from the sidecar.

Owns: the account workers run as (``python3.worker.user`` / ``python3.worker.group``, as
``Popen`` credentials), and what a worker does to itself before any user code: die with the
sidecar (``PR_SET_PDEATHSIG``, then check the sidecar is still its parent) and give up every
capability it inherited. Must not touch: the protocol, scheduling, the worker's call loop.

Why: a worker whose sidecar was SIGKILLed must not run on unsupervised; user code running as
the sidecar's own account could signal it (``os.kill(os.getppid(), 9)``) or read its token.
``PR_SET_PDEATHSIG`` fires when the *thread* that forked the worker ends: the pool spawns
from the loop thread, which lives as long as the sidecar. A worker forked from the template
(``CLONE_PARENT``) has the template's parent, that same loop thread, as its own.
"""

from __future__ import annotations

import grp
import os
import pwd
import signal
import sys
from typing import Any

from sidecar.platform import prctl

ENV_SIDECAR_PID = "PY3SIDECAR_SIDECAR_PID"  # set by the pool (``worker_env``), read once here




def worker_credentials(user: str, group: str) -> dict[str, Any]:
    """``Popen`` keyword arguments that start a worker as ``user``/``group`` ({} for neither).

    Supplementary groups are dropped (``extra_groups=[]``): the sidecar's (root's, say) must not
    reach user code. Raises ``ValueError`` naming the key when an account does not exist.
    """
    if not user and not group:
        return {}
    credentials: dict[str, Any] = {"extra_groups": []}
    if user:
        try:
            account = pwd.getpwnam(user)
        except KeyError:
            raise ValueError(f"python3.worker.user: there is no account {user!r} on this machine; "
                             "create it (useradd --system) or leave the key empty") from None
        credentials["user"] = account.pw_uid
        credentials["group"] = account.pw_gid  # its own group unless worker.group says
    if group:
        try:
            credentials["group"] = grp.getgrnam(group).gr_gid
        except KeyError:
            raise ValueError(f"python3.worker.group: there is no group {group!r} on this machine; "
                             "create it (groupadd --system) or leave the key empty") from None
    return credentials


def die_with_sidecar(expected: str | None = None) -> int:
    """First thing in a worker: SIGKILL when the sidecar dies, and exit if it already has.

    The parent must be the sidecar (a worker forked from a template is the sidecar's child
    too: ``CLONE_PARENT``, see ``sidecar.process.template_server``). Returns the sidecar's pid (0:
    not known); ``expected`` given, the pid is that, not read from the environment."""
    if expected is None:
        expected = os.environ.pop(ENV_SIDECAR_PID, "")
    error = prctl.set_parent_death_signal(signal.SIGKILL)
    if error:
        print(f"py3sidecar worker {os.getpid()}: prctl(PR_SET_PDEATHSIG) failed: "
              f"{os.strerror(error)}; it may outlive a killed sidecar", file=sys.stderr)
    # The sidecar may have died between our fork and the prctl: then no signal will come.
    if expected.isdigit() and os.getppid() != int(expected):
        print(f"py3sidecar worker {os.getpid()}: the sidecar (pid {expected}) is gone; exiting",
              file=sys.stderr)
        os._exit(1)
    return int(expected) if expected.isdigit() else 0


def drop_capabilities() -> None:
    """A worker not running as root gives up every capability it inherited.

    A sidecar that starts workers as another account (``python3.worker.user``) without being
    root holds CAP_SETUID/CAP_SETGID/CAP_KILL as ambient capabilities (the shipped unit's
    ``AmbientCapabilities=``); changing from one non-root uid to another keeps them, so user
    code could signal the sidecar or become any account. Dropped before any user code runs,
    they cannot come back (``NoNewPrivileges``). A root worker (no worker.user on a root
    sidecar) is left as the operator configured it.
    """
    if os.getuid() == 0 or not any(prctl.capability_masks().values()):
        return
    error = prctl.clear_capabilities()
    if error:
        print(f"py3sidecar worker {os.getpid()}: cannot drop its capabilities: "
              f"{os.strerror(error)}; refusing to run user code with them", file=sys.stderr)
        os._exit(1)
