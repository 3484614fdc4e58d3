"""What the kernel says of a process through /proc: threads, children, status fields.

Offers: ``ProcFile`` (a /proc file kept open and re-read with ``pread``: the kernel writes it
afresh and the descriptor names the process it was opened for, never a later one with the same
pid), ``num_threads``, ``thread_count`` (this process, native threads included),
``live_children`` (this process's children, from every thread), ``groups(pid)`` (a process's
supplementary groups), ``outside_view(pid)`` and
``OutsideView`` (threads and children of a worker as the sidecar sees it at every reply: two
``pread``, nothing opened, nothing a thread in the worker can forge).

Linux: ``/proc/<pid>/stat`` (field 20, num_threads), ``/proc/<pid>/task/<tid>/children``,
``/proc/self/status`` (``Threads:``), ``/proc/<pid>/status`` (``Groups:``), read with
``open``/``pread``.
Windows: ``psutil`` (``Process.num_threads()``, ``Process.children()``; underneath
``CreateToolhelp32Snapshot``/``NtQuerySystemInformation``), or better a Job Object per worker:
``QueryInformationJobObject(JobObjectBasicAccountingInformation)`` counts its live processes;
a process's groups: ``GetTokenInformation(TokenGroups)``.
"""

from __future__ import annotations

import os


class ProcFile:
    """A /proc file kept open: ``pread`` at offset 0 has the kernel write it afresh, and the
    descriptor names the process it was opened for (never a later one with the same pid)."""

    __slots__ = ("fd",)

    def __init__(self, path: str) -> None:
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self.fd = -1

    def read(self, size: int = 65536) -> bytes | None:
        """The file's text afresh (at most ``size`` bytes); None if unreadable."""
        if self.fd < 0:
            return None
        try:
            return os.pread(self.fd, size, 0)
        except OSError:
            return None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    @staticmethod
    def count_threads(path: str) -> int:
        """Field 20 (num_threads) of a /proc stat file; -1 if unreadable."""
        stat = ProcFile(path)
        try:
            return num_threads(stat.read())
        finally:
            stat.close()


def num_threads(stat: bytes | None) -> int:
    try:
        # maxsplit 18: field 20 is the 18th after the command's ")", the rest left unsplit
        return int(stat.rsplit(b")", 1)[1].split(None, 18)[17]) if stat else -1  # type: ignore[union-attr]
    except (ValueError, IndexError):
        return -1


class OutsideView:
    """``outside_view`` of one worker with its /proc files kept open (the pool reads it at
    every reply: two ``pread``, no path built, nothing opened); ``close`` with the worker."""

    __slots__ = ("pid", "stat", "children")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.stat = ProcFile(f"/proc/{pid}/stat")
        self.children = ProcFile(f"/proc/{pid}/task/{pid}/children")

    def read(self) -> tuple[int, int]:
        threads = num_threads(self.stat.read())
        if threads < 0:
            return -1, -1
        if threads > 1:
            return outside_view(self.pid)
        listed = self.children.read()
        return threads, len(listed.split()) if listed is not None else 0

    def close(self) -> None:
        self.stat.close()
        self.children.close()


def live_children() -> list[int]:
    """Children of this process (any of its threads), from /proc; zombies already reaped."""
    pids: set[int] = set()
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return []
    for task in tasks:
        try:
            fd = os.open(f"/proc/self/task/{task}/children", os.O_RDONLY)
        except OSError:
            continue
        try:
            pids.update(int(p) for p in os.read(fd, 65536).split())
        except (OSError, ValueError):
            pass
        finally:
            os.close(fd)
    return sorted(pids)


def thread_count() -> int:
    """The kernel's count of this process's threads (Python's own and native ones)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 1


def groups(pid: int) -> frozenset[int]:
    """The supplementary groups of process ``pid`` (``Groups:`` of its status); empty when it
    is gone or unreadable."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"Groups:"):
                    return frozenset(int(g) for g in line.split()[1:])
    except (OSError, ValueError):
        pass
    return frozenset()


def outside_view(pid: int) -> tuple[int, int]:
    """(threads, children) of process ``pid`` as the kernel counts them; (-1, -1) if gone.
    Cheap enough for every reply: two small reads of /proc."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
        try:
            stat = os.read(fd, 4096)
        finally:
            os.close(fd)
        threads = int(stat.rsplit(b")", 1)[1].split()[17])  # field 20: num_threads
    except (OSError, ValueError, IndexError):
        return -1, -1
    children = 0
    try:
        # one thread (the usual worker): its own task holds every child, no listing needed
        tasks = [str(pid)] if threads == 1 else os.listdir(f"/proc/{pid}/task")
        for task in tasks:
            fd = os.open(f"/proc/{pid}/task/{task}/children", os.O_RDONLY)
            try:
                children += len(os.read(fd, 65536).split())
            finally:
                os.close(fd)
    except OSError:
        pass
    return threads, children
