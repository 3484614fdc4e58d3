"""Covers: sidecar.platform.pipes.

Pipes through the seam: a widened pipe holds more than the default 64 KiB, what was written
and not read is counted, and a copy lands at or above the asked number, close-on-exec.
"""

from __future__ import annotations

import fcntl
import os

from sidecar.platform import pipes


def test_a_widened_pipe_reports_its_new_size():
    r, w = os.pipe()
    try:
        if pipes.widen_pipe(w, 1 << 18):
            assert fcntl.fcntl(w, fcntl.F_GETPIPE_SZ) >= 1 << 18
    finally:
        os.close(r)
        os.close(w)


def test_a_descriptor_that_is_no_pipe_is_refused_not_raised(tmp_path):
    fd = os.open(tmp_path / "file", os.O_CREAT | os.O_RDWR)
    try:
        assert not pipes.widen_pipe(fd)
    finally:
        os.close(fd)



def test_pending_bytes_counts_what_was_not_read():
    r, w = os.pipe()
    try:
        assert pipes.pending_bytes(r) == 0
        os.write(w, b"x" * 1000)
        assert pipes.pending_bytes(r) == 1000
        os.read(r, 400)
        assert pipes.pending_bytes(r) == 600
    finally:
        os.close(r)
        os.close(w)


def test_dup_above_is_high_and_close_on_exec():
    r, w = os.pipe()
    copy = pipes.dup_above(r, 300)
    try:
        assert copy >= 300 and not os.get_inheritable(copy)
        os.write(w, b"hi")
        assert os.read(copy, 2) == b"hi"
    finally:
        for fd in (r, w, copy):
            os.close(fd)
