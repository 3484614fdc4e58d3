"""Covers: bridge.codec, bridge.decode_check, sidecar.worker.main.

Values that fail to decode are the request's business.

Every value below is accepted by the sidecar's pass-through decoder (or refused by it) and used
to kill the worker while it decoded the request, outside any handler: the caller got `crashed`
and the pool respawned. Now each gets `bad_request` naming where the value sat and why, and the
same worker process answers the next call. A real sidecar, real workers, the real client.
"""
from __future__ import annotations

import msgpack
import pytest

from bridge import codec
from bridge.client import BadRequest

BIGINT, DECIMAL, DATASET = codec.EXT_BIGINT, codec.EXT_DECIMAL, codec.EXT_DATASET
COLUMNS, NDARRAY = codec.EXT_COLUMNS, codec.EXT_NDARRAY


def _columns(columns, types, nrows, data) -> msgpack.ExtType:
    return msgpack.ExtType(COLUMNS, msgpack.packb([columns, types, nrows, data],
                                                  use_bin_type=True))


def _block(dtype: str, count: int, body: bytes) -> msgpack.ExtType:
    header = msgpack.packb([dtype, [count]])
    return msgpack.ExtType(NDARRAY, len(header).to_bytes(4, "big") + header + body)


def _dataset(columns, types, rows) -> msgpack.ExtType:
    return msgpack.ExtType(DATASET, msgpack.packb([columns, types, rows], use_bin_type=True))


def _bad_timestamp() -> msgpack.ExtType:
    # ext -1 cannot be built with ExtType (codes 0..127): build a 5-byte one and patch the code.
    return msgpack.ExtType(5, b"\x00" * 5)


# (vars or args, where the bad value sits, words the reason must contain)
CASES = {
    "bigint_empty": ({"v": msgpack.ExtType(BIGINT, b"")}, "vars['v']", "bigint"),
    "decimal_not_a_number": ({"v": msgpack.ExtType(DECIMAL, b"12,5x")}, "vars['v']",
                             "not a decimal"),
    "decimal_not_utf8": ({"v": [1, msgpack.ExtType(DECIMAL, b"\xff\xfe")]}, "vars['v'][1]",
                         "decimal"),
    "timestamp_2_pow_40_s": ({"v": msgpack.Timestamp(2 ** 40, 0)}, "vars['v']",
                             "1099511627776 s"),
    "timestamp_malformed": ({"v": {"t": _bad_timestamp()}}, "vars['v']['t']", "5 bytes"),
    "dataset_ragged_row": ({"v": _dataset(["a", "b"], ["int", "int"], [[1, 2], [3]])},
                           "vars['v'].rows[1]", "1 value(s) for 2 columns"),
    "dataset_not_a_triple": ({"v": msgpack.ExtType(DATASET, msgpack.packb([1, 2]))},
                             "vars['v']", "[columns, types, rows]"),
    "dataset_junk_payload": ({"v": msgpack.ExtType(DATASET, b"\xc1")}, "vars['v']", "0xc1"),
    "dataset_bad_cell": ({"v": _dataset(["t"], ["datetime"], [[msgpack.Timestamp(2 ** 40)]])},
                         "vars['v'].rows[0][0]", "outside the dates"),
    "dataset_types_mismatch": ({"v": _dataset(["a", "b"], ["int"], [])}, "vars['v'].types",
                               "1 types for 2 columns"),
    "columns_not_four_members": ({"v": msgpack.ExtType(COLUMNS, msgpack.packb([1, 2]))},
                                 "vars['v']", "[columns, types, rows, data]"),
    "columns_short_column": ({"v": _columns(["a", "b"], ["long", "str"], 2,
                                            [[[1, 2], None], [["x"], None]])},
                             "vars['v'].data[1]", "1 value(s) for 2 rows"),
    # (numeric blocks that decode would import numpy in the worker: its OpenBLAS threads
    # recycle a worker without `python3.worker.preload: [numpy]`, so these cases use lists)
    "columns_block_size": ({"v": _columns(["a"], ["double"], 2,
                                          [[_block("<f8", 2, bytes(9)), None]])},
                           "vars['v'].data[0][0]", "ndarray extension (code 4) holds 9 bytes"),
    "columns_bad_nulls": ({"v": _columns(["a"], ["long"], 1,
                                         [[[0], "junk"]])},
                          "vars['v'].data[0]", "nulls"),
    "columns_bad_cell": ({"v": _columns(["t"], ["datetime"], 1,
                                        [[[msgpack.Timestamp(2 ** 40)], None]])},
                         "vars['v'].data[0][0][0]", "outside the dates"),
}


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory):
    from sidecar.testing import SidecarProcess

    proc = SidecarProcess({"pool": {"initial-size": 1, "min-size": 1, "max-size": 1,
                                    "spares": 0},
                           "scaling": {"enabled": False}},
                          workdir=str(tmp_path_factory.mktemp("decode")))
    proc.start()
    yield proc
    proc.stop()


@pytest.mark.parametrize("name", sorted(CASES))
def test_undecodable_value_is_bad_request_and_the_worker_lives_on(one_worker, name):
    variables, where, why = CASES[name]
    client = one_worker.client(timeout=10.0)
    pid_before = client.execute("import os; os.getpid()").value
    crashes_before = one_worker.pool()["counters"].get("crashes", 0)
    if name == "timestamp_malformed":
        reply = _raw_request(one_worker, variables)
        assert reply["ok"] is False and reply["error"]["kind"] == "bad_request", reply
        message = reply["error"]["message"]
    else:
        with pytest.raises(BadRequest) as info:
            client.execute("v", variables)
        message = info.value.message
    assert where in message and why in message, message
    assert client.execute("import os; os.getpid()").value == pid_before
    assert one_worker.pool()["counters"].get("crashes", 0) == crashes_before


def _raw_request(sidecar, variables):
    """One envelope sent as bytes over a DEALER socket (for bytes the client cannot build)."""
    import zmq

    payload = codec.packb({"v": 1, "id": 7, "op": "execute", "token": sidecar.token,
                           "code": "v", "vars": variables})
    payload = payload.replace(b"\xc7\x05\x05", b"\xc7\x05\xff")  # ext 5 -> ext -1
    sock = sidecar.authenticate(zmq.Context.instance().socket(zmq.DEALER))
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(sidecar.endpoint)
        sock.send(payload)
        assert sock.poll(10_000), "no reply within 10 s"
        return codec.unpack_raw(sock.recv())
    finally:
        sock.close()


@pytest.mark.parametrize("digits", [5_000, 100_000])
def test_big_integers_cross_both_ways(one_worker, digits):
    client = one_worker.client(timeout=30.0)
    n = 7 * 10 ** (digits - 1) + 123
    result = client.execute("(v * 2, -v, v.bit_length())", {"v": n}).value
    assert result == [2 * n, -n, n.bit_length()]
