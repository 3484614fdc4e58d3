"""Covers: bridge.passthrough.

The sidecar's pass-through codec: values it does not decode stay bytes, and members appended
to an encoded map without decoding it read back as one map, past a fixmap's 15 members too.
"""

from __future__ import annotations

import msgpack
import pytest

from bridge import passthrough


@pytest.mark.parametrize("size", [0, 3, 14, 15, 16, 200])
def test_extend_map_appends_members_to_any_map_size(size):
    original = {f"k{i}": i for i in range(size)}
    data = passthrough.pack_raw(original)
    extended = passthrough.extend_map(data, {"added": [1, 2], "flag": True})
    assert msgpack.unpackb(extended) == {**original, "added": [1, 2], "flag": True}


def test_round_trip_of_plain_values():
    value = {"op": "call", "args": [1, 2.5, "x", None, b"\x00\x01"]}
    assert passthrough.unpack_raw(passthrough.pack_raw(value)) == value


@pytest.mark.parametrize("value", [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32,
                                   2**64 - 1, -1, -33, -2**40, True, False, None, "r-1", "",
                                   1.5, b"\x00"])
def test_pack_id_is_pack_raw_byte_for_byte(value):
    assert passthrough.pack_id(value) == passthrough.pack_raw(value)


def test_a_spliced_success_carries_the_id_and_worker_as_msgpack_encodes_them():
    frame = passthrough.pack_raw({"ok": True, "ms": 1.0, "cpu": 0.5, "value": [1, 2],
                                  "stdout": "", "stderr": ""})
    for rid, worker in ((1, 1), (70000, 300), ("req-9", 2**33)):
        data, wall, cpu = passthrough.splice_success(frame, rid, worker)
        assert msgpack.unpackb(data) == {"id": rid, "worker": worker, "ok": True, "ms": 1.0,
                                         "cpu": 0.5, "value": [1, 2], "stdout": "",
                                         "stderr": ""}
        assert (wall, cpu) == (1.0, 0.5)
