"""Covers: bridge.dataset, bridge.codec.

Datasets column by column (extension 5, docs/protocol.md): numeric columns as one block,
nulls as a mask, pandas DataFrames both ways; the row-wise extension 1 still decodes."""
import datetime as dt

import msgpack
import numpy as np  # the test extra has both: missing, this fails, not skips
import pandas as pd
import pytest

from bridge import codec
from bridge.codec import Dataset


def _columns_payload(value):
    ext = codec.unpack_raw(codec.packb(value))
    assert ext.code == codec.EXT_COLUMNS
    return msgpack.unpackb(ext.data, raw=False, timestamp=3)


def test_a_dataframe_crosses_column_by_column_with_numeric_blocks():
    frame = pd.DataFrame({"i": np.arange(5), "f": np.linspace(0, 1, 5), "s": list("abcde"),
                          "b": [True, False, True, True, False]})
    columns, types, nrows, data = _columns_payload(frame)
    assert (columns, types, nrows) == (["i", "f", "s", "b"], ["long", "double", "str", "bool"], 5)
    assert [type(values) for values, _ in data] == [msgpack.ExtType, msgpack.ExtType, list,
                                                    msgpack.ExtType]
    assert all(nulls is None for _, nulls in data)
    back = codec.unpackb(codec.packb(frame))
    assert back.to_pandas().equals(frame)
    assert back.rows[0] == [0, 0.0, "a", True]


def test_numeric_columns_decode_as_numpy_arrays_over_the_payload():
    back = codec.unpackb(codec.packb(pd.DataFrame({"x": np.arange(1000.0)})))
    values, nulls = back.column_data()[0]
    assert isinstance(values, np.ndarray) and values.dtype == np.float64 and nulls is None
    assert not values.flags.writeable  # zero-copy, read-only (as ndarray_from)
    frame = back.to_pandas()
    frame.loc[0, "x"] = 5.0  # the DataFrame owns its data
    assert frame["x"].iloc[0] == 5.0


def test_nulls_cross_as_a_mask_and_come_back_as_pandas_nullable_columns():
    frame = pd.DataFrame({"n": pd.array([1, None, 3], dtype="Int64"),
                          "b": pd.array([True, None, False], dtype="boolean"),
                          "f": [1.5, np.nan, 2.5]})
    back = codec.unpackb(codec.packb(frame))
    assert back.rows == [[1, True, 1.5], [None, None, pytest.approx(np.nan, nan_ok=True)],
                         [3, False, 2.5]]
    again = codec.unpackb(codec.packb(frame)).to_pandas()
    assert str(again["n"].dtype) == "Int64" and again["n"].isna().tolist() == [False, True, False]
    assert str(again["b"].dtype) == "boolean"


def test_a_dataset_of_rows_crosses_as_lists_and_keeps_its_types():
    ds = Dataset(["id", "name", "when"], [[1, "pump", dt.datetime(2023, 1, 1, tzinfo=dt.UTC)],
                                           [None, None, None]], ["int", "str", "datetime"])
    columns, types, nrows, data = _columns_payload(ds)
    assert data[0] == [[1, None], None] and types == ["int", "str", "datetime"]
    assert codec.unpackb(codec.packb(ds)) == ds


def test_changed_rows_are_what_is_sent():
    back = codec.unpackb(codec.packb(pd.DataFrame({"x": [1, 2]})))
    back.rows[0][0] = 42
    assert codec.unpackb(codec.packb(back)).rows == [[42], [2]]


def test_a_typed_numeric_block_is_written_in_its_column_type():
    ds = Dataset.from_columns(["a", "b"], ["int", "float"],
                              [(np.array([1, 2], dtype=np.int64), None),
                               (np.array([0.5, 1.5]), np.array([False, True]))])
    _, _, _, data = _columns_payload(ds)
    a, b = (codec.ndarray_from(values.data) for values, _ in data)
    assert a.dtype.str == "<i4" and b.dtype.str == "<f4"
    assert codec.unpackb(codec.packb(ds)).rows == [[1, 0.5], [2, None]]


def test_the_row_wise_extension_still_decodes():
    old = msgpack.ExtType(codec.EXT_DATASET, msgpack.packb([["a"], ["long"], [[1], [2]]]))
    assert codec.unpackb(msgpack.packb(old)) == Dataset(["a"], [[1], [2]], ["long"])


@pytest.mark.parametrize("payload, where, why", [
    ([["a"], ["long"], -1, [[[1], None]]], ".rows", "non-negative"),
    ([["a"], ["long"], 1, []], ".data", "1 columns"),
    ([["a"], ["long"], 1, [[[1]]]], ".data[0]", "[values, nulls]"),
    ([["a"], ["long"], 2, [[[1], None]]], ".data[0]", "1 value(s) for 2 rows"),
    ([["a"], ["long", "str"], 0, [[[], None]]], ".types", "2 types for 1 columns"),
])
def test_malformed_column_payloads_name_their_position(payload, where, why):
    data = msgpack.packb({"v": msgpack.ExtType(codec.EXT_COLUMNS, msgpack.packb(payload))})
    with pytest.raises(codec.DecodeError) as info:
        codec.unpackb(data)
    assert f"v{where}" in str(info.value) and why in str(info.value), str(info.value)
