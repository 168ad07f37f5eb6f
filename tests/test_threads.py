"""The engine's worker threads: work is split, results come back in order, errors reach the caller
and leave the workers usable, and calls that cannot have the workers run on the caller's thread."""

from __future__ import annotations

import threading
import time

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


def test_claimed_runs_go_out_once_each_with_their_place_in_the_plan(two_workers):
    plan = [[(0, 3), (3, 5)], [(5, 8), (8, 10)]]
    taken = {0: [], 1: []}

    def work(worker, claims):
        for index, run in claims:
            taken[worker].append((index, run))

    threads.run_claimed(work, plan)
    assert sorted(taken[0] + taken[1]) == [(0, (0, 3)), (1, (3, 5)), (2, (5, 8)), (3, (8, 10))]


def test_a_thread_that_starts_late_claims_fewer_runs(two_workers):
    """The worker thread waits until this thread has taken three of the four runs: it gets the one
    left, where a fixed split would have given it two."""
    three_taken = threading.Event()
    taken = {0: [], 1: []}

    def work(worker, claims):
        if worker:
            assert three_taken.wait(10)
        for index, _ in claims:
            taken[worker].append(index)
            if worker == 0 and len(taken[0]) == 3:
                three_taken.set()
                deadline = time.monotonic() + 10
                while not taken[1] and time.monotonic() < deadline:  # until the worker claims the last run
                    time.sleep(0.001)

    threads.run_claimed(work, [[(0, 1), (1, 2)], [(2, 3), (3, 4)]])
    assert taken == {0: [0, 1, 2], 1: [3]}


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
