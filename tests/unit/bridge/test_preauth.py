"""Covers: bridge.preauth.

The bounded pre-authentication walk (bridge/preauth.py): it finds the token and a short id
without building values, and gives up after a fixed number of values."""

import msgpack
import pytest

from bridge.preauth import (
    ELEMENT_BUDGET,
    MAX_ECHOED_ID,
    Unreadable,
    peek_envelope,
    token_near_start_matches,
)


def test_token_and_id_are_found_without_decoding_large_members():
    data = msgpack.packb({"op": "execute", "code": "x" * 1_000_000, "vars": {"b": b"y" * 10**6},
                          "id": 7, "token": "secret"})
    head = peek_envelope(data)
    assert head.token == b"secret" and head.request_id == 7 and not head.over_budget
    assert head.token_matches(b"secret") and not head.token_matches(b"secreT")


@pytest.mark.parametrize("envelope, expected", [
    ({"id": 12345678901, "token": "t"}, 12345678901),
    ({"id": -5, "token": "t"}, -5),
    ({"id": "short-id", "token": "t"}, "short-id"),
    ({"id": "x" * (MAX_ECHOED_ID + 1), "token": "t"}, None),  # long ids are never echoed
    ({"id": [1, 2], "token": "t"}, None),
])
def test_only_short_ids_are_kept(envelope, expected):
    assert peek_envelope(msgpack.packb(envelope)).request_id == expected


def test_many_values_before_the_token_stop_the_walk():
    hostile = msgpack.packb({"op": "execute", "vars": [{}] * (ELEMENT_BUDGET * 4),
                             "token": "secret"})
    head = peek_envelope(hostile)
    assert head.over_budget and head.token is None
    within = msgpack.packb({"vars": list(range(ELEMENT_BUDGET // 2)), "token": "secret"})
    assert peek_envelope(within).token == b"secret"


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x81\xa5token", b"\x81\xa5token\xa5ab",
                                  b"\x81\xc1\x00"])
def test_junk_is_unreadable(data):
    with pytest.raises(Unreadable):
        peek_envelope(data)


@pytest.mark.parametrize("value", [[1, 2, 3], "text", 5, None])
def test_a_value_that_is_not_a_map_has_no_token(value):
    head = peek_envelope(msgpack.packb(value))
    assert head.token is None and not head.over_budget


@pytest.mark.parametrize("token", [123, b"secret", ["secret"], "s" * 5000])
def test_a_token_that_is_not_a_short_string_never_matches(token):
    head = peek_envelope(msgpack.packb({"id": 1, "token": token}))
    assert not head.token_matches(b"secret")


def test_the_fast_path_finds_a_token_sent_first_and_nothing_else():
    first = msgpack.packb({"v": 1, "id": 9, "token": "secret", "code": "x" * 10_000})
    assert token_near_start_matches(first, b"secret")
    assert not token_near_start_matches(first, b"secreX")
    late = msgpack.packb({"code": "x" * 10_000, "token": "secret"})
    assert not token_near_start_matches(late, b"secret")  # the walk handles it instead
    assert peek_envelope(late).token_matches(b"secret")
    assert not token_near_start_matches(b"\x81\xa5token\xd9", b"secret")  # cut short
