"""The engine's one thread system. Every kernel is serial Numba code compiled with nogil, run on a
share of the work (a range of channels, rows or values) by a small pool of worker threads; kernels
that need a GEMM call single-threaded BLAS from the same workers.

One system, because two fight: OpenBLAS's own threads and Numba's OpenMP threads both spin while
idle, and mixed on 2 cores they more than halved the speed of a training step (measured with
`cnn bench`). BLAS is therefore pinned to one thread (threadpoolctl) and Numba's prange is not used.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from threadpoolctl import threadpool_limits

from ..spec.workspace import default_threads
from ..spec.workspace import split_work as plan_split

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_blas_limit = None
_threads = default_threads()


def workers() -> int:
    """How many threads the engine uses: CNNCLI_THREADS, else the cores this process may run on."""
    return _threads


def set_threads(count: int) -> None:
    global _threads
    _threads = max(1, int(count))


def pin_blas() -> None:
    global _blas_limit
    if _blas_limit is None:
        _blas_limit = threadpool_limits(1, user_api="blas")


def split_work(n: int, chunk: int) -> list[list[tuple[int, int]]]:
    """Items 0..n-1 in runs of at most `chunk`, dealt out as evenly as possible to the workers."""
    return plan_split(n, chunk, workers())


def _pool_for(size: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    if _pool is None or _pool_size < size:
        _pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="cnncli")
        _pool_size = size
    return _pool


def parallel(kernel, extent: int, *args, grain: int = 1):
    """kernel(lo, hi, *args) over [0, extent) split evenly among the workers (no split when the
    extent is below 2 * grain). Returns the list of the kernels' results."""
    count = min(workers(), extent // max(grain, 1))
    if count <= 1:
        return [kernel(0, extent, *args)]
    bounds = [(extent * i // count, extent * (i + 1) // count) for i in range(count)]
    pool = _pool_for(count)
    futures = [pool.submit(kernel, lo, hi, *args) for lo, hi in bounds[1:]]
    first = kernel(*bounds[0], *args)
    return [first] + [f.result() for f in futures]


VALUE_GRAIN = 1 << 14  # element-wise work is split only when each worker gets this many values


def parallel_values(kernel, size: int, *args):
    """parallel() for element-wise kernels over `size` values: small arrays stay on one thread."""
    return parallel(kernel, size, *args, grain=VALUE_GRAIN)


def run_parallel(work, plan: list) -> None:
    """Call work(worker, item) for each plan item, one worker thread each; re-raise any error."""
    pin_blas()
    if len(plan) == 1:
        work(0, plan[0])
        return
    futures = [_pool_for(len(plan)).submit(work, i, item) for i, item in enumerate(plan[1:], start=1)]
    work(0, plan[0])
    for f in futures:
        f.result()
