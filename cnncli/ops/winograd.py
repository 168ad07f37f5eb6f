"""Winograd minimal filtering F(2x2, 3x3) (Lavin & Gray, 2016) for 3x3, stride-1 convolutions.

Each 2x2 tile of the output is computed from a 4x4 tile of the input with 16 multiplications per
channel pair instead of 36: the input tiles are transformed (V = Bt d B), multiplied by the
transformed filters (U = G g Gt) as 16 GEMMs, one per tile position xi, of (filters x channels) @
(channels x tiles*batch), and transformed back (Y = At M A). The batch is innermost (CHWN), so every
transform runs on contiguous vectors of samples, and each GEMM folds all samples of a chunk of tiles.

The backward pass has the same forms: the input gradient is this convolution of dy with the flipped,
transposed filters; the weight gradient sums (A dY At) (x) V over the tiles as 16 GEMMs and maps the
sum back with Gt . G. F(2x2, 3x3)'s transforms have coefficients 0, +-1 and 1/2 only, so float32
results stay within about 1e-6 of the float64 ones (tests/test_winograd.py).
"""

from __future__ import annotations

import numpy as np

from .jit import kernel
from .pool import NO_ACT, RELU6
from .threads import parallel, run_parallel, split_work

# Transformed-tile values per worker chunk (input and product tiles together): 1 MiB of float32.
CHUNK_VALUES = 1 << 18

G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
# Bt = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]: row i of Bt d is d[a] + sign * d[b]
BT_ROWS = np.array([[0, 2, -1], [1, 2, 1], [2, 1, -1], [1, 3, -1]])
A = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, -1.0], [0.0, -1.0]])  # At = A.T; row i of A dY: A[i] @ dY


def applies(filter_size, stride, dilation, groups) -> bool:
    return tuple(filter_size) == (3, 3) and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1) and groups == 1


def transform_filters(w: np.ndarray, out: np.ndarray) -> np.ndarray:
    """U[xi, k, c] = (G w[k, c] Gt)[xi] for w (K, C, 3, 3); out (16, K, C)."""
    g = G.astype(w.dtype)
    t = np.tensordot(g, w, axes=(1, 2))  # (4, K, C, 3)
    u = np.tensordot(t, g, axes=(3, 1))  # (4, K, C, 4)
    out.reshape(4, 4, *w.shape[:2])[...] = u.transpose(0, 3, 1, 2)
    return out


def filter_gradient(du: np.ndarray, out: np.ndarray) -> None:
    """The adjoint of transform_filters: out[k, c] = Gt dU[:, k, c] G, for du (16, K, C)."""
    g = G.astype(du.dtype)
    K, C = du.shape[1:]
    t = np.tensordot(g, du.reshape(4, 4, K, C), axes=(0, 0))  # (3, 4, K, C)
    out[...] = np.tensordot(t, g, axes=(1, 0)).transpose(1, 2, 0, 3)  # (3, K, C, 3) -> (K, C, 3, 3)


@kernel
def pad_into(lo, hi, x, pt, pl, xp):
    """xp[c, r, s] = x[c, r - pt, s - pl], zero where that is outside x, for channels lo..hi-1.
    Plain loops: they compile in a fraction of the time that slice assignments take."""
    _, H, W, N = x.shape
    _, Hp, Wp, _ = xp.shape
    zero = xp.dtype.type(0)
    for c in range(lo, hi):
        for r in range(Hp):
            ih = r - pt
            for s in range(Wp):
                iw = s - pl
                if 0 <= ih < H and 0 <= iw < W:
                    for n in range(N):
                        xp[c, r, s, n] = x[c, ih, iw, n]
                else:
                    for n in range(N):
                        xp[c, r, s, n] = zero


# The kernels below index with the sample n last and every other index fixed outside the loop over
# samples: Numba's negative-index check then only touches loop-invariant values, and the loop
# vectorises (with a computed flat index it did not, and ran 4x slower).


@kernel
def tile_corner(t, tiles_w):
    """Row and column where tile t starts (in the padded input, or in the output): tiles of 2x2
    outputs, tiles_w to a row."""
    return 2 * (t // tiles_w), 2 * (t % tiles_w)


@kernel
def input_transform(xp, t0, t1, tiles_w, v):
    """v[xi, c, (t - t0) * N + n] = (Bt d B)[xi] for the 4x4 input tile d of tile t (rows 2 * (t //
    tiles_w), columns 2 * (t % tiles_w) of the padded input xp), tiles t0..t1-1. One pass per row of
    Bt d (the sum or difference of two rows of d), so each loop writes only 4 streams and vectorises."""
    C, _, _, N = xp.shape
    out = v.reshape(16, C, v.shape[2] // N, N)
    for c in range(C):
        for t in range(t0, t1):
            r, s = tile_corner(t, tiles_w)
            tt = t - t0
            for row in range(4):
                ra, rb = r + BT_ROWS[row, 0], r + BT_ROWS[row, 1]
                sign = xp.dtype.type(BT_ROWS[row, 2])
                for n in range(N):
                    a0 = xp[c, ra, s, n] + sign * xp[c, rb, s, n]
                    a1 = xp[c, ra, s + 1, n] + sign * xp[c, rb, s + 1, n]
                    a2 = xp[c, ra, s + 2, n] + sign * xp[c, rb, s + 2, n]
                    a3 = xp[c, ra, s + 3, n] + sign * xp[c, rb, s + 3, n]
                    out[4 * row, c, tt, n] = a0 - a2
                    out[4 * row + 1, c, tt, n] = a1 + a2
                    out[4 * row + 2, c, tt, n] = a2 - a1
                    out[4 * row + 3, c, tt, n] = a1 - a3


@kernel
def output_transform(m, t0, t1, tiles_w, bias, use_bias, act, out):
    """out[k, 2 * th + a, 2 * tw + b, n] = (At M A)[a, b] (+ bias[k]) for tiles t0..t1-1, m (16, K, tiles * N),
    then ReLU (act 1) or ReLU6 (act 2); a tile's rows and columns past the output's edge are dropped."""
    K, ho, wo, N = out.shape
    low = out.dtype.type(0) if act != NO_ACT else out.dtype.type(-np.inf)
    high = out.dtype.type(6) if act == RELU6 else out.dtype.type(np.inf)
    mm = m.reshape(16, K, m.shape[2] // N, N)
    for k in range(K):
        add = bias[k] if use_bias else out.dtype.type(0)
        for t in range(t0, t1):
            r, s = tile_corner(t, tiles_w)
            tt = t - t0
            r1 = min(r + 1, ho - 1)  # a cut tile writes its edge value twice, the kept one last
            s1 = min(s + 1, wo - 1)
            for n in range(N):
                # rows: At M
                u0 = mm[0, k, tt, n] + mm[4, k, tt, n] + mm[8, k, tt, n]
                u1 = mm[1, k, tt, n] + mm[5, k, tt, n] + mm[9, k, tt, n]
                u2 = mm[2, k, tt, n] + mm[6, k, tt, n] + mm[10, k, tt, n]
                u3 = mm[3, k, tt, n] + mm[7, k, tt, n] + mm[11, k, tt, n]
                w0 = mm[4, k, tt, n] - mm[8, k, tt, n] - mm[12, k, tt, n]
                w1 = mm[5, k, tt, n] - mm[9, k, tt, n] - mm[13, k, tt, n]
                w2 = mm[6, k, tt, n] - mm[10, k, tt, n] - mm[14, k, tt, n]
                w3 = mm[7, k, tt, n] - mm[11, k, tt, n] - mm[15, k, tt, n]
                # columns: (At M) A
                out[k, r1, s1, n] = min(max(w1 - w2 - w3 + add, low), high)
                out[k, r1, s, n] = min(max(w0 + w1 + w2 + add, low), high)
                out[k, r, s1, n] = min(max(u1 - u2 - u3 + add, low), high)
                out[k, r, s, n] = min(max(u0 + u1 + u2 + add, low), high)


@kernel
def gradient_transform(dy, t0, t1, tiles_w, m):
    """The adjoint of output_transform: m[xi, k, (t - t0) * N + n] = (A dY At)[xi] for the 2x2 tile dY
    of dy (K, 2 * tiles_h, 2 * tiles_w, N; even-sized, zero-padded where the output is odd). One pass
    per row of A dY, as in input_transform."""
    K, _, _, N = dy.shape
    out = m.reshape(16, K, m.shape[2] // N, N)
    for k in range(K):
        for t in range(t0, t1):
            r, s = tile_corner(t, tiles_w)
            tt = t - t0
            for row in range(4):
                top, bottom = dy.dtype.type(A[row, 0]), dy.dtype.type(A[row, 1])
                for n in range(N):
                    p0 = top * dy[k, r, s, n] + bottom * dy[k, r + 1, s, n]
                    p1 = top * dy[k, r, s + 1, n] + bottom * dy[k, r + 1, s + 1, n]
                    out[4 * row, k, tt, n] = p0
                    out[4 * row + 1, k, tt, n] = p0 + p1
                    out[4 * row + 2, k, tt, n] = p0 - p1
                    out[4 * row + 3, k, tt, n] = -p1


class Winograd:
    """The F(2x2, 3x3) passes of one conv op, with buffers kept in the op's scratch space."""

    def __init__(self, op):
        self.op = op
        self.x_padded = None  # forward's padded input, which the weight gradient transforms again

    def _tiles(self, rows: int, cols: int) -> tuple[int, int]:
        return (rows + 1) // 2, (cols + 1) // 2

    def _plan(self, tiles: int, channels: int, batch: int) -> tuple[list, int]:
        per_tile = 16 * channels * batch
        size = max(1, CHUNK_VALUES // per_tile)
        return split_work(tiles, size), min(size, tiles)

    def _chunk(self, name: str, channels: int, tiles: int, most: int, batch: int) -> np.ndarray:
        flat = self.op.scratch(name, (16 * channels * most * batch,))
        return flat[: 16 * channels * tiles * batch].reshape(16, channels, tiles * batch)

    def convolve(self, x, w, bias, pt, pl, out, key: str, act: int = NO_ACT) -> np.ndarray:
        """out (K, ho, wo, N) = the 3x3 correlation of x (C, H, W, N) with w (K, C, 3, 3), top and
        left padding pt, pl (zeros wherever a window leaves x), plus bias when given, then `act`."""
        C, _, _, N = x.shape
        K, ho, wo, _ = out.shape
        th, tw = self._tiles(ho, wo)
        xp = self.op.scratch(f"{key}_padded", (C, 2 * th + 2, 2 * tw + 2, N))
        parallel(pad_into, C, x, pt, pl, xp)
        u = transform_filters(w, self.op.scratch(f"{key}_u", (16, K, C)))
        b = bias if bias is not None else np.zeros(K, out.dtype)
        plan, most = self._plan(th * tw, C + K, N)

        def work(worker, runs):
            for t0, t1 in runs:
                v = self._chunk(f"{key}_v{worker}", C, t1 - t0, most, N)
                m = self._chunk(f"{key}_m{worker}", K, t1 - t0, most, N)
                input_transform(xp, t0, t1, tw, v)
                np.matmul(u, v, out=m)
                output_transform(m, t0, t1, tw, b, bias is not None, act, out)

        run_parallel(work, plan)
        return xp

    def forward(self, x, w, bias, out, act: int = NO_ACT) -> None:
        self.x_padded = self.convolve(x, w, bias, self.op.pt, self.op.pl, out, "wino_x", act)

    def input_gradient(self, dy, w, dx) -> None:
        """dx = dy correlated with the filters flipped and transposed, padded by 2 - p on each side."""
        self.convolve(dy, w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3), None, 2 - self.op.pt, 2 - self.op.pl, dx, "wino_dy")

    def weight_gradient(self, dy, gw) -> None:
        """gw (K, C, 3, 3) = sum over tiles and samples of Gt ((A dY At) (x) V) G, as 16 GEMMs per chunk;
        uses the padded input that forward left in scratch."""
        K, ho, wo, N = dy.shape
        th, tw = self._tiles(ho, wo)
        xp = self.x_padded
        C = xp.shape[0]
        if (ho, wo) != (2 * th, 2 * tw):  # odd output: zero the gradient past its edge
            even = self.op.scratch("wino_dy_even", (K, 2 * th, 2 * tw, N))
            even[...] = 0
            even[:, :ho, :wo] = dy
            dy = even
        plan, most = self._plan(th * tw, C + K, N)
        partial = self.op.scratch("wino_du", (len(plan), 16, K, C))
        product = self.op.scratch("wino_du_product", (len(plan), 16, K, C))

        def work(worker, runs):
            partial[worker] = 0
            for t0, t1 in runs:
                v = self._chunk(f"wino_x_v{worker}", C, t1 - t0, most, N)
                m = self._chunk(f"wino_x_m{worker}", K, t1 - t0, most, N)
                input_transform(xp, t0, t1, tw, v)
                gradient_transform(dy, t0, t1, tw, m)
                np.matmul(m, v.transpose(0, 2, 1), out=product[worker])
                partial[worker] += product[worker]

        run_parallel(work, plan)
        filter_gradient(partial.sum(axis=0), gw)
