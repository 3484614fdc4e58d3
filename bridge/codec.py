"""msgpack with the extension types py3sidecar carries across process boundaries.

Owns: turning values into bytes and back with every extension (datetime, Decimal, big integers,
Datasets column by column, numpy arrays and pandas values) and naming where in a structure an
unsupported value sat. Must not touch: sockets, processes, the envelope's meaning (see
``protocol``), the Dataset value itself (``dataset``).

Two flavours:
- ``packb``/``unpackb``: full conversion, used by the worker and by CPython clients (here);
- ``pack_raw``/``unpack_raw``: the sidecar's pass-through, with the byte surgery on encoded
  maps and the success splice (``passthrough``, re-exported here). Extension values stay opaque
  (``msgpack.ExtType`` / ``msgpack.Timestamp``) so the supervisor never imports pandas or pays
  to rebuild a Dataset it only forwards.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import struct
from typing import Any

import msgpack

from bridge.dataset import COLUMN_DTYPES, COLUMN_TYPES, Dataset, column_values  # noqa: F401
from bridge.decode_check import DecodeError, explain
from bridge.passthrough import (  # noqa: F401 - re-exported: callers import them from here
    RAW_EXPLAIN_BUDGET,
    extend_map,
    extend_map_encoded,
    pack_raw,
    splice_success,
    unpack_raw,
)

EXT_DATASET = 1
EXT_DECIMAL = 2
EXT_BIGINT = 3
EXT_NDARRAY = 4  # u32 header length, msgpack [dtype.str, shape], the C-order buffer
EXT_COLUMNS = 5  # a Dataset column by column: [columns, types, nrows, [[values, nulls], ...]]

# dtypes that cross as one buffer (others, e.g. object or strings, still become lists)
NDARRAY_DTYPES = frozenset(f"{order}{kind}{size}" for order in "<>|" for kind, size in (
    ("b", 1), ("i", 1), ("i", 2), ("i", 4), ("i", 8), ("u", 1), ("u", 2), ("u", 4), ("f", 4),
    ("f", 8)))
_STRUCT_CODES = {"b1": "?", "i1": "b", "i2": "h", "i4": "i", "i8": "q", "u1": "B", "u2": "H",
                 "u4": "I", "f4": "f", "f8": "d"}

_INT64_MIN = -(2**63)
_UINT64_MAX = 2**64 - 1
_UTC = _dt.UTC


class EncodeError(TypeError):
    """A value that cannot cross the boundary; the message names its type and position."""


__all__ = ["DecodeError", "EncodeError", "Dataset", "packb", "unpackb", "pack_raw", "unpack_raw",
           "int_to_bytes", "int_from_bytes", "splice_success", "pack_buffer", "ndarray_ext",
           "ndarray_from", "dataset_ext"]


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
            data.append([column_values(values, nulls), None])
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
