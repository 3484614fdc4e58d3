"""Covers: ignition-scripts/ignition/script-python/py3sidecar/codec,
    ignition-scripts/ignition/script-python/py3sidecar/decoder, bridge.codec.

Codec round trips between Jython (py3sidecar.codec, msgpack-java) and CPython msgpack.

All Jython cases run in one JVM (session fixture); each becomes one pytest test here.
"""
from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path

import msgpack
import pytest

from bridge import codec

from . import jvm

CASES = jvm.JY / "cases_codec.py"
UTC = dt.UTC
HUGE = 7 * 10 ** 99_999 + 12345  # the Jython case builds the same number
HUGE_NEGATIVE_EDGE = -(2 ** 332_191)  # a power of two: its two's complement is one 1-bit


def _ext(code, obj):
    return msgpack.ExtType(code, obj)


def _write_cpython_side(folder: Path) -> None:
    out = folder / "from_cpython"
    out.mkdir(parents=True)

    def w(name, value, **kw):
        data = msgpack.packb(value, use_bin_type=True, datetime=True, **kw)
        (out / f"{name}.bin").write_bytes(data)

    w("none", None)
    w("bools", [True, False])
    w("ints", [0, 1, -1, 127, 128, -33, 2 ** 31, -2 ** 31 - 1, 2 ** 63 - 1, -2 ** 63])
    w("uint64", 2 ** 64 - 1)
    w("bigint", [_ext(3, codec.int_to_bytes(2 ** 70)), _ext(3, codec.int_to_bytes(-2 ** 70))])
    # 100,000 digits (past CPython's 4,300-digit int/str limit), both signs, by the real codec
    (out / "hugeint.bin").write_bytes(codec.packb([HUGE, -HUGE, HUGE_NEGATIVE_EDGE]))
    w("floats", [1.5, -2.25, 1e300])
    w("strings", ["h\u00e9llo \u20ac", ""])
    w("bytes", b"\x00\x01\x7f\x80\xff")
    w("nested", {"a": [1, {"b": None}], "c": [1, 2]})
    w("date", dt.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC))
    w("date_ts64", msgpack.Timestamp(1700000000, 123000000))
    w("date_pre1970", msgpack.Timestamp(-86400 * 365, 0))
    w("decimal", _ext(2, b"12.50"))
    inner = msgpack.packb([["id", "name", "when"], ["int", "str", "datetime"],
                           [[1, "pump", msgpack.Timestamp(1700000000, 0)], [2, None, None]]],
                          use_bin_type=True)
    w("dataset", _ext(1, inner))
    w("ext_unknown", _ext(42, b"x"))
    w("dataset_rows_legacy", _ext(1, msgpack.packb([["a", "b"], ["long", "double"],
                                                    [[1, 0.5], [None, 2.5]]])))
    _write_columns_side(out)
    import numpy as np  # in the test extra: missing, it fails rather than skips
    (out / "ndarray.bin").write_bytes(codec.packb([
        np.arange(6, dtype="<f8").reshape(2, 3), np.array([1, -2], dtype=">i4"),
        np.array([True, False]), np.array([255, 0], dtype="u1"), np.array(2**40, dtype="<i8"),
        np.array([4000000000], dtype="<u4"), np.array([-1.5], dtype="<f4")]))


def _write_columns_side(out: Path) -> None:
    """Column-wise Datasets (extension 5) as the worker writes them: from a DataFrame with
    nulls in every kind of column, and one of no rows."""
    import pandas as pd  # in the test extra: missing, it fails rather than skips
    frame = pd.DataFrame({
        "i": pd.array([1, None, -3], dtype="Int64"), "f": [0.5, float("nan"), -2.25],
        "s": ["a", None, "\u20ac"], "b": pd.array([True, None, False], dtype="boolean"),
        "t": pd.to_datetime(["2023-11-14T22:13:20.123Z", None, "1969-12-31T00:00:00.000Z"]),
        "i32": pd.Series([7, 8, 9], dtype="int32")})
    (out / "dataset_columns.bin").write_bytes(codec.packb(frame))
    (out / "dataset_empty.bin").write_bytes(codec.packb(frame.iloc[0:0]))
    # a typed Dataset: an int column (Integer cells), a float column
    ds = codec.Dataset(["n", "x"], [[1, 1.5], [2, None]], ["int", "float"])
    (out / "dataset_typed.bin").write_bytes(codec.packb(ds))


@pytest.fixture(scope="module", params=sorted(jvm.LIBRARY_VARIANTS))
def jython_run(request, tmp_path_factory):
    """Every case twice: with the gateway helper jar and without it (pure-Jython codec)."""
    folder = tmp_path_factory.mktemp(f"codec_cases_{request.param}")
    _write_cpython_side(folder)
    variant = jvm.LIBRARY_VARIANTS[request.param]
    results = jvm.run_cases([CASES], {"PY3_CASE_DIR": str(folder),
                                      "PY3_EXPECT_HELPER": "1" if variant["helper"] else "0"},
                            timeout=300, jars=jvm.gateway_jars(**variant))
    return folder, results


@pytest.mark.parametrize("name", jvm.case_names(CASES))
def test_jython_case(jython_run, name):
    _, results = jython_run
    jvm.assert_case_passed(results, "cases_codec", name)


def _from_jython(folder: Path, name: str):
    raw = (folder / "from_jython" / f"{name}.bin").read_bytes()
    return msgpack.unpackb(raw, raw=False, timestamp=3, strict_map_key=False)


def test_jython_encoding_decodes_in_cpython(jython_run):
    folder, results = jython_run
    assert results.get("cases_codec::test_encode_every_type", ("MISSING",))[0] == "PASS"
    f = lambda n: _from_jython(folder, n)  # noqa: E731
    assert f("none") is None
    assert f("bools") == [True, False]
    assert f("ints") == [0, 1, -1, 127, 128, -33, 2 ** 31, -2 ** 31 - 1, 2 ** 63 - 1, -2 ** 63]
    assert f("uint64") == 2 ** 64 - 1
    assert f("bigint") == [_ext(3, codec.int_to_bytes(2 ** 70)),
                           _ext(3, codec.int_to_bytes(-2 ** 70))]
    assert f("floats") == [1.5, -2.25, 1e300]
    assert f("strings") == ["h\u00e9llo \u20ac", "", "plain"]
    assert f("bytes") == b"\x00\x01\x7f\x80\xff"
    assert f("bytearray") == b"\x00\xff"
    assert f("nested") == {"a": [1, {"b": None}], "c": [1, 2]}
    assert f("java_collections") == {"k": [1, 2, 3]}
    assert f("date") == dt.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    assert f("pydatetime") == dt.datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    assert f("decimal") == [_ext(2, b"12.50"), _ext(2, b"-0.001")]
    assert [decimal.Decimal(e.data.decode()) for e in f("decimal")] == [
        decimal.Decimal("12.50"), decimal.Decimal("-0.001")]
    assert f("biginteger") == [5, _ext(3, codec.int_to_bytes(10 ** 30))]
    ds = f("dataset")
    assert ds.code == codec.EXT_COLUMNS  # column-wise: numeric columns as blocks
    back = codec.unpackb(msgpack.packb(ds))
    assert back.columns == ["id", "name", "temp", "when"]
    assert back.types == ["int", "str", "double", "datetime"]
    assert back.rows == [
        [1, "pump", 20.5, dt.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)],
        [2, None, -1.0, None]]


def test_jython_datasets_decode_in_cpython_column_by_column(jython_run):
    folder, results = jython_run
    assert results.get("cases_codec::test_encode_datasets_column_wise", ("MISSING",))[0] == "PASS"
    raw = (folder / "from_jython" / "datasets.bin").read_bytes()
    ext = codec.unpack_raw(raw)
    assert [e.code for e in ext] == [codec.EXT_COLUMNS] * len(ext)
    # numeric columns are one block each (extension 4), nulls a mask
    first = msgpack.unpackb(ext[0].data, raw=False, timestamp=3)
    assert [type(values).__name__ for values, _ in first[3]] == [
        "ExtType", "ExtType", "ExtType", "list", "ExtType", "list"]
    got = codec.unpackb(raw)
    for ds in got:
        assert ds.columns == ["id", "temp", "n", "name", "on", "when"]
        assert ds.types == ["int", "double", "long", "str", "bool", "datetime"]
        assert ds.rows == [
            [1, 20.5, 2 ** 40, "pump", True, dt.datetime(2023, 11, 14, 22, 13, 20, 123000,
                                                          tzinfo=UTC)],
            [None, None, None, None, None, None],
            [-7, -1.0, -(2 ** 63), "\u20ac", False, None]]
    frame = codec.unpackb(raw)[0].to_pandas()  # from the columns (rows untouched)
    assert str(frame["id"].dtype) == "Int32", frame.dtypes
    assert frame["temp"].isna().tolist() == [False, True, False]


def test_huge_integers_from_jython_decode_in_cpython(jython_run):
    folder, results = jython_run
    assert results.get("cases_codec::test_encode_huge_integers", ("MISSING",))[0] == "PASS"
    raw = (folder / "from_jython" / "hugeint.bin").read_bytes()
    assert codec.unpackb(raw) == [HUGE, -HUGE, HUGE_NEGATIVE_EDGE]


def test_big_integer_codec_scales_linearly_in_both_codecs(jython_run):
    """Prints time-per-digit ratios (1M vs 10k digits; ~1 = linear, ~100 = quadratic) for the
    Jython codec (measured in the JVM) and the CPython codec (here). Asserts correctness only:
    speed figures are printed, never asserted (docs: benchmarks are same-run ratios)."""
    import json
    import time

    folder, results = jython_run
    assert results.get("cases_codec::test_big_integer_scaling", ("MISSING",))[0] == "PASS"
    jython = json.loads((folder / "from_jython" / "scaling.json").read_text())
    cpython = {}
    for digits in (10_000, 100_000, 1_000_000):
        n = int.from_bytes(b"\x5a" * int(digits / 2.40824), "big")
        rounds = max(1, 2_000_000 // digits)
        started = time.perf_counter()
        for _ in range(rounds):
            assert codec.unpackb(codec.packb(n)) == n
        cpython[str(digits)] = (time.perf_counter() - started) / rounds
    for name, figures in (("Jython", jython), ("CPython", cpython)):
        per_digit = {d: figures[d] / int(d) for d in figures}
        print(f"\n{name} bigint encode+decode, time per digit relative to 10k digits: "
              + ", ".join(f"{int(d):,} digits x{per_digit[d] / per_digit['10000']:.2f}"
                          for d in sorted(per_digit, key=int)))
