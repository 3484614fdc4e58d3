"""Coverage-guided fuzzing (atheris, libFuzzer) of the decode paths: `make fuzz` runs it.

    python tests/fuzz/atheris_decode.py -runs=300000 -max_len=2048 [libFuzzer options]

Both decoders (the sidecar's pass-through ``codec.unpack_raw`` and the worker's full
``codec.unpackb``), and with them ``bridge.decode_check``'s explanation of a failure, get any
bytes libFuzzer makes up (a failing input is written to the temporary corpus folder; its path
and base64 are printed). The contract checked: a value decodes, or ``DecodeError`` names why;
any other exception (a bug of ours, which the sidecar would answer as `internal` or the worker
would die of) stops the run with the input that caused it. What the sidecar's decoder accepts,
re-encoded, decodes to the same bytes again (the pass-through must be stable).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports():
    from bridge import codec

SEEDS = [codec.packb({"op": "execute", "vars": {"v": v}}) for v in (
    2 ** 70, codec.Dataset(["a"], [[1]]), __import__("decimal").Decimal("1.5"),
    __import__("datetime").datetime(2020, 1, 1))]


def one_input(data: bytes) -> None:
    try:
        raw = codec.unpack_raw(data)
    except codec.DecodeError as exc:
        assert str(exc), "an empty explanation"
    else:
        # Bytes, not values, are compared: NaN != NaN (msgpack may re-encode narrower first).
        once = codec.pack_raw(raw)
        assert codec.pack_raw(codec.unpack_raw(once)) == once
    try:
        codec.unpackb(data)
    except codec.DecodeError as exc:
        assert str(exc), "an empty explanation"


def main() -> None:
    argv = list(sys.argv)
    corpus = Path(tempfile.mkdtemp(prefix="py3sidecar-atheris-"))
    for i, seed in enumerate(SEEDS):
        (corpus / f"seed-{i}").write_bytes(seed)
    if not any(a.startswith("-artifact_prefix=") for a in argv):  # not into the work tree
        argv.insert(1, f"-artifact_prefix={corpus}/")
    atheris.Setup([*argv, str(corpus)], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
