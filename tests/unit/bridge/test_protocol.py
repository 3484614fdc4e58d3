"""Covers: bridge.protocol.

The envelope's validation and the error kinds: a good request passes, a bad one is refused
with a message naming what is wrong, and an error reply becomes the matching exception.
"""

from __future__ import annotations

import pytest

from bridge import protocol
from bridge.protocol import BadRequest, validate_request


def test_error_replies_become_their_exceptions():
    for kind, exc in protocol.EXCEPTIONS.items():
        raised = protocol.exception_from_error(protocol.error(kind, "why"))
        assert isinstance(raised, exc) and isinstance(raised, protocol.SidecarError)
        assert "why" in str(raised)


def test_every_op_is_known_and_worker_ops_are_a_subset():
    assert set(protocol.WORKER_OPS) <= set(protocol.OPS)
    assert protocol.USER in protocol.ERROR_KINDS and protocol.TIMEOUT in protocol.ERROR_KINDS


@pytest.mark.parametrize("request_, fragment", [
    ({"op": "nope"}, "op"),
    ({"op": "call"}, "target"),
    ({"op": "execute", "code": 3}, "code"),
])
def test_bad_requests_are_refused_naming_the_field(request_, fragment):
    with pytest.raises(protocol.BadRequest, match=fragment):
        protocol.validate_request({"v": protocol.VERSION, "id": "1", **request_}, max_timeout=60)


def test_a_good_call_passes():
    protocol.validate_request({"v": protocol.VERSION, "id": "1", "op": "call",
                               "target": "operator:add", "args": [1, 2]}, max_timeout=60)


MAX = 300.0


def ok(**req):
    request = {"v": 1, "id": 1, **req}
    assert validate_request(request, max_timeout=MAX) is request  # in place, no copy
    return request


def refused(req) -> str:
    with pytest.raises(BadRequest) as info:
        validate_request(req, max_timeout=MAX)
    assert info.value.kind == protocol.BAD_REQUEST
    return str(info.value)


@pytest.mark.parametrize("req", [
    {"op": "ping"},
    {"op": "ping", "id": None},
    {"op": "ping", "id": "abc"},
    {"op": "health", "timeout": 0.001},
    {"op": "health", "timeout": MAX},
    {"op": "health", "timeout": 5},
    {"op": "diag", "pool": "reports"},
    {"op": "breaker", "pool": None},
    {"op": "quarantine"},
    {"op": "execute", "code": "1+1"},
    {"op": "execute", "code": "", "vars": {}},
    {"op": "execute", "code": "x", "vars": {"x": 1, "y": [1]}},
    {"op": "call", "target": "math:sqrt"},
    {"op": "call", "target": "m:f", "args": [1], "kwargs": {"a": 1}},
    {"op": "call", "target": "m:f", "args": (1, 2), "kwargs": None},
    {"op": "call", "target": "m:f", "args": []},
])
def test_well_formed_requests_pass(req):
    ok(**req)


def test_a_request_without_v_is_taken_as_this_version():
    request = {"op": "ping"}
    assert validate_request(request, max_timeout=MAX) is request


@pytest.mark.parametrize(("req", "message"), [
    ([], "a request must be a map, got list"),
    ("ping", "a request must be a map, got str"),
    ({"op": "ping", "id": 1.5}, "'id' must be an integer or a string, got float"),
    ({"op": "ping", "id": [1]}, "'id' must be an integer or a string, got list"),
    ({"op": "ping", "v": 2},
     "unsupported protocol version 'v'=2; this sidecar speaks 1"),
    ({"op": "ping", "v": None},
     "unsupported protocol version 'v'=None; this sidecar speaks 1"),
    ({"op": "nope"}, "unknown 'op' 'nope'; expected one of execute, call, ping, health, diag, "
                     "breaker, quarantine"),
    ({}, "unknown 'op' None; expected one of execute, call, ping, health, diag, breaker, "
         "quarantine"),
    ({"op": "ping", "timeout": 0}, "'timeout' must be a number of seconds in (0, 300], got 0"),
    ({"op": "ping", "timeout": -1}, "'timeout' must be a number of seconds in (0, 300], got -1"),
    ({"op": "ping", "timeout": 300.5},
     "'timeout' must be a number of seconds in (0, 300], got 300.5"),
    ({"op": "ping", "timeout": True},
     "'timeout' must be a number of seconds in (0, 300], got True"),
    ({"op": "ping", "timeout": "5"},
     "'timeout' must be a number of seconds in (0, 300], got '5'"),
    ({"op": "ping", "pool": 3}, "'pool' must be the name of one of the sidecar's pools, got 3"),
    ({"op": "execute"}, "'code' must be a string, got NoneType"),
    ({"op": "execute", "code": b"1"}, "'code' must be a string, got bytes"),
    ({"op": "execute", "code": "1", "vars": []},
     "'vars' must be a map from variable names (strings) to values"),
    ({"op": "execute", "code": "1", "vars": {1: 2}},
     "'vars' must be a map from variable names (strings) to values"),
    ({"op": "execute", "code": "1", "vars": {"a": 1, 2: 2}},
     "'vars' must be a map from variable names (strings) to values"),
    ({"op": "call"}, "'target' must look like 'package.module:function', got None"),
    ({"op": "call", "target": "math.sqrt"},
     "'target' must look like 'package.module:function', got 'math.sqrt'"),
    ({"op": "call", "target": ["m:f"]},
     "'target' must look like 'package.module:function', got ['m:f']"),
    ({"op": "call", "target": "m:f", "args": {"a": 1}}, "'args' must be a list"),
    ({"op": "call", "target": "m:f", "args": "ab"}, "'args' must be a list"),
    ({"op": "call", "target": "m:f", "kwargs": [1]},
     "'kwargs' must be a map from argument names (strings) to values"),
    ({"op": "call", "target": "m:f", "kwargs": {"a": 1, 2: 1}},
     "'kwargs' must be a map from argument names (strings) to values"),
])
def test_each_refusal_names_the_member_and_what_it_must_be(req, message):
    if isinstance(req, dict):
        req = {"v": 1, "id": 1, **req} if "v" not in req else {"id": 1, **req}
    assert refused(req) == message


def test_a_long_bad_value_is_shown_cut_at_60_characters():
    shown = refused({"v": 1, "op": "x" * 100})
    assert shown == f"unknown 'op' '{'x' * 56}...; expected one of " + ", ".join(protocol.OPS)
    exactly_60 = "y" * 58  # its repr is 60 characters: shown whole
    assert f"'{exactly_60}';" in refused({"v": 1, "op": exactly_60})
    over = "z" * 59  # 61 characters: cut to 57 and "..."
    assert f"'{'z' * 56}...;" in refused({"v": 1, "op": over})


def test_the_timeout_bound_follows_max_timeout():
    with pytest.raises(BadRequest, match=r"in \(0, 10\], got 10.5"):
        validate_request({"op": "ping", "timeout": 10.5}, max_timeout=10)
    validate_request({"op": "ping", "timeout": 10}, max_timeout=10)


@pytest.mark.parametrize(("value", "result"), [(None, "dflt"), ("given", "given"), ("", "")])
def test_optional_string_takes_a_string_or_the_default(value, result):
    req = {} if value is None else {"name": value}
    assert protocol.optional_string(req, "name", "dflt") == result
    assert protocol.optional_string({"name": None}, "name", "dflt") == "dflt"


def test_optional_string_refuses_anything_else_naming_the_key():
    with pytest.raises(BadRequest) as info:
        protocol.optional_string({"name": [1, 2]}, "name", "d")
    assert str(info.value) == "'name' must be a string, got list [1, 2]"


def test_error_and_error_reply_shapes():
    assert protocol.error(protocol.TIMEOUT, "slow") == {
        "kind": "timeout", "type": None, "message": "slow", "traceback": None}
    assert protocol.error(protocol.USER, "m", type="ValueError", traceback="tb", worker=3) == {
        "kind": "user", "type": "ValueError", "message": "m", "traceback": "tb", "worker": 3}
    assert protocol.error_reply(7, protocol.CRASHED, "died", pid=9) == {
        "id": 7, "ok": False, "error": {"kind": "crashed", "type": None, "message": "died",
                                        "traceback": None, "pid": 9}}


@pytest.mark.parametrize("cls", list(protocol.EXCEPTIONS.values()))
def test_every_kind_comes_back_as_its_exception_with_its_details(cls):
    err = protocol.error(cls.kind, "what happened", type="KeyError", traceback="tb\n",
                         worker=2, retry_after=1.5)
    exc = protocol.exception_from_error(err)
    assert type(exc) is cls and exc.kind == cls.kind
    assert exc.message == "what happened" and exc.remote_type == "KeyError"
    assert exc.traceback == "tb\n" and exc.details == {"worker": 2, "retry_after": 1.5}


def test_the_kinds_are_the_wire_strings_and_each_has_its_exception():
    assert protocol.ERROR_KINDS == ("user", "timeout", "crashed", "overloaded", "circuit_open",
                                    "unavailable", "bad_request", "unauthorized", "internal",
                                    "quarantined", "forbidden")
    assert sorted(protocol.EXCEPTIONS) == sorted(protocol.ERROR_KINDS)


def test_an_unknown_or_malformed_error_is_internal():
    exc = protocol.exception_from_error({"kind": "martian", "message": "m"})
    assert type(exc) is protocol.InternalError and exc.details == {}
    exc = protocol.exception_from_error("not a map")
    assert type(exc) is protocol.InternalError
    assert str(exc) == "malformed error in reply: 'not a map'"
    exc = protocol.exception_from_error({"kind": "timeout"})  # no message: the kind stands in
    assert type(exc) is protocol.CallTimeout and exc.message == "timeout"
    assert exc.remote_type is None and exc.traceback is None


def test_how_errors_read():
    assert str(protocol.SidecarError("plain")) == "plain"
    assert protocol.SidecarError("plain").args == ("plain",)
    assert repr(protocol.BadRequest("m")) == "BadRequest('m')"
    assert str(protocol.SidecarError("m", remote_type="OSError")) == "OSError: m"
    assert protocol.SidecarError("m").details == {}
    assert str(protocol.PythonError("bad")) == "Exception: bad"
    assert str(protocol.PythonError("bad", remote_type="ValueError",
                                    traceback="Traceback...\n  line 1\n\n")) == (
        "ValueError: bad\n\nRemote traceback:\nTraceback...\n  line 1")


def routed_request(routed) -> dict:
    return {"op": "execute", "code": "1", "routed": routed}


def test_a_routed_mark_names_its_keys_and_shows_what_came():
    with pytest.raises(BadRequest) as err:
        validate_request(routed_request({"route": "r", "color": "x"}), max_timeout=60)
    assert str(err.value) == ("'routed' must be a map with a 'route' string and only route, "
                              "project, user, session, got {'route': 'r', 'color': 'x'}")


def test_a_routed_value_may_be_256_characters_and_no_more():
    validate_request(routed_request({"route": "r", "user": "u" * 256}), max_timeout=60)
    with pytest.raises(BadRequest) as err:
        validate_request(routed_request({"route": "r", "user": 7}), max_timeout=60)
    assert str(err.value) == ("'routed.user' must be a string of at most 256 characters or "
                              "null, got 7")
