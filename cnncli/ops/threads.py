"""The engine's one thread system. Every kernel is serial Numba code compiled with nogil, run on a
share of the work (a range of channels, rows or values) by a small pool of worker threads; kernels
that need a GEMM call single-threaded BLAS from the same workers.

One system, because two fight: OpenBLAS's own threads and Numba's OpenMP threads both spin while
idle, and mixed on 2 cores they more than halved the speed of a training step (measured with
`cnn bench`). BLAS is therefore pinned to one thread (threadpoolctl) and Numba's prange is not used.
"""

from __future__ import annotations

import itertools
import threading

from threadpoolctl import threadpool_limits

from ..spec.workspace import default_threads
from ..spec.workspace import split_work as plan_split

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


class _Worker:
    """One extra engine thread, handed its work through two locks. A training step hands work over
    more than a hundred times; this costs half of what a ThreadPoolExecutor's future did (19 against
    40 microseconds a handoff, measured with an empty task)."""

    def __init__(self, index: int):
        self._go, self._done = threading.Lock(), threading.Lock()
        self._go.acquire()
        self._done.acquire()
        self._task: tuple = ()
        self._result = self._error = None
        threading.Thread(target=self._loop, name=f"cnncli-{index}", daemon=True).start()

    def _loop(self) -> None:
        while True:
            self._go.acquire()
            call, args = self._task
            try:
                self._result, self._error = call(*args), None
            except BaseException as error:  # handed to the caller of finish()
                self._result, self._error = None, error
            self._done.release()

    def start(self, call, *args) -> None:
        self._task = (call, args)
        self._go.release()

    def finish(self):
        """Wait for the work start() gave; its result, or its error raised here. An interrupt (Ctrl-C)
        while waiting is raised only once the worker is done, so the next start() finds it idle."""
        interrupt = None
        while True:
            try:
                self._done.acquire()
                break
            except BaseException as error:
                interrupt = error
        error, self._error = self._error, None
        if interrupt is not None or error is not None:
            raise interrupt or error
        return self._result


_extra_workers: list[_Worker] = []
_dispatching = threading.Lock()  # the extra workers serve one caller at a time


def _run(calls: list[tuple]) -> list:
    """Run each (callable, *args) of `calls`, the first on this thread and the others on extra
    workers; their results in order, or the first error once all have ended. A call from a second
    thread while the workers are busy (or from inside a worker) runs its calls here, one by one."""
    if len(calls) == 1 or not _dispatching.acquire(blocking=False):
        return [call(*args) for call, *args in calls]
    try:
        while len(_extra_workers) < len(calls) - 1:
            _extra_workers.append(_Worker(len(_extra_workers) + 1))
        for worker, (call, *args) in zip(_extra_workers, calls[1:]):
            worker.start(call, *args)
        results, errors = [], []
        try:
            call, *args = calls[0]
            results.append(call(*args))
        except BaseException as error:
            errors.append(error)
        for worker in _extra_workers[: len(calls) - 1]:
            try:
                results.append(worker.finish())
            except BaseException as error:
                errors.append(error)
        if errors:
            raise errors[0]
        return results
    finally:
        _dispatching.release()


def parallel(kernel, extent: int, *args, grain: int = 1):
    """kernel(lo, hi, *args) over [0, extent) split evenly among the workers (no split when the
    extent is below 2 * grain). Returns the list of the kernels' results."""
    count = min(workers(), extent // max(grain, 1))
    if count <= 1:
        return [kernel(0, extent, *args)]
    bounds = [(extent * i // count, extent * (i + 1) // count) for i in range(count)]
    return _run([(kernel, lo, hi, *args) for lo, hi in bounds])


VALUE_GRAIN = 1 << 14  # element-wise work is split only when each worker gets this many values


def parallel_values(kernel, size: int, *args):
    """parallel() for element-wise kernels over `size` values: small arrays stay on one thread."""
    return parallel(kernel, size, *args, grain=VALUE_GRAIN)


def run_parallel(work, plan: list) -> None:
    """Call work(worker, item) for each plan item, one worker thread each; re-raise any error."""
    pin_blas()
    _run([(work, i, item) for i, item in enumerate(plan)])


class Claims:
    """A plan's runs, handed out one at a time to whichever worker thread asks next, instead of a
    fixed share each: a thread that starts late or runs slower (its core busy with something else)
    takes fewer runs, and neither waits long for the other at the end. Each thread iterates the
    claims (`for index, run in claims`) and gets (index, run) pairs, the index being the run's place
    in the plan; work that keeps a result per run can then combine them in that fixed order, so the
    results do not depend on which thread took which run."""

    def __init__(self, plan: list):
        self.runs = [run for share in plan for run in share]
        self._next = itertools.count()  # shared by every thread's iterator; next() on it is atomic

    def __iter__(self):
        for index in self._next:
            if index >= len(self.runs):
                return
            yield index, self.runs[index]


def run_claimed(work, *plans: list) -> None:
    """Call work(worker, *claims) on as many worker threads as the longest plan has shares, with
    one Claims per plan; re-raise any error."""
    pin_blas()
    claims = [Claims(plan) for plan in plans]
    _run([(work, worker, *claims) for worker in range(max(len(plan) for plan in plans))])
