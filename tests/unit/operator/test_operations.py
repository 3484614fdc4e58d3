"""Covers: sidecar.operator.operations.

The operator's actions name the config key of the pool they act on: the primary's keys under
python3, a named pool's under python3.pools.<name>.
"""

from __future__ import annotations

from sidecar.operator.operations import ActionError, pool_key


def test_keys_are_named_per_pool():
    assert pool_key("primary", "max-size") == "python3.pool.max-size"
    assert pool_key("ml", "max-size") == "python3.pools.ml.pool.max-size"


def test_an_action_error_carries_its_http_status_and_advice():
    error = ActionError(404, "no pool 'x'")
    assert error.status == 404 and str(error) == error.message == "no pool 'x'"
