"""The machine's measured float32 peak, the yardstick for the GFLOP/s of speed_vs_pytorch.py.

    python benchmarks/peak_flops.py [--threads 1 2] [--clock wall|cpu] [--json]

Two probes, best of several tries each (the machine may be shared):
- fma: independent fused multiply-adds on vectors kept in registers (no memory traffic), one copy
  per thread: what the cores can do at most. LLVM vectorises the loop to the CPU's widest vectors.
- sgemm: one large square matrix product per thread in the installed BLAS (numpy), pinned to one
  BLAS thread each: what a well-shaped GEMM reaches in practice.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

LANES = 96  # 12 AVX2 vectors (6 AVX-512): enough independent chains to cover the FMA latency


@njit(nogil=True, fastmath=True, cache=True)
def _fma_loop(acc, a, b, repeats):
    for _ in range(repeats):
        for i in range(LANES):
            acc[i] = acc[i] * a + b
    return acc[0]


CLOCK = time.perf_counter  # time.process_time with --clock cpu (a busy machine; 1 thread)


def _fma(threads: int, repeats: int) -> float:
    accs = [np.ones(LANES, np.float32) for _ in range(threads)]
    a, b = np.float32(0.999999), np.float32(1e-6)
    _fma_loop(accs[0], a, b, 10)
    with ThreadPoolExecutor(threads) as pool:
        t = CLOCK()
        list(pool.map(lambda acc: _fma_loop(acc, a, b, repeats), accs))
        elapsed = CLOCK() - t
    return 2 * LANES * repeats * threads / elapsed / 1e9


def _sgemm(threads: int, size: int) -> float:
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    mats = [(rng.random((size, size), np.float32), rng.random((size, size), np.float32)) for _ in range(threads)]
    outs = [np.empty((size, size), np.float32) for _ in range(threads)]
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
        np.matmul(*mats[0], out=outs[0])
        t = CLOCK()
        list(pool.map(lambda i: np.matmul(*mats[i], out=outs[i]), range(threads)))
        elapsed = CLOCK() - t
    return 2 * size**3 * threads / elapsed / 1e9


def measure(threads: int, tries: int = 5) -> dict:
    """Best GFLOP/s of each probe over `tries`, with `threads` threads."""
    return {"threads": threads,
            "fma_gflop_per_s": max(_fma(threads, 2_000_000) for _ in range(tries)),
            "sgemm_gflop_per_s": max(_sgemm(threads, 1536) for _ in range(tries))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    parser.add_argument("--json", action="store_true", help="print one JSON list")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    results = [measure(t) for t in args.threads]
    if args.json:
        print(json.dumps(results))
        return
    for r in results:
        print(f"{r['threads']} threads: FMA peak {r['fma_gflop_per_s']:.1f} GFLOP/s, "
              f"SGEMM {r['sgemm_gflop_per_s']:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
