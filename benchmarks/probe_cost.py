"""What the Jython Py4J transport's stale-socket check costs: python3.call median latency
after a 250 ms idle gap with the check (a ping goes first) and without it (stale_after_ms set
out of reach), interleaved in one run; back to back (no check) for scale.

    .venv/bin/python benchmarks/probe_cost.py [IDLE_ROUNDS]
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sidecar.testing import SidecarProcess  # noqa: E402
from tests.jython import jvm  # noqa: E402

CASES = Path(__file__).resolve().parent / "jy" / "cases_probe_cost.py"


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 80
    figures: dict[str, Any] = {}
    with SidecarProcess({"scaling": {"enabled": False}},
                        workdir=tempfile.mkdtemp(prefix="py3sidecar-probe-")) as sc:
        def control(request: dict[str, Any]) -> Any:
            if request["cmd"] == "info":
                return {"py4j_port": sc.py4j_port, "idle_rounds": rounds,
                        "token_file": str(sc.runtime_dir / "token")}
            figures[request["name"]] = request["value"]
            return None

        results = jvm.run_cases([CASES], {"PY3_SETTINGS": json.dumps({})}, timeout=300,
                                control=control)
    bad = {k: v for k, v in results.items() if v[0] != "PASS"}
    for name, value in figures.items():
        print(f"{name} = {value}")
    if bad:
        print(bad)
        return 1
    on = figures["py4j_median_us_after_250ms_idle_with_check"]
    off = figures["py4j_median_us_after_250ms_idle_check_off"]
    print(f"after 250 ms idle, check on / check off = {on / off:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
