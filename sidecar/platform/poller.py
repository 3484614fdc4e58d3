"""Waiting on descriptors and on processes' ends: epoll and pidfd.

Offers: ``epoll`` (the loop's poller: ``register``/``modify``/``unregister``/``poll``), the
masks ``READ_EVENTS`` and ``WRITE_EVENTS`` (an error or hang-up wakes both sides),
``EPOLLIN``/``EPOLLOUT`` and ``pidfd_open(pid)``: a descriptor that becomes readable when the
process has exited, waited on in the same epoll as the worker's pipes (and by
``select.select`` in the template's bounded wait). These are the kernel's own objects, bound
here by name, not wrapped: the loop's turn pays no extra call.

Linux: ``epoll_create1``/``epoll_ctl``/``epoll_wait``, ``pidfd_open`` (5.3+).
Windows: an I/O completion port (``CreateIoCompletionPort``, ``GetQueuedCompletionStatus``)
for overlapped pipe and socket I/O, and a process handle (``OpenProcess(SYNCHRONIZE)``) waited
on with ``WaitForMultipleObjects`` or ``RegisterWaitForSingleObject`` posting to that port.
"""

from __future__ import annotations

import os
import select

epoll = select.epoll
EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT
READ_EVENTS = select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP
WRITE_EVENTS = select.EPOLLOUT | select.EPOLLERR | select.EPOLLHUP
pidfd_open = os.pidfd_open

__all__ = ["epoll", "EPOLLIN", "EPOLLOUT", "READ_EVENTS", "WRITE_EVENTS", "pidfd_open"]
