"""The engine's worker threads: work is split, results come back in order, errors reach the caller
and leave the workers usable, and calls that cannot have the workers run on the caller's thread."""

from __future__ import annotations

import threading

import pytest

from cnncli.ops import threads


@pytest.fixture
def two_workers(monkeypatch):
    monkeypatch.setattr(threads, "_threads", 2)


def span(lo, hi):
    return (lo, hi, threading.current_thread().name)


def test_parallel_splits_the_extent_and_keeps_the_order(two_workers):
    parts = threads.parallel(span, 10)
    assert [p[:2] for p in parts] == [(0, 5), (5, 10)]
    assert parts[0][2] == threading.current_thread().name and parts[1][2] != parts[0][2]
    assert [p[:2] for p in threads.parallel(span, 3, grain=2)] == [(0, 3)]  # below 2 * grain: one thread


def test_an_error_in_any_share_reaches_the_caller_and_the_workers_stay_usable(two_workers):
    def fails_on(share):
        def kernel(lo, hi):
            if lo == share:
                raise ValueError(f"share {lo}")
            return lo
        return kernel

    for share in (0, 5):  # this thread's share, then the worker's
        with pytest.raises(ValueError, match=f"share {share}"):
            threads.parallel(fails_on(share), 10)
        assert threads.parallel(span, 10)[1][:2] == (5, 10)


def test_run_parallel_gives_each_worker_its_plan_item(two_workers):
    seen = {}
    threads.run_parallel(lambda worker, item: seen.update({worker: item}), [["a"], ["b"]])
    assert seen == {0: ["a"], 1: ["b"]}


def test_nested_and_concurrent_calls_run_on_their_own_thread(two_workers):
    """A kernel that itself calls parallel(), and callers on several threads at once, neither
    deadlock nor mix up results."""
    def outer(lo, hi):
        here = threading.current_thread().name
        return [p[:2] for p in threads.parallel(span, 4)], {p[2] for p in threads.parallel(span, 4)} == {here}

    # the workers are busy: each inner call runs its shares on its own thread, in order
    assert threads.parallel(outer, 2) == [([(0, 2), (2, 4)], True)] * 2
    results, barrier = {}, threading.Barrier(4)

    def caller(i):
        barrier.wait()
        results[i] = [sum(threads.parallel(lambda lo, hi: hi - lo + i, 1000 + i)) for _ in range(200)]

    callers = [threading.Thread(target=caller, args=(i,)) for i in range(4)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    for i in range(4):
        assert set(results[i]) <= {1000 + i + i, 1000 + i + 2 * i}  # one share or two, each adds i
