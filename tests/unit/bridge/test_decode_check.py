"""Covers: bridge.decode_check.

A value that cannot be decoded is named by its path in the request, so the caller can find it.
"""

from __future__ import annotations

import msgpack
import pytest

from bridge import decode_check


def test_paths_read_as_python_would_index_them():
    assert decode_check.format_path("args", [0, "k", 2]) == "args[0]['k'][2]"
    assert decode_check.format_path("kwargs", []) == "kwargs"


def test_a_bad_value_deep_in_a_request_is_named_by_its_path():
    # {"args": [1, {"when": <a timestamp (ext -1) of one byte: no such length>}]}
    data = b"\x81\xa4args\x92\x01\x81\xa4when\xd4\xff\x00"
    with pytest.raises(Exception) as caught:
        msgpack.unpackb(data)
    error = decode_check.explain(data, caught.value)
    assert isinstance(error, decode_check.DecodeError)
    assert "args" in str(error) and "when" in str(error)
