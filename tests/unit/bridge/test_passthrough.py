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
