"""Covers: sidecar.worker.main, bridge.codec, sidecar.channel, sidecar.pool.local,
sidecar.process.spawn.

The reply splice (bridge.codec.splice_success) against the layout a real worker sends.

A real ``python -m sidecar.worker.main`` process answers over real pipes: if its success reply stops
matching the fast path's layout, the first test fails (the pool would decode every reply)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bridge.codec import pack_raw, splice_success, unpack_raw
from sidecar.channel import read_frame, write_frame
from sidecar.pool.local import PoolSettings
from sidecar.process.spawn import worker_env, worker_settings_json


@pytest.fixture(scope="module")
def worker_replies() -> list[bytes]:
    """Frames a real worker sends: its ready message, then the replies to three calls."""
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()
    settings = PoolSettings()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar.worker.main", "--in", str(to_r), "--out", str(from_w),
         "--settings", worker_settings_json(settings)],
        pass_fds=(to_r, from_w), env=worker_env(settings), stdin=subprocess.DEVNULL)
    os.close(to_r)
    os.close(from_w)
    frames = []
    try:
        frames.append(read_frame(from_r, 1 << 20))  # ready
        for code in ("result = [1, 'two', {'three': 3.0}]", "print('hi')\nresult = 'x' * 300",
                     "raise ValueError('no')"):
            write_frame(to_w, pack_raw({"op": "execute", "code": code}))
            frames.append(read_frame(from_r, 1 << 20))
    finally:
        os.close(to_w)
        proc.wait(10)
        os.close(from_r)
    return frames


def test_a_real_workers_success_reply_has_the_spliceable_layout(worker_replies) -> None:
    for frame in worker_replies[1:3]:
        original = unpack_raw(frame)
        spliced = splice_success(frame, "req-7", 12)
        assert spliced is not None, f"the worker's success layout changed: {frame[:30]!r}"
        data, wall, cpu = spliced
        assert (wall, cpu) == (original["ms"], original["cpu"])
        reply = unpack_raw(data)
        assert list(reply)[:2] == ["id", "worker"]
        assert reply == {"id": "req-7", "worker": 12, **original}


def test_an_error_reply_is_not_spliced(worker_replies) -> None:
    frame = worker_replies[3]
    assert unpack_raw(frame)["ok"] is False
    assert splice_success(frame, 1, 1) is None


def test_other_layouts_are_refused_not_misread() -> None:
    # Same first members but a different order, or cpu not a float64: the fast path must say
    # it cannot (the pool then decodes), never read times from the wrong bytes.
    reordered = pack_raw({"ok": True, "ms": 1.0, "value": 5, "cpu": 2.0, "stdout": "",
                          "stderr": ""})
    int_cpu = pack_raw({"ok": True, "ms": 1.0, "cpu": 2, "value": 5, "stdout": "", "stderr": ""})
    short = pack_raw({"ok": True, "ms": 1.0})
    for frame in (reordered, int_cpu, short, pack_raw({"ok": True}), b""):
        assert splice_success(frame, 1, 1) is None
