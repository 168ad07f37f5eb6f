"""Worker threads for kernels that call BLAS: each worker runs Numba code compiled with nogil and
single-threaded BLAS GEMMs on its own share of the batch, so the 2 cores never fight over threads.

BLAS is pinned to one thread (threadpoolctl) because the engine parallelises itself: a multi-threaded
OpenBLAS that spins between calls starves Numba's threads, which more than halved step speed here.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba
from threadpoolctl import threadpool_limits

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_blas_limit = None


def workers() -> int:
    return numba.get_num_threads()


def pin_blas() -> None:
    global _blas_limit
    if _blas_limit is None:
        _blas_limit = threadpool_limits(1, user_api="blas")


def split_work(n: int, chunk: int) -> list[list[tuple[int, int]]]:
    """Samples 0..n-1 in runs of at most `chunk`, dealt out as evenly as possible to the workers."""
    count = min(workers(), n)
    plan: list[list[tuple[int, int]]] = []
    start = 0
    for w in range(count):
        end = start + (n - start) // (count - w)
        runs = [(a, min(a + chunk, end)) for a in range(start, end, chunk)]
        plan.append(runs)
        start = end
    return plan


def run_parallel(work, plan: list) -> None:
    """Call work(worker, item) for each plan item, one worker thread each; re-raise any error."""
    global _pool, _pool_size
    pin_blas()
    if len(plan) == 1:
        work(0, plan[0])
        return
    if _pool is None or _pool_size < len(plan):
        _pool = ThreadPoolExecutor(max_workers=len(plan), thread_name_prefix="cnncli")
        _pool_size = len(plan)
    futures = [_pool.submit(work, i, item) for i, item in enumerate(plan[1:], start=1)]
    work(0, plan[0])
    for f in futures:
        f.result()
