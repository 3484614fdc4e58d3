"""Binary values in the CPython codec: bytes-likes as msgpack bin, numeric numpy arrays as one
buffer (EXT_NDARRAY: dtype, shape, C-order bytes; decoded without a copy, read-only), lists
when numpy is absent, the sidecar's pass-through leaving them opaque."""

import msgpack
import numpy as np
import pytest

from bridge import codec


@pytest.mark.parametrize("value", [b"\x00\xff" * 10, bytearray(b"abc"), memoryview(b"xyz")])
def test_bytes_likes_cross_as_bin(value):
    data = codec.packb(value)
    assert data[0] in (0xC4, 0xC5, 0xC6)  # bin 8/16/32, never str or an array of ints
    assert codec.unpackb(data) == bytes(value)


@pytest.mark.parametrize("dtype", ["<f8", "<f4", "<i8", "<i4", "<i2", "|i1", "|u1", "<u2",
                                   "<u4", "|b1", ">f8", ">i4"])
@pytest.mark.parametrize("shape", [(), (0,), (7,), (3, 4), (2, 3, 2)])
def test_numeric_arrays_round_trip_as_one_buffer(dtype, shape):
    rng = np.random.default_rng(1)
    array = np.asarray(rng.random(shape) * 100).astype(dtype)
    data = codec.packb({"a": array})
    ext = msgpack.unpackb(data)["a"]
    assert isinstance(ext, msgpack.ExtType) and ext.code == codec.EXT_NDARRAY
    back = codec.unpackb(data)["a"]
    assert back.dtype == array.dtype and back.shape == array.shape
    assert np.array_equal(back, array)
    assert not back.flags.writeable  # a view over the received buffer (documented)
    assert codec._ndarray_as_lists(memoryview(ext.data)[4 + int.from_bytes(ext.data[:4], "big"):],
                                   dtype, shape) == array.tolist()


def test_large_array_is_decoded_without_a_copy_and_non_contiguous_ones_are_made_contiguous():
    big = np.arange(4 << 20, dtype="<f8")  # 32 MiB
    back = codec.unpackb(codec.packb(big))
    assert not back.flags.owndata and np.array_equal(back, big)
    strided = np.arange(20, dtype="<i8").reshape(4, 5)[:, ::2]
    assert np.array_equal(codec.unpackb(codec.packb(strided)), strided)
    assert codec.pack_buffer(big).nbytes == len(codec.packb(big))


def test_other_dtypes_still_become_lists():
    assert codec.unpackb(codec.packb(np.array(["a", "b"]))) == ["a", "b"]
    assert codec.unpackb(codec.packb(np.array([2**64 - 1], dtype="<u8"))) == [2**64 - 1]
    assert codec.unpackb(codec.packb(np.float64(1.5))) == 1.5


def test_sidecar_pass_through_keeps_arrays_opaque():
    data = codec.packb({"v": np.ones(5)})
    raw = codec.unpack_raw(data)
    assert isinstance(raw["v"], msgpack.ExtType)
    assert np.array_equal(codec.unpackb(codec.pack_raw(raw))["v"], np.ones(5))


def _head(dtype, shape):
    header = msgpack.packb([dtype, shape])
    return len(header).to_bytes(4, "big") + header


@pytest.mark.parametrize("payload, words", [
    (b"\x00", "4-byte header length"),
    (_head("<c16", [1]), "dtype '<c16'"),
    (_head("<f8", [2]) + b"\x00" * 8, "8 bytes for shape [2]"),
])
def test_bad_array_payloads_are_named(payload, words):
    data = codec.packb([msgpack.ExtType(codec.EXT_NDARRAY, payload)])
    with pytest.raises(codec.DecodeError, match="ndarray extension") as info:
        codec.unpackb(data)
    assert words in str(info.value)
