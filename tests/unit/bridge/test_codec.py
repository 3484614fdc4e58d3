"""Covers: bridge.codec.

The CPython codec: round trips of every wire type, refusals named, binary values
(bytes-likes as msgpack bin, numeric numpy arrays as one buffer) and the pass-through."""

import datetime as dt
import decimal

import msgpack
import numpy as np
import pytest

from bridge import codec
from bridge.codec import Dataset, EncodeError


@pytest.mark.parametrize("value", [
    None, True, 1, -(2**63), 2**64 - 1, 2**64, -(2**63) - 1, 10**40, 1.25, "s", b"\x00",
    [1, [2]], {"a": {"b": 1}}, decimal.Decimal("-0.001"),
    dt.datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=dt.UTC),
    Dataset(["a"], [[1], [None]], ["long"]),
])
def test_round_trip(value):
    assert codec.unpackb(codec.packb(value)) == value


def test_raw_pass_through_keeps_extensions_opaque_and_byte_identical():
    value = {"d": Dataset(["a"], [[1]]), "t": dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
             "n": decimal.Decimal("1.5"), "big": 2**70}
    packed = codec.packb(value)
    raw = codec.unpack_raw(packed)
    assert isinstance(raw["d"], msgpack.ExtType) and isinstance(raw["t"], msgpack.Timestamp)
    assert codec.pack_raw(raw) == packed


def test_tuple_becomes_list_and_dataset_infers_types():
    assert codec.unpackb(codec.packb((1, 2))) == [1, 2]
    ds = Dataset(["i", "f", "s", "b", "t", "n"],
                 [[None, 1.0, "x", True, dt.datetime(2020, 1, 1), None]])
    assert ds.types == ["object", "double", "str", "bool", "datetime", "object"]


@pytest.mark.parametrize("value, position", [
    (object(), "value "),
    ([1, {1, 2}], "value[1]"),
    ({"a": [1, {"b": object()}]}, "value['a'][1]['b']"),
    (Dataset(["a"], [[object()]]), "value.rows[0][0]"),
])
def test_unsupported_values_name_type_and_position(value, position):
    with pytest.raises(EncodeError) as info:
        codec.packb(value)
    assert position in str(info.value)
    assert "cannot be sent" in str(info.value)


def test_dataset_rejects_ragged_rows():
    with pytest.raises(ValueError, match="row 1 has 1 values for 2 columns"):
        Dataset(["a", "b"], [[1, 2], [3]])


def test_numpy_and_pandas_values():
    import numpy as np  # in the test extra: missing, this fails rather than skips
    back = codec.unpackb(codec.packb({"a": np.arange(3), "s": np.float32(1.5)}))
    assert back["s"] == 1.5 and back["a"].tolist() == [0, 1, 2]  # an array: EXT_NDARRAY
    import pandas as pd
    frame = pd.DataFrame({"x": [1, 2], "y": ["a", "b"]})
    back = codec.unpackb(codec.packb(frame))
    assert back == Dataset(["x", "y"], [[1, "a"], [2, "b"]], ["long", "str"])
    assert back.to_pandas().equals(frame)


@pytest.mark.parametrize("size", [0, 1, 14, 15, 16, 70_000])
def test_extend_map_appends_members_without_decoding_values(size):
    from bridge.codec import extend_map, pack_raw, unpack_raw
    original = {f"k{i}": i for i in range(size)}
    original["ext"] = msgpack.ExtType(7, b"opaque")
    out = extend_map(pack_raw(original), {"via": "primary", "n": 2})
    assert unpack_raw(out) == {**original, "via": "primary", "n": 2}


def test_extend_map_refuses_what_is_not_a_map():
    from bridge.codec import extend_map, pack_raw
    with pytest.raises(ValueError, match="not an encoded msgpack map"):
        extend_map(pack_raw([1, 2]), {"via": "x"})


@pytest.mark.parametrize("value, payload", [
    (2 ** 64, "010000000000000000"), (-(2 ** 64), "ff0000000000000000"),
    (-(2 ** 63) - 1, "ff7fffffffffffffff"), (2 ** 71 - 1, "7fffffffffffffffff"),
    (2 ** 71, "00800000000000000000"), (-(2 ** 71), "800000000000000000"),
])
def test_bigint_payload_is_javas_two_complement(value, payload):
    """The bytes Java's BigInteger.toByteArray() gives (and new BigInteger(byte[]) reads)."""
    assert codec.packb(value) == msgpack.packb(msgpack.ExtType(codec.EXT_BIGINT,
                                                               bytes.fromhex(payload)))
    assert codec.unpackb(codec.packb(value)) == value


def test_integers_past_the_str_limit_round_trip():
    n = 3 ** 300_000  # 143,137 digits: str(n) would raise ValueError (4,300-digit limit)
    assert codec.unpackb(codec.packb([n, -n])) == [n, -n]


@pytest.mark.parametrize("data, where, why", [
    (b"\x81\xa1v\xa5abc", "v", "ends early"),
    (b"\x81\xa1v\x92\x01\xc1", "v[1]", "0xc1"),
    (b"\x81\xa1v\xa2\xff\xfe", "v", "UTF-8"),
    (b"\x81\xa1v\x81\x91\x01\x02", "v{key 0}", "map key"),
    (b"\x81\xa1v\xc7\x05\xff" + b"\x00" * 5, "v", "timestamp extension (code -1) has 5 bytes"),
])
def test_pass_through_decoder_names_what_it_cannot_read(data, where, why):
    with pytest.raises(codec.DecodeError) as info:
        codec.unpack_raw(data)
    assert info.value.path == where and why in info.value.reason, str(info.value)


def test_explaining_a_huge_bad_frame_in_the_sidecar_looks_at_a_bounded_number_of_values():
    """The sidecar's loop explains a bad frame (maybe unauthenticated) within a value budget."""
    data = msgpack.packb({"v": [None] * 200_000})[:-1] + b"\xc1"
    with pytest.raises(codec.DecodeError) as info:
        codec.unpack_raw(data)
    assert f"past the first {codec.RAW_EXPLAIN_BUDGET:,} values" in str(info.value)
    with pytest.raises(codec.DecodeError) as info:  # the worker's budget is larger: named
        codec.unpackb(data)
    assert info.value.path == "v[199999]", str(info.value)


def test_a_position_never_echoes_a_huge_key():
    data = msgpack.packb({"k" * 100_000: [{"x" * 5000: None}] * 3})[:-1] + b"\xc1"
    with pytest.raises(codec.DecodeError) as info:
        codec.unpack_raw(data)
    assert len(str(info.value)) < 400 and info.value.path.endswith("...]"), str(info.value)


# Each decoder's outcome is pinned: the sidecar's raw decode (extensions left as ExtType) and
# the worker's full decode either give this exact value or a DecodeError saying why, never
# another exception; a decode that starts succeeding, or fails differently, fails here.
@pytest.mark.parametrize(("data", "raw", "full"), [
    # found by atheris: a Dataset payload that is a map
    (bytes.fromhex("d5018ff46f07d061"), "extra bytes follow the value", "the data ends early"),
    # found by atheris: an empty Dataset payload
    (bytes.fromhex("82c70001400040"), {msgpack.ExtType(1, b""): 64, 0: 64},
     "the data ends early"),
])
def test_inputs_the_coverage_guided_fuzzer_found(data, raw, full):
    for decode, expected in ((codec.unpack_raw, raw), (codec.unpackb, full)):
        if isinstance(expected, str):
            with pytest.raises(codec.DecodeError) as info:
                decode(data)
            assert expected in str(info.value), (decode.__name__, str(info.value))
        else:
            assert decode(data) == expected, decode.__name__


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
