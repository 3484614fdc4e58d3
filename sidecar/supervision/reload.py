"""Reload on edit: a change to a ``.py`` file under ``python3.worker.paths`` renews the workers.

Owns: watching the folders (``watchfiles``, in its own thread), checking that the edited files
still compile, and asking the pool, in the loop thread, to renew its workers gracefully; the
state ``health`` shows (last reload, files with a syntax error). Must not touch: worker
processes (``Pool.renew_workers`` does the replacing) or the wire.

```
 watcher thread: watchfiles.watch(paths)  --changed .py files-->  loop.call_soon_threadsafe
 loop thread:    compile() each changed file (parse only: nothing of the user's code runs here)
                   any SyntaxError -> health.reload.errors + log; the old workers keep serving
                   all clean       -> pool.renew_workers(): spares first, then members; calls in
                                      flight finish on the old code, the next call gets the new
```
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("py3sidecar.reload")

# watchfiles yields a batch once no new change came for STEP_MS, at most DEBOUNCE_MS after the
# first: an editor's save (write temp, rename) arrives as one batch, well inside the 2 s goal.
STEP_MS = 50
DEBOUNCE_MS = 400


def check_syntax(path: str) -> str | None:
    """None when ``path`` compiles (or is gone); else ``file:line: message``."""
    try:
        with open(path, "rb") as f:
            source = f.read()
    except FileNotFoundError:
        return None  # deleted: the next import fails in the worker, as it would without us
    except OSError as exc:
        return f"{path}: cannot read ({exc.strerror})"
    try:
        compile(source, path, "exec", dont_inherit=True)
    except SyntaxError as exc:
        return f"{path}:{exc.lineno}: {exc.msg}"
    except ValueError as exc:  # e.g. null bytes
        return f"{path}: {exc}"
    return None


class CodeReloader:
    """Watches ``paths``; ``renew(reason)`` is called in the loop thread after a clean edit."""

    def __init__(self, paths: Iterable[str], call_soon_threadsafe: Callable[[Callable[[], None]],
                 None], renew: Callable[[str], int]) -> None:
        self.paths = [os.path.abspath(p) for p in paths if os.path.isdir(p)]
        self.missing = [p for p in paths if not os.path.isdir(p)]
        self.call_soon_threadsafe = call_soon_threadsafe
        self.renew = renew
        self.errors: dict[str, str] = {}     # file -> its syntax error, until fixed
        self.reloads = 0
        self.last_reload: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        for path in self.missing:
            log.warning("python3.worker.paths: %s is not a folder; not watched for edits", path)
        if not self.paths:
            return
        self._thread = threading.Thread(target=self._watch, name="py3sidecar-reload",
                                        daemon=True)
        self._thread.start()
        log.info("reload on edit: watching %s (python3.worker.reload)", ", ".join(self.paths))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)  # watchfiles checks the stop event at least every step

    def _watch(self) -> None:
        from watchfiles import PythonFilter, watch

        try:
            for changes in watch(*self.paths, watch_filter=PythonFilter(), stop_event=self._stop,
                                 step=STEP_MS, debounce=DEBOUNCE_MS, rust_timeout=500,
                                 yield_on_timeout=False, raise_interrupt=False):
                files = sorted({path for _, path in changes})
                self.call_soon_threadsafe(lambda files=files: self.on_change(files))
        except Exception:  # the watcher is a convenience: losing it must not stop the sidecar
            log.exception("reload on edit stopped working; restart the sidecar to see edits")

    def on_change(self, files: list[str]) -> None:
        """Loop thread: check the edited files, then renew the workers if all compile."""
        for path in files:
            problem = check_syntax(path)
            if problem:
                if self.errors.get(path) != problem:
                    log.error("not reloading: %s (the workers keep the code they have; fix the "
                              "file and save it again)", problem)
                self.errors[path] = problem
            else:
                self.errors.pop(path, None)
        if self.errors:
            return
        names = ", ".join(os.path.basename(p) for p in files)
        count = self.renew(f"its code changed on disk ({names})")
        self.reloads += 1
        self.last_reload = {"at": time.time(), "files": files, "workers": count}
        log.info("reload on edit: %s changed; %d workers are being renewed", names, count)

    def snapshot(self) -> dict[str, Any]:
        return {"watching": self.paths, "reloads": self.reloads, "last": self.last_reload,
                "errors": sorted(self.errors.values())}
