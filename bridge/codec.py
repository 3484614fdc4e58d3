"""msgpack with the extension types py3sidecar carries across process boundaries.

Owns: turning values into bytes and back (datetime, Decimal, big integers, Datasets column by
column, numpy arrays and pandas values) and naming where in a structure an unsupported value
sat. Must not touch: sockets, processes, the envelope's meaning (see ``protocol``).

Two flavours:
- ``packb``/``unpackb``: full conversion, used by the worker and by CPython clients;
- ``pack_raw``/``unpack_raw``: the sidecar's pass-through. Extension values stay opaque
  (``msgpack.ExtType`` / ``msgpack.Timestamp``) so the supervisor never imports pandas or pays
  to rebuild a Dataset it only forwards.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import struct
from collections.abc import Iterable
from typing import Any

import msgpack

from bridge.decode_check import DecodeError, explain

EXT_DATASET = 1
EXT_DECIMAL = 2
EXT_BIGINT = 3
EXT_NDARRAY = 4  # u32 header length, msgpack [dtype.str, shape], the C-order buffer
EXT_COLUMNS = 5  # a Dataset column by column: [columns, types, nrows, [[values, nulls], ...]]

# Dataset column types whose columns cross as one numeric block (an EXT_NDARRAY of this dtype)
COLUMN_DTYPES = {"bool": "|b1", "int": "<i4", "long": "<i8", "float": "<f4", "double": "<f8"}

# dtypes that cross as one buffer (others, e.g. object or strings, still become lists)
NDARRAY_DTYPES = frozenset(f"{order}{kind}{size}" for order in "<>|" for kind, size in (
    ("b", 1), ("i", 1), ("i", 2), ("i", 4), ("i", 8), ("u", 1), ("u", 2), ("u", 4), ("f", 4),
    ("f", 8)))
_STRUCT_CODES = {"b1": "?", "i1": "b", "i2": "h", "i4": "i", "i8": "q", "u1": "B", "u2": "H",
                 "u4": "I", "f4": "f", "f8": "d"}

_INT64_MIN = -(2**63)
_UINT64_MAX = 2**64 - 1
_UTC = _dt.UTC

COLUMN_TYPES = ("bool", "int", "long", "float", "double", "str", "datetime", "decimal", "bytes",
                "object")


class EncodeError(TypeError):
    """A value that cannot cross the boundary; the message names its type and position."""


__all__ = ["DecodeError", "EncodeError", "Dataset", "packb", "unpackb", "pack_raw", "unpack_raw",
           "int_to_bytes", "int_from_bytes", "splice_success", "pack_buffer", "ndarray_ext",
           "ndarray_from", "dataset_ext"]


class Dataset:
    """A table as Ignition sees one: column names, column types and rows.

    Arrives in the worker for an Ignition Dataset; returned from user code it becomes an
    Ignition Dataset again. ``to_pandas()``/``from_pandas()`` convert when pandas is installed.
    A Dataset that crossed the wire (or came from pandas) holds its columns (numeric ones as
    numpy arrays): ``rows`` is built from them only when asked for, and ``to_pandas()`` and
    the encoder use the columns as they are.
    """

    __slots__ = ("columns", "types", "_rows", "_data")

    def __init__(self, columns: Iterable[str], rows: Iterable[Iterable[Any]] = (),
                 types: Iterable[str] | None = None) -> None:
        self.columns = [str(c) for c in columns]
        self._data: list[tuple[Any, Any]] | None = None
        self._rows = [list(r) for r in rows]
        for i, row in enumerate(self._rows):
            if len(row) != len(self.columns):
                raise ValueError(f"Dataset row {i} has {len(row)} values for "
                                 f"{len(self.columns)} columns")
        self.types = list(types) if types is not None else [
            _infer_type(r[i] for r in self._rows) for i in range(len(self.columns))]
        if len(self.types) != len(self.columns):
            raise ValueError(f"Dataset has {len(self.columns)} columns but {len(self.types)} types")

    @classmethod
    def from_columns(cls, columns: Iterable[str], types: Iterable[str],
                     data: Iterable[tuple[Any, Any]]) -> "Dataset":
        """A Dataset over column data: per column ``(values, nulls)``, values a list or a numpy
        array, nulls None or a sequence of booleans (True: the cell is null)."""
        ds = cls.__new__(cls)
        ds.columns = [str(c) for c in columns]
        ds.types = list(types)
        ds._data = [(values, nulls) for values, nulls in data]
        ds._rows = None
        if not (len(ds.types) == len(ds.columns) == len(ds._data)):
            raise ValueError(f"Dataset has {len(ds.columns)} columns, {len(ds.types)} types and "
                             f"{len(ds._data)} columns of data")
        return ds

    @property
    def rows(self) -> list[list[Any]]:
        if self._rows is None:
            cells = [_column_values(values, nulls) for values, nulls in self._data or ()]
            self._rows = [list(r) for r in zip(*cells)] if cells else []
            # From now on the rows are the truth (the caller may change them in place).
            self._data = None
        return self._rows

    @rows.setter
    def rows(self, rows: Iterable[Iterable[Any]]) -> None:
        self._rows = [list(r) for r in rows]
        self._data = None

    def column_data(self) -> list[tuple[Any, Any]]:
        """Per column ``(values, nulls)`` (see ``from_columns``); from the rows if need be."""
        if self._data is None:
            return [([r[i] for r in self._rows], None) for i in range(len(self.columns))]
        return self._data

    def __len__(self) -> int:
        if self._data is not None:
            return len(self._data[0][0]) if self._data else 0
        return len(self._rows)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Dataset) and self.columns == other.columns
                and self.types == other.types and self.rows == other.rows)

    def __repr__(self) -> str:
        return f"Dataset(columns={self.columns!r}, types={self.types!r}, rows={len(self)})"

    def column(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        if self._data is not None:
            return _column_values(*self._data[i])
        return [r[i] for r in self.rows]

    def to_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r)) for r in self.rows]

    def to_pandas(self) -> Any:
        import pandas as pd  # optional dependency, imported only when asked for

        if self._data is None:
            frame = pd.DataFrame(self._rows, columns=self.columns)
        else:
            series = {i: _pandas_column(pd, kind, values, nulls)
                      for i, (kind, (values, nulls)) in enumerate(zip(self.types, self._data))}
            frame = pd.DataFrame(series, index=pd.RangeIndex(len(self)), copy=True)
            frame.columns = self.columns
        for name, kind in zip(self.columns, self.types):
            if kind == "datetime":
                frame[name] = pd.to_datetime(frame[name], utc=True)
        return frame

    @classmethod
    def from_pandas(cls, frame: Any) -> "Dataset":
        columns = [str(c) for c in frame.columns]
        types, data = [], []
        for i in range(frame.shape[1]):
            kind, values, nulls = _from_series(frame.iloc[:, i])
            types.append(kind)
            data.append((values, nulls))
        return cls.from_columns(columns, types, data)


def _column_values(values: Any, nulls: Any) -> list[Any]:
    out = values.tolist() if hasattr(values, "tolist") else list(values)
    if nulls is not None:
        out = [None if null else v for v, null in zip(out, nulls.tolist()
                                                      if hasattr(nulls, "tolist") else nulls)]
    return out


def _pandas_column(pd: Any, kind: str, values: Any, nulls: Any) -> Any:
    """One column for a DataFrame: numpy arrays as they are; nulls as pandas' masked arrays
    (Int64, boolean) or NaN (floats)."""
    if not hasattr(values, "dtype") or kind not in COLUMN_DTYPES:
        return _column_values(values, nulls) if nulls is not None else list(values)
    if nulls is None or not nulls.any():
        return values
    import numpy as np

    mask = np.asarray(nulls, dtype=bool)
    if values.dtype.kind == "f":
        return np.where(mask, np.nan, values)
    if values.dtype.kind == "b":
        return pd.arrays.BooleanArray(values.copy(), mask.copy())
    return pd.arrays.IntegerArray(values.copy(), mask.copy())


def _from_series(series: Any) -> tuple[str, Any, Any]:
    """(type, values, nulls) of one pandas column, numeric ones as numpy arrays."""
    import numpy as np

    kind = _pandas_type(series)
    dtype = series.dtype
    if kind in ("bool", "long", "double") and dtype.kind in "biuf":
        if isinstance(dtype, np.dtype):
            target = {"bool": bool, "long": np.int64, "double": np.float64}[kind]
            return kind, series.to_numpy().astype(target, copy=False), None
        nulls = series.isna().to_numpy()  # a nullable extension dtype (Int64, boolean, Float64)
        fill = False if kind == "bool" else 0
        target = {"bool": bool, "long": np.int64, "double": np.float64}[kind]
        return kind, series.to_numpy(dtype=target, na_value=fill), nulls if nulls.any() else None
    missing = series.isna().tolist()  # None, NaN, NaT, pd.NA: a null cell
    values = [None if null else v for v, null in zip(series.tolist(), missing)]
    if kind == "datetime":
        values = [None if v is None else v.to_pydatetime() for v in values]
    elif dtype.kind not in "biufM":
        kind = _infer_type(values)
    return kind, values, None


def _infer_type(values: Iterable[Any]) -> str:
    for v in values:
        if v is None:
            continue
        if isinstance(v, bool):
            return "bool"
        if isinstance(v, int):
            return "long"
        if isinstance(v, float):
            return "double"
        if isinstance(v, str):
            return "str"
        if isinstance(v, _dt.datetime):
            return "datetime"
        if isinstance(v, decimal.Decimal):
            return "decimal"
        if isinstance(v, (bytes, bytearray)):
            return "bytes"
        return "object"
    return "object"


def _pandas_type(series: Any) -> str:
    kind = series.dtype.kind
    if kind == "b":
        return "bool"
    if kind in "iu":
        return "long"
    if kind == "f":
        return "double"
    if kind == "M":
        return "datetime"
    return _infer_type(series.tolist())


# ---------------------------------------------------------------- encoding

def _default(obj: Any) -> Any:
    if isinstance(obj, _dt.datetime):  # naive (aware ones are packed natively): taken as UTC
        return msgpack.Timestamp.from_datetime(obj.replace(tzinfo=_UTC))
    if isinstance(obj, int):  # only reached outside the 64-bit range
        return msgpack.ExtType(EXT_BIGINT, int_to_bytes(obj))
    if isinstance(obj, decimal.Decimal):
        return msgpack.ExtType(EXT_DECIMAL, str(obj).encode())
    if isinstance(obj, Dataset):
        return dataset_ext(obj)
    module = type(obj).__module__.partition(".")[0]
    if module == "numpy" and type(obj).__name__ == "ndarray" and obj.dtype.str in NDARRAY_DTYPES:
        return ndarray_ext(obj)
    if module == "numpy" and hasattr(obj, "tolist"):
        return obj.tolist()
    if module == "pandas":
        if type(obj).__name__ == "DataFrame":
            return _default(Dataset.from_pandas(obj))
        if type(obj).__name__ == "Series":
            return obj.tolist()
        if type(obj).__name__ == "Timestamp":
            value = obj.to_pydatetime()
            return value if value.tzinfo else _default(value)
    raise TypeError(type(obj))


def dataset_ext(ds: Dataset) -> msgpack.ExtType:
    """A Dataset column by column (``EXT_COLUMNS``): a numeric column held as a numpy array is
    one block (``EXT_NDARRAY``), its nulls a boolean block; other columns are lists."""
    data = []
    for kind, (values, nulls) in zip(ds.types, ds.column_data()):
        dtype = COLUMN_DTYPES.get(kind)
        if dtype is not None and hasattr(values, "dtype") and values.ndim == 1:
            block = ndarray_ext(values if values.dtype.str == dtype else values.astype(dtype))
            mask = None
            if nulls is not None:
                import numpy as np

                mask = np.asarray(nulls, dtype=bool)
                mask = ndarray_ext(mask) if mask.any() else None
            data.append([block, mask])
        else:
            data.append([_column_values(values, nulls), None])
    return msgpack.ExtType(EXT_COLUMNS, packb([ds.columns, ds.types, len(ds), data]))


def ndarray_ext(array: Any) -> msgpack.ExtType:
    """A numeric numpy array as one buffer (``EXT_NDARRAY``): no per-element objects."""
    import numpy as np  # the value is a numpy array: numpy is there

    header = msgpack.packb([array.dtype.str, list(array.shape)])
    data = np.ascontiguousarray(array).data  # a view when already C-contiguous
    return msgpack.ExtType(EXT_NDARRAY, b"".join((len(header).to_bytes(4, "big"), header,
                                                  data.cast("B"))))


def ndarray_from(data: bytes) -> Any:
    """An ``EXT_NDARRAY`` payload as a read-only numpy array over ``data`` (no copy), or, when
    numpy is not installed, as nested lists."""
    try:
        size = int.from_bytes(data[:4], "big")
        dtype, shape = msgpack.unpackb(data[4:4 + size])
        shape = tuple(int(n) for n in shape)
    except Exception:  # noqa: BLE001 - msgpack raises several types for junk
        raise DecodeError("", "the ndarray extension (code 4) must hold a 4-byte header "
                              "length, [dtype, shape] and the buffer") from None
    if not (isinstance(dtype, str) and dtype in NDARRAY_DTYPES):
        raise DecodeError("", f"the ndarray extension (code 4) has dtype {dtype!r}; expected "
                              "one of the numeric dtypes (e.g. '<f8', '<i8', '|b1')")
    count = 1
    for n in shape:
        count *= n
    body = memoryview(data)[4 + size:]
    if len(body) != count * int(dtype[2:]):
        raise DecodeError("", f"the ndarray extension (code 4) holds {len(body)} bytes for "
                              f"shape {list(shape)} of {dtype}")
    try:
        import numpy as np
    except ImportError:
        return _ndarray_as_lists(body, dtype, shape)
    return np.frombuffer(body, dtype=dtype).reshape(shape)


def _ndarray_as_lists(body: memoryview, dtype: str, shape: tuple[int, ...]) -> Any:
    code = _STRUCT_CODES[dtype[1:]]
    native = "<" if struct.pack("=H", 1) == b"\x01\x00" else ">"
    if dtype[0] in ("|", native):
        flat = body.cast(code).tolist()
    else:
        flat = list(struct.unpack(f"{dtype[0]}{len(body) // struct.calcsize(code)}{code}", body))
    for n in reversed(shape[1:]):
        flat = [flat[i:i + n] for i in range(0, len(flat), n)]
    return flat if shape else flat[0]


def pack_buffer(obj: Any) -> memoryview:
    """``packb`` without the final copy into ``bytes``: a view of the packer's buffer (the
    worker's replies; a large value is copied once fewer)."""
    packer = msgpack.Packer(default=_default, datetime=True, use_bin_type=True, autoreset=False)
    try:
        packer.pack(obj)
    except (TypeError, ValueError, OverflowError) as exc:
        raise _explain(obj, exc) from None
    return packer.getbuffer()


def packb(obj: Any) -> bytes:
    """Encode with every extension; raise ``EncodeError`` naming the bad value's position."""
    try:
        return msgpack.packb(obj, default=_default, datetime=True, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise _explain(obj, exc) from None


def int_to_bytes(value: int) -> bytes:
    """The bigint extension's payload: big-endian two's complement, as few bytes as hold the
    sign (Java's ``BigInteger.toByteArray()``). Linear in the number's size, unlike ``str``."""
    length = (value if value >= 0 else ~value).bit_length() // 8 + 1
    return value.to_bytes(length, "big", signed=True)


def int_from_bytes(data: bytes) -> int:
    """The inverse of ``int_to_bytes`` (Java's ``new BigInteger(byte[])``)."""
    if not data:
        raise DecodeError("", "the bigint extension (code 3) is empty; it carries the integer "
                              "as big-endian two's-complement bytes")
    return int.from_bytes(data, "big", signed=True)


def _decimal_from(data: bytes) -> decimal.Decimal:
    try:
        return decimal.Decimal(data.decode("utf-8"))
    except (UnicodeDecodeError, decimal.InvalidOperation):
        shown = data[:40].decode("utf-8", "replace") + ("..." if len(data) > 40 else "")
        raise DecodeError("", f"the decimal extension (code 2) holds {shown!r}, which is not "
                              "a decimal number in UTF-8 text (e.g. '12.50')") from None


def _dataset_from(data: bytes) -> Dataset:
    """A Dataset from its payload, each shape fault named (``.rows[3]``: see decode_check)."""
    parts = unpackb(data)
    if not (isinstance(parts, list) and len(parts) == 3):
        raise DecodeError("", "the Dataset extension (code 1) must hold [columns, types, rows]")
    columns, types, rows = parts
    for name, member in (("columns", columns), ("types", types)):
        if not (isinstance(member, list) and all(isinstance(c, str) for c in member)):
            raise DecodeError(f".{name}", "it must be a list of strings")
    if len(types) != len(columns):
        raise DecodeError(".types", f"{len(types)} types for {len(columns)} columns")
    if not isinstance(rows, list):
        raise DecodeError(".rows", "it must be a list of rows")
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(columns):
            size = (f"{len(row)} value(s)" if isinstance(row, list)
                    else f"a {type(row).__name__}, not a list,")
            raise DecodeError(f".rows[{i}]", f"the row has {size} for {len(columns)} columns")
    return Dataset(columns, rows, types)


def _columns_from(data: bytes) -> Dataset:
    """A Dataset from its column-wise payload (``EXT_COLUMNS``), each shape fault named
    (``.data[2]``: see decode_check)."""
    parts = unpackb(data)
    if not (isinstance(parts, list) and len(parts) == 4):
        raise DecodeError("", "the column-wise Dataset extension (code 5) must hold "
                              "[columns, types, rows, data]")
    columns, types, nrows, data = parts
    for name, member in (("columns", columns), ("types", types)):
        if not (isinstance(member, list) and all(isinstance(c, str) for c in member)):
            raise DecodeError(f".{name}", "it must be a list of strings")
    if len(types) != len(columns):
        raise DecodeError(".types", f"{len(types)} types for {len(columns)} columns")
    if not (type(nrows) is int and nrows >= 0):
        raise DecodeError(".rows", f"the row count must be a non-negative integer, not {nrows!r}")
    if not (isinstance(data, list) and len(data) == len(columns)):
        raise DecodeError(".data", f"it must be a list of {len(columns)} columns")
    out = []
    for i, member in enumerate(data):
        if not (isinstance(member, list) and len(member) == 2):
            raise DecodeError(f".data[{i}]", "a column must be [values, nulls]")
        values, nulls = member
        size = len(values) if isinstance(values, list) or getattr(values, "ndim", 0) == 1 else None
        if size != nrows:
            shown = f"{size} value(s)" if size is not None else f"a {type(values).__name__}"
            raise DecodeError(f".data[{i}]", f"the column has {shown} for {nrows} rows")
        if nulls is not None and not (  # a |b1 block (a list of bools without numpy)
                getattr(nulls, "dtype", None) is not None and nulls.dtype.kind == "b"
                and nulls.shape == (nrows,)
                or isinstance(nulls, list) and len(nulls) == nrows
                and all(type(n) is bool for n in nulls)):
            raise DecodeError(f".data[{i}]", f"its nulls must be {nrows} booleans (|b1) or nil")
        out.append((values, nulls))
    return Dataset.from_columns(columns, types, out)


def _ext_hook(code: int, data: bytes) -> Any:
    if code == EXT_COLUMNS:
        return _columns_from(data)
    if code == EXT_DATASET:
        return _dataset_from(data)
    if code == EXT_DECIMAL:
        return _decimal_from(data)
    if code == EXT_BIGINT:
        return int_from_bytes(data)
    if code == EXT_NDARRAY:
        return ndarray_from(data)
    return msgpack.ExtType(code, data)


_NESTED = {EXT_DATASET: ("columns", "types", "rows"),
           EXT_COLUMNS: ("columns", "types", "rows", "data")}
RAW_EXPLAIN_BUDGET = 20_000  # values the sidecar's decoder looks at to name a bad one


def unpackb(data: bytes, root: str = "") -> Any:
    """Decode with every extension (datetimes come back aware, in UTC).

    Raises ``DecodeError`` (a ``ValueError``) naming where the first bad value sat, relative to
    ``root`` (an envelope's members read ``vars['v']``, ``args[0][2]``).
    """
    try:
        return msgpack.unpackb(data, ext_hook=_ext_hook, timestamp=3, raw=False,
                               strict_map_key=False)
    except Exception as exc:  # noqa: BLE001 - msgpack and the converters raise many types
        raise explain(data, exc, root=root, convert=_ext_hook, nested=_NESTED) from None


def pack_raw(obj: Any) -> bytes:
    """The sidecar's encoder: extension values are forwarded as they came."""
    return msgpack.packb(obj, use_bin_type=True)


def unpack_raw(data: bytes) -> Any:
    """The sidecar's decoder: extension values stay opaque (see module docstring); raises
    ``DecodeError`` naming where the first undecodable value sat."""
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:  # noqa: BLE001 - msgpack raises several types for junk
        # The loop thread explains this (maybe before authentication): a small budget keeps
        # a frame of millions of tiny values from stalling it (about 20 ms at most).
        raise explain(data, exc, budget=RAW_EXPLAIN_BUDGET) from None


def extend_map(data: bytes, members: dict[str, Any]) -> bytes:
    """Append ``members`` to the encoded map ``data`` without decoding its values.

    Rewrites only the header (fixmap, map16 or map32; a fixmap that outgrows 15 members becomes
    a map16) and appends the new key/value pairs. The keys must not already be in the map.
    """
    tail = b"".join(pack_raw(k) + pack_raw(v) for k, v in members.items())
    return extend_map_encoded(data, len(members), tail)


def extend_map_encoded(data: bytes, added: int, tail: bytes) -> bytes:
    """``extend_map`` with the ``added`` members already encoded as ``tail`` (hot paths)."""
    head = data[0]
    view = memoryview(data)  # the body is copied once, into the result, never sliced first
    if 0x80 <= head <= 0x8F:
        count, body = head & 0x0F, view[1:]
    elif head == 0xDE:
        count, body = int.from_bytes(data[1:3], "big"), view[3:]
    elif head == 0xDF:
        count, body = int.from_bytes(data[1:5], "big"), view[5:]
    else:
        raise ValueError(f"not an encoded msgpack map (first byte 0x{head:02x})")
    count += added
    if count <= 15:
        header = bytes((0x80 | count,))
    elif count <= 0xFFFF:
        header = b"\xde" + count.to_bytes(2, "big")
    else:
        header = b"\xdf" + count.to_bytes(4, "big")
    return b"".join((header, body, tail))


# ---------------------------------------------------------------- the worker's success reply

# A worker's success reply (``sidecar.worker.Worker.run_call``) is a 6-member fixmap whose first
# members are ok: true, ms and cpu, the two times float64s at fixed offsets. The sidecar
# forwards it without decoding the value: a new header, id, worker, then the worker's members.
_OK_PREFIX = b"\x86\xa2ok\xc3\xa2ms\xcb"
_CPU_KEY = b"\xa3cpu\xcb"
_TIMES = struct.Struct(">d5xd")  # ms at offset 9, then _CPU_KEY, then cpu at offset 22
_SPLICED_HEADER = b"\x88\xa2id"
_WORKER_KEY = b"\xa6worker"


def splice_success(frame: bytes, rid: Any, worker: int) -> tuple[bytes, float, float] | None:
    """The client's reply for a worker's success ``frame`` with ``id`` and ``worker`` spliced
    in front, and the call's wall and CPU milliseconds; None when ``frame`` does not have the
    success layout (an error, or a layout this fast path does not know): decode it instead."""
    if frame[:9] != _OK_PREFIX or frame[17:22] != _CPU_KEY or len(frame) < 30:
        return None
    wall, cpu = _TIMES.unpack_from(frame, 9)
    # memoryview: the worker's members are copied once, into the joined reply
    return (_SPLICED_HEADER + pack_raw(rid) + _WORKER_KEY + pack_raw(worker)
            + memoryview(frame)[1:],
            wall, cpu)


# ---------------------------------------------------------------- error positions

def _explain(obj: Any, exc: Exception) -> EncodeError:
    path, bad = _find_unsupported(obj, "value")
    if bad is None:
        return EncodeError(f"value cannot be encoded: {exc}")
    return EncodeError(
        f"{path} is of type {type(bad).__module__}.{type(bad).__qualname__}, which cannot be "
        "sent across the bridge; convert it to a supported type (None, bool, int, float, str, "
        "bytes, list, dict, datetime, Decimal, Dataset, numpy/pandas values)")


def _find_unsupported(obj: Any, path: str, depth: int = 0) -> tuple[str, Any]:
    if depth > 200:
        return path, obj
    if obj is None or isinstance(obj, (bool, float, str, bytes, bytearray, memoryview,
                                       _dt.datetime, decimal.Decimal, Dataset,
                                       msgpack.ExtType)):
        if isinstance(obj, Dataset):
            return _find_unsupported(obj.rows, f"{path}.rows", depth + 1)
        return "", None
    if isinstance(obj, int):
        return "", None
    if isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            p, bad = _find_unsupported(item, f"{path}[{i}]", depth + 1)
            if p:
                return p, bad
        return "", None
    if isinstance(obj, dict):
        for key, item in obj.items():
            if not isinstance(key, (str, int, bytes)):
                return f"{path} key {key!r}", key
            p, bad = _find_unsupported(item, f"{path}[{key!r}]", depth + 1)
            if p:
                return p, bad
        return "", None
    try:
        converted = _default(obj)
    except TypeError:
        return path, obj
    return _find_unsupported(converted, path, depth + 1)
