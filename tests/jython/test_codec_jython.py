"""Codec round trips between Jython (py3sidecar.codec, msgpack-java) and CPython msgpack.

All Jython cases run in one JVM (session fixture); each becomes one pytest test here.
"""
from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path

import msgpack
import pytest

from . import jvm

CASES = jvm.JY / "cases_codec.py"
UTC = dt.UTC


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
    w("bigint", [_ext(3, str(2 ** 70).encode()), _ext(3, str(-2 ** 70).encode())])
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


@pytest.fixture(scope="module")
def jython_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("codec_cases")
    _write_cpython_side(folder)
    results = jvm.run_cases([CASES], {"PY3_CASE_DIR": str(folder)}, timeout=300)
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
    assert f("bigint") == [_ext(3, str(2 ** 70).encode()), _ext(3, str(-2 ** 70).encode())]
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
    assert f("biginteger") == [5, _ext(3, b"1" + b"0" * 30)]
    ds = f("dataset")
    assert ds.code == 1
    cols, types, rows = msgpack.unpackb(ds.data, raw=False, timestamp=3)
    assert cols == ["id", "name", "temp", "when"]
    assert types == ["int", "str", "double", "datetime"]
    assert rows == [[1, "pump", 20.5, dt.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)],
                    [2, None, -1.0, None]]
