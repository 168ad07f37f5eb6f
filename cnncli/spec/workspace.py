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


def split_extent(n: int, chunk: int, workers: int) -> tuple[int, int]:
    """(workers used, items in the longest run) of split_work(n, chunk, workers), without listing
    the runs: what per-worker buffers must fit, counted even for a network far too big to run."""
    count = min(workers, n)
    return count, (min(chunk, -(-n // count)) if count else 0)


def split_runs(n: int, chunk: int, workers: int) -> int:
    """How many runs split_work(n, chunk, workers) makes, counted without listing them."""
    count, runs, start = min(workers, n), 0, 0
    for w in range(count):
        end = start + (n - start) // (count - w)
        runs += -(-(end - start) // chunk)
        start = end
    return runs


def im2col_chunk(rows: int, batch: int) -> int:
    """Output positions per im2col chunk; rows = input channels per group x kernel height x width,
    one column per (position, sample)."""
    return max(1, IM2COL_CHUNK_VALUES // max(rows * batch, 1))


def im2col_plan(rows: int, positions: int, batch: int, workers: int) -> tuple[list, int]:
    """The im2col path's chunks of output positions: (the plan, positions in its longest run)."""
    chunk = im2col_chunk(rows, batch)
    return split_work(positions, chunk, workers), split_extent(positions, chunk, workers)[1]


# Direct convolution (cnncli/ops/direct.py) for stride-1 convs with at most this many input rows
# (channels x filter height x width) and filters: the first conv of an image network and other small
# ones. Measured per layer with `cnn bench` against im2col: 1.3-2x faster for 6 and 16 filters on 1-6
# channels (LeNet-5, the tutorial net, ResNet-20's first conv), 1.2x slower for 64 filters (VGG's first).
DIRECT_MOST_ROWS = 160
DIRECT_MOST_FILTERS = 32

# A direct pass is split among the workers only when each gets at least this many multiply-adds
# (about 50 microseconds of work): below it, waking a second thread costs more than it saves.
DIRECT_SPLIT_MACS = 1 << 19


def is_pointwise(window) -> bool:
    """A 1x1, stride-1, unpadded conv: its input already is the GEMM's column matrix (no im2col)."""
    return (tuple(window.kernel), tuple(window.stride), window.pad_h[0], window.pad_w[0]) == ((1, 1), (1, 1), 0, 0)


def uses_direct(window, groups: int, channels: int, filters: int) -> bool:
    """Whether the engine runs a conv directly rather than with im2col + GEMM: stride 1, no groups,
    not 1x1 unpadded (its input already is the GEMM's matrix), not Winograd, and few input rows and
    filters, where a GEMM runs far below its speed (see cnncli/ops/direct.py)."""
    fh, fw = window.kernel
    return (tuple(window.stride) == (1, 1) and groups == 1 and not is_pointwise(window)
            and not uses_winograd(window, groups, channels)
            and channels * fh * fw <= DIRECT_MOST_ROWS and filters <= DIRECT_MOST_FILTERS)


def direct_padding(height: int, width: int, window) -> tuple[int, int, int, int]:
    """(rows, columns, top, left) of the zero-padded input copy a direct conv reads."""
    return height + sum(window.pad_h), width + sum(window.pad_w), window.pad_h[0], window.pad_w[0]


def direct_grain(macs: int) -> int:
    """The fewest units of a direct pass (output rows, filter taps, input channels) a worker gets,
    each unit `macs` multiply-adds: enough work to be worth a thread."""
    return -(-DIRECT_SPLIT_MACS // max(macs, 1))


# Winograd F(m x m, r x r): transformed-tile values per worker chunk (input and product tiles
# together), 2 MiB of float32.
WINOGRAD_CHUNK_VALUES = 1 << 19

# Filter size r -> the tile sizes m that have Winograd forms here (cnncli/ops/winograd.py TILINGS).
WINOGRAD_TILE_SIZES = {3: (2, 4), 5: (2,)}

# Filter size -> the fewest input channels for which Winograd's smaller GEMMs pay for its tile
# transforms (below, a conv stays on im2col or the direct loops).
FEWEST_CHANNELS = {3: 4, 5: 10}


def winograd_applies(filter_size, stride, dilation, groups) -> bool:
    """Whether a conv has Winograd forms here: 3x3 or 5x5, stride 1, no dilation, no groups."""
    fh, fw = filter_size
    return (fh == fw and fh in WINOGRAD_TILE_SIZES and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1)
            and groups == 1)


def winograd_pays_off(channels: int, out: tuple[int, int], r: int) -> bool:
    """With few input channels the tile transforms cost more than the smaller GEMMs save. 3x3: im2col
    was 1.3x faster on 3 channels and 4.8x on 1 (forward, 32x32, batch 64). 5x5 (14x14, batch 64,
    2 threads, forward + backward): the direct loops 2x faster on 6 channels (LeNet-5's conv2),
    im2col as fast on 8, Winograd 1.1-1.9x faster from 10 up. Nor where the tiles take more
    multiplications than direct convolution: on outputs smaller than a tile (LeNet-5's 5x5 conv to
    1x1: 36 against 25)."""
    rows, cols = out
    th, tw = winograd_tiles(rows, cols, m := winograd_tile_size(rows, cols, r))
    return channels >= FEWEST_CHANNELS[r] and winograd_points(m, r) * th * tw < r * r * rows * cols


def uses_winograd(window, groups: int, channels: int) -> bool:
    """Whether the engine runs a conv with Winograd (cnncli/ops/winograd.py) rather than im2col."""
    return (winograd_applies(window.kernel, window.stride, window.dilation, groups)
            and winograd_pays_off(channels, window.out, window.kernel[0]))


def winograd_points(m: int, r: int) -> int:
    """Values per transformed tile of F(m x m, r x r), (m + r - 1)^2: the number of GEMMs."""
    return (m + r - 1) ** 2


def winograd_tiles(rows: int, cols: int, m: int) -> tuple[int, int]:
    """Tiles of m x m outputs that cover a rows x cols output (cut tiles at the edge count whole)."""
    return -(-rows // m), -(-cols // m)


def winograd_tile_size(rows: int, cols: int, r: int) -> int:
    """The tiling whose GEMMs are smallest for a rows x cols output of an r x r filter: transformed
    values per tile times tiles. For 3x3, F(4x4) wins from 3x3 maps up, except 6x6 and other sizes
    where 2x2 tiles fit exactly and 4x4 ones waste a lot; F(2x2) on a tie, as its transforms are
    cheaper and exact in binary. 5x5 filters have F(2x2) only."""
    def work(m: int) -> tuple[int, int]:
        th, tw = winograd_tiles(rows, cols, m)
        return winograd_points(m, r) * th * tw, m

    return min(WINOGRAD_TILE_SIZES[r], key=work)


def winograd_chunk(points: int, channels: int, batch: int) -> int:
    """Tiles per Winograd chunk, for `points` values per transformed tile; `channels` are the input
    and output channels of the GEMMs together."""
    return max(1, WINOGRAD_CHUNK_VALUES // max(points * channels * batch, 1))


# The Winograd weight gradient keeps a sum per group of tile runs, added in order at the end (the
# same result whichever thread took which group). Groups of one run each, as long as their sums
# stay within 8 MiB of float32 together; past that (wide layers on large images), one group per
# worker, as the workers' own sums would be.
WINOGRAD_SUM_VALUES = 1 << 21


def winograd_sums(runs: int, values: int, workers: int) -> int:
    """How many groups the Winograd weight gradient sums `runs` runs of tiles in, for a weight
    gradient of `values` transformed values (tile points x filters x channels)."""
    return max(1, min(runs, max(workers, WINOGRAD_SUM_VALUES // max(values, 1))))


def winograd_plan(tiles: int, points: int, channels: int, batch: int, workers: int) -> tuple[list, int]:
    """Chunks of tiles for the workers: (the plan, tiles in its longest run)."""
    chunk = winograd_chunk(points, channels, batch)
    return split_work(tiles, chunk, workers), split_extent(tiles, chunk, workers)[1]
