"""Covers: sidecar.worker.wire.

The worker's pipe ends, on real pipes: a small request frame costs one ``read`` and a small
reply one ``write``; frames that arrive together, in pieces, larger than one read, or cut by
EOF are still read exactly, and a large reply is written whole.
"""

from __future__ import annotations

import os
import threading

import pytest

from sidecar.channel import FrameTooLarge, encode_frame, read_frame
from sidecar.worker import wire


@pytest.fixture
def pipe():
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass


def counting(monkeypatch, name: str) -> list[int]:
    calls: list[int] = []
    real = getattr(os, name)

    def counted(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(wire.os, name, counted)
    return calls


def test_a_small_frame_is_read_in_one_system_call(pipe, monkeypatch):
    r, w = pipe
    os.write(w, encode_frame(b"x" * 300))
    reads = counting(monkeypatch, "read")
    assert wire.Inbox(r, 1 << 20).read_frame() == b"x" * 300
    assert len(reads) == 1


def test_frames_that_arrive_together_come_out_one_by_one(pipe):
    r, w = pipe
    os.write(w, encode_frame(b"one") + encode_frame(b"") + encode_frame(b"three"))
    inbox = wire.Inbox(r, 1 << 20)
    assert [inbox.read_frame() for _ in range(3)] == [b"one", b"", b"three"]
    os.close(w)
    assert inbox.read_frame() is None


def test_a_frame_in_pieces_and_one_larger_than_a_read_are_whole(pipe):
    r, w = pipe
    big = os.urandom(300_000)  # above the 64 KiB a read takes, above a pipe's capacity
    frame = encode_frame(b"abc")
    writer = threading.Thread(target=lambda: (os.write(w, frame[:2]), os.write(w, frame[2:]),
                                              os.write(w, encode_frame(big))))
    writer.start()
    inbox = wire.Inbox(r, 1 << 20)
    assert inbox.read_frame() == b"abc"
    assert inbox.read_frame() == big
    writer.join(10)
    assert inbox.pending == b""  # never read past a large frame


def test_eof_inside_a_frame_is_the_end_and_a_frame_over_the_limit_is_refused(pipe):
    r, w = pipe
    os.write(w, encode_frame(b"x" * 100)[:50])
    os.close(w)
    assert wire.Inbox(r, 1 << 20).read_frame() is None
    r2, w2 = os.pipe()
    try:
        os.write(w2, encode_frame(b"y" * 101))
        with pytest.raises(FrameTooLarge):
            wire.Inbox(r2, 100).read_frame()
    finally:
        os.close(r2)
        os.close(w2)


def test_a_small_reply_is_one_write_and_a_large_one_arrives_whole(pipe, monkeypatch):
    r, w = pipe
    writes = counting(monkeypatch, "write")
    wire.write_frame(w, memoryview(b"reply"))
    assert len(writes) == 1
    assert read_frame(r, 1 << 20) == b"reply"
    big = os.urandom(wire.SMALL * 5)  # more than the pipe holds: written in pieces
    got: list[object] = []
    reader = threading.Thread(target=lambda: got.append(read_frame(r, 1 << 22)))
    reader.start()
    wire.write_frame(w, big)
    reader.join(10)
    assert got == [big]


def test_a_write_the_pipe_takes_in_pieces_is_finished(pipe, monkeypatch):
    r, w = pipe
    real = os.write
    monkeypatch.setattr(wire.os, "write", lambda fd, data: real(fd, bytes(data)[:3]))
    wire.write_frame(w, b"0123456789")
    assert read_frame(r, 100) == b"0123456789"
