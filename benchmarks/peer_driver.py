"""The peers' caller process: ``ProcessPoolExecutor`` or ``multiprocessing.Pool`` driven by the
same command loop as ``benchmarks/client_driver.py``, so a peer's caller is measured as ours is.

    python benchmarks/peer_driver.py ppe|mp_pool WORKERS

It starts the pool, warms every worker, prints ``ready``, then serves ``CALL N``, ``RATE T S``
and ``BYTES N SIZE`` on stdin (``client_driver.serve``): ``operator.add(1, 2)`` and
``bytes(SIZE)`` run in the pool's workers, which are this process's children.

Owns: that peer loop. Must not touch: the library (it imports none of it).
"""

from __future__ import annotations

import multiprocessing
import operator
import sys
from concurrent.futures import ProcessPoolExecutor

from client_driver import serve  # this file's own folder: run as a script


def main(argv: list[str]) -> int:
    kind, workers = argv[0], int(argv[1])
    if kind == "ppe":
        with ProcessPoolExecutor(workers) as ppe:
            for _ in range(2000):  # every worker process exists and is warm
                assert ppe.submit(operator.add, 1, 2).result() == 3
            serve(lambda: ppe.submit(operator.add, 1, 2).result(),
                  lambda size: ppe.submit(bytes, size).result())
        return 0
    if kind == "mp_pool":
        with multiprocessing.Pool(workers) as mpool:
            for _ in range(2000):
                assert mpool.apply(operator.add, (1, 2)) == 3
            serve(lambda: mpool.apply(operator.add, (1, 2)),
                  lambda size: mpool.apply(bytes, (size,)))
        return 0
    print(f"error: unknown peer {kind!r} (ppe or mp_pool)", flush=True)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
