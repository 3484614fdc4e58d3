"""Covers: bridge.protocol.

The envelope's validation and the error kinds: a good request passes, a bad one is refused
with a message naming what is wrong, and an error reply becomes the matching exception.
"""

from __future__ import annotations

import pytest

from bridge import protocol


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
