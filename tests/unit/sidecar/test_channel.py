"""Covers: sidecar.channel, sidecar.platform.pipes.

Frames in linear time: a large frame arriving in many small pieces is assembled into one
buffer of its announced length, the bytes copied per read do not grow with what was already
read, one ``feed()`` takes a bounded amount, and buffered writes advance an offset."""

import fcntl
import os
import select
import threading

from sidecar.channel import (
    HEADER,
    FrameReader,
    FrameTooLarge,
    OutBuffer,
    encode_frame,
    read_frame,
    write_frame,
)
from sidecar.platform.pipes import widen_pipe


def _pipe():
    r, w = os.pipe()
    os.set_blocking(r, False)
    return r, w


def test_large_frame_in_many_small_pieces_is_assembled():
    r, w = _pipe()
    reader = FrameReader(r, 64 << 20)
    payload = os.urandom(3 << 20)
    data = encode_frame(b"first") + encode_frame(payload) + encode_frame(b"last")
    frames = []
    for at in range(0, len(data), 4093):  # an odd size: headers cut, frames straddled
        os.write(w, data[at:at + 4093])
        got = reader.feed()
        assert got is not None
        frames += got
    assert frames == [b"first", payload, b"last"]
    os.close(w)
    os.close(r)


def test_bytes_copied_per_read_do_not_grow_with_what_was_read():
    """The old reader re-joined its buffer on every read: copies grew as n**2 / piece. Now
    every piece after the first lands in the frame's own buffer: the copied bytes stay at
    about one piece, whatever the frame's size."""
    copied = {}
    for size in (1 << 20, 8 << 20):
        r, w = _pipe()
        reader = FrameReader(r, 64 << 20)
        data = encode_frame(b"\x01" * size)
        per_read = []
        frames = []
        for at in range(0, len(data), 8192):
            before = reader.copied
            os.write(w, data[at:at + 8192])
            frames += reader.feed()
            per_read.append(reader.copied - before)
        assert len(frames) == 1 and len(frames[0]) == size
        assert isinstance(frames[0], bytearray)  # handed out as read, no copy into bytes
        assert max(per_read[1:]) == 0  # after the first piece: straight into the frame
        copied[size] = reader.copied
        os.close(w)
        os.close(r)
    assert copied[8 << 20] == copied[1 << 20] <= 8192


def test_one_feed_takes_a_bounded_amount():
    r, w = _pipe()
    widen_pipe(w)
    reader = FrameReader(r, 64 << 20, budget=16384)
    payload = b"z" * 200_000
    if fcntl.fcntl(w, fcntl.F_GETPIPE_SZ) < 300_000:
        payload = b"z" * 60_000
        reader = FrameReader(r, 64 << 20, budget=16384)
        reader._scratch = memoryview(bytearray(4096))  # a pipe the kernel would not widen
    os.write(w, encode_frame(payload))
    turns = 0
    frames = []
    while not frames:
        frames = reader.feed()
        turns += 1
    assert frames == [payload] and turns >= 3  # several loop turns, not one long one
    os.close(w)
    os.close(r)


def test_out_buffer_advances_through_partial_writes():
    r, w = os.pipe()
    os.set_blocking(w, False)
    out = OutBuffer(w, budget=1 << 16)
    payload = os.urandom(5 << 20)
    out.add_frame(b"small")
    out.add_frame(payload)
    received = bytearray()

    def drain():
        while True:
            chunk = os.read(r, 1 << 16)
            if not chunk:
                return
            received.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()

    while not out.flush():
        assert out.pending > 0
        select.select([], [w], [], 5)
    assert out.pending == 0 and not out
    os.close(w)
    reader.join(5)
    os.close(r)
    expected = encode_frame(b"small") + encode_frame(payload)
    assert bytes(received) == expected


def test_blocking_frames_of_several_megabytes_round_trip():
    r, w = os.pipe()
    payload = os.urandom(3 << 20)
    writer = threading.Thread(target=write_frame, args=(w, payload))
    writer.start()
    got = read_frame(r, 64 << 20)
    writer.join(5)
    assert bytes(got) == payload
    assert HEADER.size == 4
    os.close(w)
    os.close(r)


def test_frames_split_across_reads_are_reassembled():
    r, w = os.pipe()
    os.set_blocking(r, False)
    reader = FrameReader(r, 1 << 20)
    data = encode_frame(b"hello") + encode_frame(b"") + encode_frame(b"x" * 1000)
    os.write(w, data[:7])
    assert reader.feed() == []
    os.write(w, data[7:])
    assert reader.feed() == [b"hello", b"", b"x" * 1000]
    assert reader.feed() is None  # nothing to read
    os.close(w)
    assert reader.feed() == [] and reader.eof
    os.close(r)



def test_oversized_frame_is_refused():
    r, w = os.pipe()
    os.write(w, (10_000).to_bytes(4, "big"))
    try:
        read_frame(r, 100)
    except FrameTooLarge as exc:
        assert "10000 bytes" in str(exc)
    else:
        raise AssertionError("FrameTooLarge not raised")
    os.close(r)
    os.close(w)



def test_blocking_round_trip():
    r, w = os.pipe()
    write_frame(w, b"abc")
    assert read_frame(r, 10) == b"abc"
    os.close(w)
    assert read_frame(r, 10) is None
    os.close(r)
