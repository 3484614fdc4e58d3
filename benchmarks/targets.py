"""Call targets the benchmarks send to a worker (``benchmarks.targets:describe``) and hand to
the peers (ProcessPoolExecutor pickles them by name), so both sides run the same function.

Owns: nothing but these few functions. Must not touch: anything (they run inside workers).
"""

from __future__ import annotations

from typing import Any

from bridge.codec import Dataset


def row_count(dataset: Dataset) -> int:
    """The value sent, reduced to an int: the figure is the request."""
    return len(dataset)


def describe(dataset: Dataset) -> Dataset:
    """``DataFrame.describe()`` of the value, back as a Dataset (the issue's realistic call)."""
    return Dataset.from_pandas(dataset.to_pandas().describe())


def unchanged(value: Any) -> Any:
    return value


def dataset(cells: int) -> Dataset:
    """A Dataset of ``cells`` cells in 5 columns as a tag history has them: int, 2 doubles, a
    string and a bool."""
    rows = [[i, i * 0.5, i / 3.0, f"tag{i % 100}", i % 2 == 0] for i in range(max(1, cells // 5))]
    return Dataset(["t", "value", "avg", "name", "good"], rows,
                   ["long", "double", "double", "str", "bool"])
