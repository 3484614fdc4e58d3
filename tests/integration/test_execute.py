"""Covers: sidecar.worker.main, bridge.codec, bridge.client.

execute/call semantics, types and output capture, against a real sidecar and real workers."""

import datetime as dt
import decimal

import pytest

from bridge.client import PythonError
from bridge.codec import Dataset


@pytest.mark.parametrize("code, variables, expected", [
    ("1+1", None, 2),
    ("x = 3\nx * 2", None, 6),
    ("result = a + b", {"a": 1, "b": 2}, 3),
    ("y = 1", None, None),
    ("import math\nmath.sqrt(x)", {"x": 16.0}, 4.0),
    ("def f(n):\n    return n + 1\nf(41)", None, 42),
    ("[i * i for i in range(4)]", None, [0, 1, 4, 9]),
    ("{'k': (1, 2)}", None, {"k": [1, 2]}),
])
def test_execute_value_is_trailing_expression_else_result(client, code, variables, expected):
    assert client.execute(code, variables).value == expected


def test_each_execute_gets_a_fresh_namespace(client):
    client.execute("leaked = 1")
    with pytest.raises(PythonError) as info:
        client.execute("leaked")
    assert info.value.remote_type == "NameError"


def test_result_carries_worker_and_duration(client):
    result = client.execute("sum(range(1000))")
    assert result.value == 499500
    assert isinstance(result.worker, int) and result.worker >= 1
    assert result.duration_ms >= 0


def test_call_with_args_kwargs_and_methods(client):
    assert client.call("operator:add", 1, 2) == 3
    assert client.call("usermod:add", 1, b=2, scale=10) == 30
    assert client.call("usermod:Tools.upper", "abc") == "ABC"
    assert client.call("statistics:mean", [1, 2, 3]) == 2


def test_call_imports_once_and_stays_warm(client):
    seen = {}
    for _ in range(20):
        count, pid = client.call("usermod:imports")
        seen.setdefault(pid, set()).add(count)
    assert all(counts == {1} for counts in seen.values())


@pytest.mark.parametrize("target, remote_type", [
    ("nosuchmodule_xyz:f", "ModuleNotFoundError"),
    ("usermod:missing", "AttributeError"),
    ("usermod:NOT_CALLABLE", "TypeError"),
    ("usermod:fail", "ValueError"),
])
def test_call_errors_are_user_errors(client, target, remote_type):
    with pytest.raises(PythonError) as info:
        client.call(target)
    assert info.value.remote_type == remote_type
    assert client.call("operator:add", 2, 2) == 4


def test_user_exception_has_type_message_traceback_and_worker_lives(client):
    first = client.execute("import os; os.getpid()").value
    with pytest.raises(PythonError) as info:
        client.execute("def inner():\n    raise KeyError('missing tag')\ninner()")
    err = info.value
    assert err.remote_type == "KeyError"
    assert "missing tag" in err.message
    assert "inner()" in err.traceback and "raise KeyError('missing tag')" in err.traceback
    assert "sidecar/worker/main.py" not in err.traceback
    pids = {client.execute("import os; os.getpid()").value for _ in range(10)}
    assert first in pids  # the worker that raised is still serving


def test_system_exit_in_user_code_is_a_user_error(client):
    with pytest.raises(PythonError) as info:
        client.execute("raise SystemExit(4)")
    assert info.value.remote_type == "SystemExit"
    assert client.execute("1+1").value == 2


def test_stdout_and_stderr_are_captured_per_call(client):
    result = client.execute("import sys\nprint('hello')\nprint('warn', file=sys.stderr)\n7")
    assert (result.value, result.stdout, result.stderr) == (7, "hello\n", "warn\n")
    assert client.execute("8").stdout == ""


def test_output_is_bounded_with_a_visible_marker(client):
    # the shared sidecar is configured with max-output 1KiB
    result = client.execute("print('x' * 5000)")
    assert result.stdout.startswith("x" * 1024)
    assert "output truncated, 3977 more characters not shown" in result.stdout
    assert len(result.stdout) < 1200


ROUND_TRIP = [
    None, True, False, 0, -1, 2**63 - 1, -(2**63), 2**64 - 1, 2**100, -(2**90), 1.5,
    "text", "ünïcode ✓", b"\x00\xffbytes", [1, [2, [3]]], {"a": {"b": [None]}},
    dt.datetime(2026, 11, 28, 12, 30, 15, 123000, tzinfo=dt.UTC),
    decimal.Decimal("12.50"),
    Dataset(["t", "v", "ok"], [["a", 1.5, True], ["b", None, False]], ["str", "double", "bool"]),
]


@pytest.mark.parametrize("value", ROUND_TRIP, ids=lambda v: type(v).__name__)
def test_types_round_trip_through_a_worker(client, value):
    back = client.execute("value", {"value": value}).value
    assert back == value and type(back) is type(value)


def test_naive_datetime_is_taken_as_utc(client):
    back = client.execute("d", {"d": dt.datetime(2020, 1, 2, 3, 4, 5)}).value
    assert back == dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def test_dataset_is_usable_in_the_worker(client):
    ds = Dataset(["name", "qty"], [["a", 2], ["b", 3]])
    assert client.execute("sum(ds.column('qty'))", {"ds": ds}).value == 5
    back = client.execute("from bridge.codec import Dataset\n"
                          "Dataset(ds.columns + ['double'], [r + [r[1] * 2] for r in ds.rows])",
                          {"ds": ds}).value
    assert back.columns == ["name", "qty", "double"] and back.rows[1] == ["b", 3, 6]


def test_unsupported_value_names_type_and_position(client):
    with pytest.raises(PythonError) as info:
        client.execute("{'ok': [1, 2, {'bad': object()}]}")
    assert "value['value']['ok'][2]['bad']" in info.value.message
    assert "builtins.object" in info.value.message
    assert client.execute("1+1").value == 2
