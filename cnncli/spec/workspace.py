"""How the engine splits its work and how large its working arrays are: the one place of these
formulas, read by the ops (to size their buffers) and by the memory estimate of `cnn shapes`.

Pure Python (no numpy, no numba), so `cnn shapes` counts the workspace without loading the engine.
"""

from __future__ import annotations

import os

# Column-matrix values per im2col chunk (2 MiB of float32): a chunk of output positions, all samples,
# small enough to stay in cache whatever the batch size.
IM2COL_CHUNK_VALUES = 1 << 19


def default_threads() -> int:
    """The engine's threads unless told otherwise: CNNCLI_THREADS, else the cores this process may run on."""
    setting = os.environ.get("CNNCLI_THREADS")
    if setting and setting.isdigit() and int(setting) > 0:
        return int(setting)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def split_work(n: int, chunk: int, workers: int) -> list[list[tuple[int, int]]]:
    """Items 0..n-1 in runs of at most `chunk`, dealt out as evenly as possible to at most `workers`."""
    count = min(workers, n)
    plan: list[list[tuple[int, int]]] = []
    start = 0
    for w in range(count):
        end = start + (n - start) // (count - w)
        plan.append([(a, min(a + chunk, end)) for a in range(start, end, chunk)])
        start = end
    return plan


def im2col_plan(rows: int, positions: int, batch: int, workers: int) -> tuple[list, int]:
    """The im2col path's chunks of output positions: (the plan, positions in the largest chunk).
    rows = input channels per group x kernel height x kernel width, one column per (position, sample)."""
    size = max(1, IM2COL_CHUNK_VALUES // max(rows * batch, 1))
    return split_work(positions, size, workers), min(size, positions)


# Winograd F(2x2, 3x3): transformed-tile values per worker chunk (input and product tiles together),
# 1 MiB of float32.
WINOGRAD_CHUNK_VALUES = 1 << 18


def winograd_tiles(rows: int, cols: int) -> tuple[int, int]:
    """Tiles of 2x2 outputs that cover a rows x cols output."""
    return (rows + 1) // 2, (cols + 1) // 2


def winograd_plan(tiles: int, channels: int, batch: int, workers: int) -> tuple[list, int]:
    """Chunks of tiles for the workers: (the plan, tiles in the largest chunk); `channels` are the
    input and output channels of the GEMMs together."""
    size = max(1, WINOGRAD_CHUNK_VALUES // max(16 * channels * batch, 1))
    return split_work(tiles, size, workers), min(size, tiles)
