"""The Dataset value: a table as Ignition sees one, and its pandas conversions.

Owns: ``Dataset`` (column names, column types, rows or columns of data), building its rows from
columns only when asked for, inferring a column's type from its values, and converting to and
from pandas DataFrames (numeric columns as numpy arrays, nulls as masks). Must not touch: bytes
and msgpack (the extension types are ``codec``'s), sockets, processes, the envelope.

pandas and numpy are optional: imported only inside the conversions that need them.
"""

from __future__ import annotations

import datetime as _dt
import decimal
from collections.abc import Iterable
from typing import Any

# Dataset column types whose columns cross as one numeric block (an EXT_NDARRAY of this dtype)
COLUMN_DTYPES = {"bool": "|b1", "int": "<i4", "long": "<i8", "float": "<f4", "double": "<f8"}
COLUMN_TYPES = ("bool", "int", "long", "float", "double", "str", "datetime", "decimal", "bytes",
                "object")


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
            cells = [column_values(values, nulls) for values, nulls in self._data or ()]
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
            return column_values(*self._data[i])
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


def column_values(values: Any, nulls: Any) -> list[Any]:
    out = values.tolist() if hasattr(values, "tolist") else list(values)
    if nulls is not None:
        out = [None if null else v for v, null in zip(out, nulls.tolist()
                                                      if hasattr(nulls, "tolist") else nulls)]
    return out


def _pandas_column(pd: Any, kind: str, values: Any, nulls: Any) -> Any:
    """One column for a DataFrame: numpy arrays as they are; nulls as pandas' masked arrays
    (Int64, boolean) or NaN (floats)."""
    if not hasattr(values, "dtype") or kind not in COLUMN_DTYPES:
        return column_values(values, nulls) if nulls is not None else list(values)
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
