"""CPU placement against the same-run ProcessPoolExecutor (docs/performance.md, "The sidecar hop").

    .venv/bin/python benchmarks/cpu_placement.py [CALLS]

For each placement (python3.pool.cpu-affinity / python3.worker.cpu-affinity) a sidecar with 2
workers; rounds rotate between the placements and PPE so drift and neighbours' load hit all
alike. Prints the median of ``execute("1+1")`` from one thread, and calls/s from 8 threads,
each against PPE(1) / PPE(2) measured in the same rounds.
"""

from __future__ import annotations

import operator
import os
import statistics
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.measure import median_us, per_second  # noqa: E402
from sidecar.testing import SidecarProcess  # noqa: E402

CPUS = sorted(os.sched_getaffinity(0))
PLACEMENTS = {"anywhere": ("", "")}
if len(CPUS) >= 2:
    PLACEMENTS |= {
        f"all on CPU {CPUS[0]}": (str(CPUS[0]), ""),
        f"sidecar on {CPUS[0]}, workers on {CPUS[1]}": (str(CPUS[0]), str(CPUS[1])),
    }






def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    sidecars = {}
    for name, (pool_cpus, worker_cpus) in PLACEMENTS.items():
        config = {"pool": {"initial-size": 2, "min-size": 2, "max-size": 2, "spares": 1,
                           "cpu-affinity": pool_cpus},
                  "worker": {"cpu-affinity": worker_cpus}, "scaling": {"enabled": False}}
        sidecars[name] = SidecarProcess(config, workdir=tempfile.mkdtemp()).start()
    latency = {name: [] for name in [*sidecars, "PPE"]}
    rate = {name: [] for name in [*sidecars, "PPE(2)"]}
    try:
        clients = {name: proc.client(timeout=10) for name, proc in sidecars.items()}
        with ProcessPoolExecutor(1) as ppe1, ProcessPoolExecutor(2) as ppe2:
            ppe1.submit(eval, "1+1").result()
            ppe2.submit(operator.add, 1, 2).result()
            for round_ in range(6):
                names = [*clients, "PPE"]
                for name in names[round_ % len(names):] + names[:round_ % len(names)]:
                    if name == "PPE":
                        latency[name].append(median_us(lambda: ppe1.submit(eval, "1+1")
                                                       .result(), calls // 6))
                        rate["PPE(2)"].append(per_second(
                            lambda: ppe2.submit(operator.add, 1, 2).result()))
                        continue
                    client = clients[name]
                    latency[name].append(median_us(lambda c=client: c.execute("1+1"),
                                                   calls // 6))
                    rate[name].append(per_second(lambda c=client: c.call("operator:add", 1, 2)))
    finally:
        for proc in sidecars.values():
            proc.stop()
    ppe = statistics.median(latency.pop("PPE"))
    ppe2 = statistics.median(rate.pop("PPE(2)"))
    print(f"PPE(1) execute median {ppe:.0f} us; PPE(2) 8 threads {ppe2:.0f} calls/s "
          f"(CPUs {CPUS}, load {os.getloadavg()[0]:.1f})")
    for name in sidecars:
        us, per_s = statistics.median(latency[name]), statistics.median(rate[name])
        print(f"  {name:32s} median {us:6.0f} us ({us / ppe:.2f}x PPE)   "
              f"{per_s:6.0f} calls/s ({per_s / ppe2:.2f}x PPE(2))")


if __name__ == "__main__":
    main()
