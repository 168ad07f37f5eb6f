"""Winograd minimal filtering (Lavin & Gray, 2016) for 3x3 and 5x5, stride-1 convolutions: F(4x4, 3x3)
and F(2x2, 3x3), whichever needs the smaller GEMMs for the layer's output size (tile_size), and
F(2x2, 5x5).

Each m x m tile of the output is computed from an (m + r - 1) x (m + r - 1) tile of the input: the
input tiles are transformed (V = Bt d B), multiplied by the transformed filters (U = G g Gt) as
(m + r - 1)^2 GEMMs, one per tile point xi, of (filters x channels) @ (channels x tiles*batch), and
transformed back (Y = At M A). F(2x2, 3x3) does 16 multiplications per 4 outputs where direct
convolution does 36 (2.25x fewer), F(4x4, 3x3) 36 per 16 outputs (4x fewer), F(2x2, 5x5) 36 per 4
outputs where direct does 100 (2.8x fewer). The batch is innermost (CHWN), so every transform runs
on contiguous vectors of samples, and each GEMM folds all samples of a chunk of tiles.

The backward pass has the same forms: the input gradient is this convolution of dy with the flipped,
transposed filters; the weight gradient sums (A dY At) (x) V over the tiles as one GEMM per tile
point and maps the sum back with Gt . G. F(2x2, 3x3)'s transforms have coefficients 0, +-1 and 1/2
only; F(4x4, 3x3)'s and F(2x2, 5x5)'s hold up to 8 and 1/24, so their float32 results are a few 1e-6
(relative) from the float64 ones instead of about 1e-7 (tests/test_winograd.py bounds all three at
1e-4 on realistic magnitudes).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from ..spec.workspace import winograd_applies as applies  # noqa: F401 (the tests ask here)
from ..spec.workspace import winograd_plan, winograd_points, winograd_sums, winograd_tiles
from ..spec.workspace import winograd_tile_size as tile_size
from .jit import kernel
from .pool import NO_ACT, RELU6
from .threads import run_claimed, workers

G2 = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
# Bt = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]: row i of Bt d is d[a] + sign * d[b]
BT_ROWS = np.array([[0, 2, -1], [1, 2, 1], [2, 1, -1], [1, 3, -1]])
A = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, -1.0], [0.0, -1.0]])  # At = A.T; row i of A dY: A[i] @ dY


def filter_map(g: np.ndarray) -> dict:
    """kron(G, G) (a * a x r * r) in each float dtype: it maps a flattened r x r filter to its
    flattened a x a transform G g Gt, so that all filters transform in one GEMM."""
    gg = np.kron(g, g)
    return {np.dtype(t): gg.astype(t) for t in (np.float32, np.float64)}


def transform_filters(w: np.ndarray, out: np.ndarray, gg: dict) -> np.ndarray:
    """U[xi, k, c] = (G w[k, c] Gt)[xi] for w (K, C, r, r); out (a * a, K, C); gg from filter_map."""
    np.matmul(gg[w.dtype], w.reshape(-1, w.shape[2] * w.shape[3]).T, out=out.reshape(len(out), -1))
    return out


def filter_gradient(du: np.ndarray, out: np.ndarray, gg: dict) -> None:
    """The adjoint of transform_filters: out[k, c] = Gt dU[:, k, c] G, for du (a * a, K, C)."""
    np.matmul(du.reshape(len(du), -1).T, gg[du.dtype], out=out.reshape(-1, out.shape[2] * out.shape[3]))


@kernel
def tile_source(x, c, r, s, patch):
    """Where the input tile of channel c at row r, column s of x (C, H, W, N) is read from: x[c]
    itself with the tile at (r, s) when it lies inside x, else `patch` (a, a, N), filled with the
    tile and zeros where it leaves x (the padding), with the tile at (0, 0). No padded copy of the
    whole input is made: only the border tiles are copied."""
    _, H, W, N = x.shape
    a = patch.shape[0]
    if r >= 0 and s >= 0 and r + a <= H and s + a <= W:
        return x[c], r, s
    zero = x.dtype.type(0)
    for i in range(a):
        for j in range(a):
            if 0 <= r + i < H and 0 <= s + j < W:
                for n in range(N):
                    patch[i, j, n] = x[c, r + i, s + j, n]
            else:
                for n in range(N):
                    patch[i, j, n] = zero
    return patch, 0, 0


# The kernels below index with the sample n last and every other index fixed outside the loop over
# samples: Numba's negative-index check then only touches loop-invariant values, and the loop
# vectorises (with a computed flat index it did not, and ran 4x slower).


@kernel
def tile_corner(t, tiles_w, size):
    """Row and column where tile t starts (in the padded input, or in the output): tiles of
    size x size outputs, tiles_w to a row."""
    return size * (t // tiles_w), size * (t % tiles_w)


@kernel
def input_transform_2(x, pt, pl, t0, t1, tiles_w, v):
    """v[xi, c, (t - t0) * N + n] = (Bt d B)[xi] for the 4x4 input tile d of tile t (rows 2 * (t //
    tiles_w) - pt, columns 2 * (t % tiles_w) - pl of x, zero outside it), tiles t0..t1-1. One pass
    per row of Bt d (the sum or difference of two rows of d): each loop writes 4 streams and vectorises."""
    C, _, _, N = x.shape
    out = v.reshape(16, C, v.shape[2] // N, N)
    patch = np.empty((4, 4, N), x.dtype)
    for c in range(C):
        for t in range(t0, t1):
            r, s = tile_corner(t, tiles_w, 2)
            xp, r, s = tile_source(x, c, r - pt, s - pl, patch)
            tt = t - t0
            for row in range(4):
                ra, rb = r + BT_ROWS[row, 0], r + BT_ROWS[row, 1]
                sign = xp.dtype.type(BT_ROWS[row, 2])
                for n in range(N):
                    a0 = xp[ra, s, n] + sign * xp[rb, s, n]
                    a1 = xp[ra, s + 1, n] + sign * xp[rb, s + 1, n]
                    a2 = xp[ra, s + 2, n] + sign * xp[rb, s + 2, n]
                    a3 = xp[ra, s + 3, n] + sign * xp[rb, s + 3, n]
                    out[4 * row, c, tt, n] = a0 - a2
                    out[4 * row + 1, c, tt, n] = a1 + a2
                    out[4 * row + 2, c, tt, n] = a2 - a1
                    out[4 * row + 3, c, tt, n] = a1 - a3


@kernel
def act_range(out, act):
    """The (low, high) an output transform clamps to, in out's float type: ReLU (act 1) keeps [0, inf),
    ReLU6 (act 2) [0, 6], no activation everything."""
    low = out.dtype.type(0) if act != NO_ACT else out.dtype.type(-np.inf)
    high = out.dtype.type(6) if act == RELU6 else out.dtype.type(np.inf)
    return low, high


@kernel
def output_transform_2(m, t0, t1, tiles_w, bias, use_bias, act, out):
    """out[k, 2 * th + a, 2 * tw + b, n] = (At M A)[a, b] (+ bias[k]) for tiles t0..t1-1, m (16, K, tiles * N),
    then ReLU (act 1) or ReLU6 (act 2); a tile's rows and columns past the output's edge are dropped."""
    K, ho, wo, N = out.shape
    low, high = act_range(out, act)
    mm = m.reshape(16, K, m.shape[2] // N, N)
    for k in range(K):
        add = bias[k] if use_bias else out.dtype.type(0)
        for t in range(t0, t1):
            r, s = tile_corner(t, tiles_w, 2)
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
def gradient_transform_2(dy, t0, t1, tiles_w, m):
    """The adjoint of output_transform_2: m[xi, k, (t - t0) * N + n] = (A dY At)[xi] for the 2x2 tile dY
    of dy (K, 2 * tiles_h, 2 * tiles_w, N; even-sized, zero-padded where the output is odd). One pass
    per row of A dY, as in input_transform."""
    K, _, _, N = dy.shape
    out = m.reshape(16, K, m.shape[2] // N, N)
    for k in range(K):
        for t in range(t0, t1):
            r, s = tile_corner(t, tiles_w, 2)
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


# -- F(4x4, 3x3): 6x6 input tiles, 36 GEMMs, a quarter of direct convolution's multiplications.
# Bt, G and At are Lavin & Gray's (interpolation points 0, +-1, +-2 and infinity):
#   Bt = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
#         [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
#   At = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]
# Each 2-D transform is two 1-D passes, over the tile's columns into a small buffer and then over
# its rows, with the 1-D transform written out so that each pass keeps few values live and
# vectorises over the samples.

G4 = np.array([
    [1 / 4, 0.0, 0.0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
    [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0.0, 0.0, 1.0],
])


@kernel
def lane(flat, start, n):
    """flat[start:start + n]. The F(4x4) kernels write through such 1-D views: stores into one
    flat view vectorise, stores into several planes of a 4-D array ran 2.5x slower here."""
    return flat[start : start + n]


@kernel
def six_lanes(flat, start, plane, n):
    """The n values at `start` of six consecutive planes of `plane` values each."""
    return (lane(flat, start, n), lane(flat, start + plane, n), lane(flat, start + 2 * plane, n),
            lane(flat, start + 3 * plane, n), lane(flat, start + 4 * plane, n), lane(flat, start + 5 * plane, n))


@kernel
def six_point_input_transform(x, pt, pl, t0, t1, tiles_w, step, v):
    """v[xi, c, (t - t0) * N + n] = (Bt d B)[xi] for the 6x6 input tile d of tile t (rows step * (t //
    tiles_w) - pt, columns step * (t % tiles_w) - pl of x, zero outside it), tiles t0..t1-1. F(4x4, 3x3)
    and F(2x2, 5x5) interpolate at the same six points, so they share this Bt; their tiles lie 4 and 2
    apart (step)."""
    C, _, _, N = x.shape
    flat = v.reshape(-1)
    plane = v.shape[1] * v.shape[2]
    patch = np.empty((6, 6, N), x.dtype)
    cols = np.empty((6, 6, N), x.dtype)  # Bt d, one column of d at a time
    two, four, five = x.dtype.type(2), x.dtype.type(4), x.dtype.type(5)
    for c in range(C):
        for t in range(t0, t1):
            r, s = tile_corner(t, tiles_w, step)
            xp, r, s = tile_source(x, c, r - pt, s - pl, patch)
            for j in range(6):
                for n in range(N):
                    d0, d1, d2 = xp[r, s + j, n], xp[r + 1, s + j, n], xp[r + 2, s + j, n]
                    d3, d4, d5 = xp[r + 3, s + j, n], xp[r + 4, s + j, n], xp[r + 5, s + j, n]
                    a, b = d4 - four * d2, d3 - four * d1
                    e, f = d4 - d2, two * (d3 - d1)
                    cols[0, j, n] = four * d0 - five * d2 + d4
                    cols[1, j, n] = a + b
                    cols[2, j, n] = a - b
                    cols[3, j, n] = e + f
                    cols[4, j, n] = e - f
                    cols[5, j, n] = four * d1 - five * d3 + d5
            at = c * v.shape[2] + (t - t0) * N
            for i in range(6):
                row, o = cols[i], at + 6 * i * plane
                o0, o1, o2, o3, o4, o5 = six_lanes(flat, o, plane, N)
                for n in range(N):
                    d0, d1, d2, d3, d4, d5 = row[0, n], row[1, n], row[2, n], row[3, n], row[4, n], row[5, n]
                    a, b = d4 - four * d2, d3 - four * d1
                    e, f = d4 - d2, two * (d3 - d1)
                    o0[n] = four * d0 - five * d2 + d4
                    o1[n] = a + b
                    o2[n] = a - b
                    o3[n] = e + f
                    o4[n] = e - f
                    o5[n] = four * d1 - five * d3 + d5


@kernel
def input_transform_4(x, pt, pl, t0, t1, tiles_w, v):
    """F(4x4, 3x3)'s input transform: 6x6 tiles 4 apart."""
    six_point_input_transform(x, pt, pl, t0, t1, tiles_w, 4, v)


@kernel
def output_transform_4(m, t0, t1, tiles_w, bias, use_bias, act, out):
    """out[k, 4 * th + a, 4 * tw + b, n] = (At M A)[a, b] (+ bias[k]) for tiles t0..t1-1, m (36, K,
    tiles * N), then ReLU (act 1) or ReLU6 (act 2); a cut tile's rows and columns past the output's
    edge land on the edge, written before the kept value (so the kept one stays)."""
    K, ho, wo, N = out.shape
    low, high = act_range(out, act)
    two, four, eight = out.dtype.type(2), out.dtype.type(4), out.dtype.type(8)
    mm = m.reshape(36, K, m.shape[2] // N, N)
    flat = out.reshape(-1)
    rows = np.empty((4, 6, N), out.dtype)  # At M, one column of M at a time
    for k in range(K):
        add = bias[k] if use_bias else out.dtype.type(0)
        for t in range(t0, t1):
            r, s = tile_corner(t, tiles_w, 4)
            tt = t - t0
            for j in range(6):
                for n in range(N):
                    m0, m1, m2 = mm[j, k, tt, n], mm[6 + j, k, tt, n], mm[12 + j, k, tt, n]
                    m3, m4, m5 = mm[18 + j, k, tt, n], mm[24 + j, k, tt, n], mm[30 + j, k, tt, n]
                    a, b, c, d = m1 + m2, m1 - m2, m3 + m4, m3 - m4
                    rows[0, j, n] = m0 + a + c
                    rows[1, j, n] = b + two * d
                    rows[2, j, n] = a + four * c
                    rows[3, j, n] = b + eight * d + m5
            for q in range(3, -1, -1):
                o = ((k * ho + min(r + q, ho - 1)) * wo + s) * N
                y0 = lane(flat, o, N)
                y1 = lane(flat, o + (min(s + 1, wo - 1) - s) * N, N)
                y2 = lane(flat, o + (min(s + 2, wo - 1) - s) * N, N)
                y3 = lane(flat, o + (min(s + 3, wo - 1) - s) * N, N)
                row = rows[q]
                for n in range(N):
                    m0, m1, m2, m3, m4, m5 = row[0, n], row[1, n], row[2, n], row[3, n], row[4, n], row[5, n]
                    a, b, c, d = m1 + m2, m1 - m2, m3 + m4, m3 - m4
                    y3[n] = min(max(b + eight * d + m5 + add, low), high)
                    y2[n] = min(max(a + four * c + add, low), high)
                    y1[n] = min(max(b + two * d + add, low), high)
                    y0[n] = min(max(m0 + a + c + add, low), high)


@kernel
def gradient_transform_4(dy, t0, t1, tiles_w, m):
    """The adjoint of output_transform_4: m[xi, k, (t - t0) * N + n] = (A dY At)[xi] for the 4x4
    tile dY of dy (K, 4 * tiles_h, 4 * tiles_w, N; zero-padded where the output is not a multiple of 4)."""
    K, _, _, N = dy.shape
    flat = m.reshape(-1)
    plane = m.shape[1] * m.shape[2]
    cols = np.empty((6, 4, N), dy.dtype)  # A dY, one column of dY at a time
    two, four, eight = dy.dtype.type(2), dy.dtype.type(4), dy.dtype.type(8)
    for k in range(K):
        for t in range(t0, t1):
            r, s = tile_corner(t, tiles_w, 4)
            for j in range(4):
                for n in range(N):
                    y0, y1, y2, y3 = dy[k, r, s + j, n], dy[k, r + 1, s + j, n], dy[k, r + 2, s + j, n], dy[k, r + 3, s + j, n]
                    a, b = y0 + y2, y1 + y3
                    c, d = y0 + four * y2, two * y1 + eight * y3
                    cols[0, j, n] = y0
                    cols[1, j, n] = a + b
                    cols[2, j, n] = a - b
                    cols[3, j, n] = c + d
                    cols[4, j, n] = c - d
                    cols[5, j, n] = y3
            at = k * m.shape[2] + (t - t0) * N
            for i in range(6):
                col, o = cols[i], at + 6 * i * plane
                o0, o1, o2, o3, o4, o5 = six_lanes(flat, o, plane, N)
                for n in range(N):
                    y0, y1, y2, y3 = col[0, n], col[1, n], col[2, n], col[3, n]
                    a, b = y0 + y2, y1 + y3
                    c, d = y0 + four * y2, two * y1 + eight * y3
                    o0[n] = y0
                    o1[n] = a + b
                    o2[n] = a - b
                    o3[n] = c + d
                    o4[n] = c - d
                    o5[n] = y3


# -- F(2x2, 5x5): 6x6 input tiles, 36 GEMMs, 2.8x fewer multiplications than direct convolution. It
# interpolates at F(4x4, 3x3)'s points (0, +-1, +-2 and infinity), so its Bt is the same; G and At:
#   G[j] = (1, p, p^2, p^3, p^4) / prod(p - q for the other finite points q) at finite point p,
#          (0, 0, 0, 0, 1) at infinity
#   At = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 1]]

G5 = np.array([
    [1 / 4, 0.0, 0.0, 0.0, 0.0], [-1 / 6, -1 / 6, -1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6, 1 / 6, -1 / 6],
    [1 / 24, 1 / 12, 1 / 6, 1 / 3, 2 / 3], [1 / 24, -1 / 12, 1 / 6, -1 / 3, 2 / 3], [0.0, 0.0, 0.0, 0.0, 1.0],
])


@kernel
def input_transform_2_5(x, pt, pl, t0, t1, tiles_w, v):
    """F(2x2, 5x5)'s input transform: 6x6 tiles 2 apart."""
    six_point_input_transform(x, pt, pl, t0, t1, tiles_w, 2, v)


@kernel
def output_transform_2_5(m, t0, t1, tiles_w, bias, use_bias, act, out):
    """out[k, 2 * th + a, 2 * tw + b, n] = (At M A)[a, b] (+ bias[k]) for tiles t0..t1-1, m (36, K,
    tiles * N), then ReLU (act 1) or ReLU6 (act 2); a cut tile's row and column past the output's
    edge land on the edge, written before the kept value (so the kept one stays)."""
    K, ho, wo, N = out.shape
    low, high = act_range(out, act)
    two = out.dtype.type(2)
    mm = m.reshape(36, K, m.shape[2] // N, N)
    flat = out.reshape(-1)
    rows = np.empty((2, 6, N), out.dtype)  # At M, one column of M at a time
    for k in range(K):
        add = bias[k] if use_bias else out.dtype.type(0)
        for t in range(t0, t1):
            r, s = tile_corner(t, tiles_w, 2)
            tt = t - t0
            for j in range(6):
                for n in range(N):
                    m0, m1, m2 = mm[j, k, tt, n], mm[6 + j, k, tt, n], mm[12 + j, k, tt, n]
                    m3, m4, m5 = mm[18 + j, k, tt, n], mm[24 + j, k, tt, n], mm[30 + j, k, tt, n]
                    rows[0, j, n] = m0 + m1 + m2 + m3 + m4
                    rows[1, j, n] = m1 - m2 + two * (m3 - m4) + m5
            for q in range(1, -1, -1):
                o = ((k * ho + min(r + q, ho - 1)) * wo + s) * N
                y0 = lane(flat, o, N)
                y1 = lane(flat, o + (min(s + 1, wo - 1) - s) * N, N)
                row = rows[q]
                for n in range(N):
                    m0, m1, m2, m3, m4, m5 = row[0, n], row[1, n], row[2, n], row[3, n], row[4, n], row[5, n]
                    y1[n] = min(max(m1 - m2 + two * (m3 - m4) + m5 + add, low), high)
                    y0[n] = min(max(m0 + m1 + m2 + m3 + m4 + add, low), high)


@kernel
def gradient_transform_2_5(dy, t0, t1, tiles_w, m):
    """The adjoint of output_transform_2_5: m[xi, k, (t - t0) * N + n] = (A dY At)[xi] for the 2x2
    tile dY of dy (K, 2 * tiles_h, 2 * tiles_w, N; zero-padded where the output is odd)."""
    K, _, _, N = dy.shape
    flat = m.reshape(-1)
    plane = m.shape[1] * m.shape[2]
    cols = np.empty((6, 2, N), dy.dtype)  # A dY, one column of dY at a time
    two = dy.dtype.type(2)
    for k in range(K):
        for t in range(t0, t1):
            r, s = tile_corner(t, tiles_w, 2)
            for j in range(2):
                for n in range(N):
                    y0, y1 = dy[k, r, s + j, n], dy[k, r + 1, s + j, n]
                    cols[0, j, n] = y0
                    cols[1, j, n] = y0 + y1
                    cols[2, j, n] = y0 - y1
                    cols[3, j, n] = y0 + two * y1
                    cols[4, j, n] = y0 - two * y1
                    cols[5, j, n] = y1
            at = k * m.shape[2] + (t - t0) * N
            for i in range(6):
                col, o = cols[i], at + 6 * i * plane
                o0, o1, o2, o3, o4, o5 = six_lanes(flat, o, plane, N)
                for n in range(N):
                    y0, y1 = col[0, n], col[1, n]
                    o0[n] = y0
                    o1[n] = y0 + y1
                    o2[n] = y0 - y1
                    o3[n] = y0 + two * y1
                    o4[n] = y0 - two * y1
                    o5[n] = y1


class Tiling(NamedTuple):
    """One Winograd algorithm F(m x m, r x r): its filter transform and kernels."""

    size: int  # m, outputs per tile side
    filter: int  # r, the filter's side
    filters: dict  # filter_map(G)
    input_transform: Callable
    output_transform: Callable
    gradient_transform: Callable

    @property
    def points(self) -> int:
        """Values per transformed tile, (m + r - 1)^2: the number of GEMMs."""
        return winograd_points(self.size, self.filter)


TILINGS = {  # keyed by (m, r)
    (2, 3): Tiling(2, 3, filter_map(G2), input_transform_2, output_transform_2, gradient_transform_2),
    (4, 3): Tiling(4, 3, filter_map(G4), input_transform_4, output_transform_4, gradient_transform_4),
    (2, 5): Tiling(2, 5, filter_map(G5), input_transform_2_5, output_transform_2_5, gradient_transform_2_5),
}


class Winograd:
    """The Winograd passes of one conv op. Every array they use lives only during one pass, on the
    model's shared workspace (sizes: cnncli/spec/workspace.py)."""

    def __init__(self, op, size: int | None = None):
        self.op = op
        self.tiling = TILINGS[size or tile_size(op.ho, op.wo, op.fh), op.fh]

    def _tiles(self, rows: int, cols: int) -> tuple[int, int]:
        return winograd_tiles(rows, cols, self.tiling.size)

    def _plan(self, tiles: int, channels: int, batch: int) -> tuple[list, int]:
        return winograd_plan(tiles, self.tiling.points, channels, batch, workers())

    def _buffers(self, worker: int, cin: int, kout: int, most: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """A worker's flat input-tile and product-tile buffers for a pass from cin to kout channels,
        sized for its longest run of `most` tiles (asked for once per pass, not per chunk)."""
        a2 = self.tiling.points
        return (self.op.temp(f"wino_v{worker}", (a2 * cin * most * batch,)),
                self.op.temp(f"wino_m{worker}", (a2 * kout * most * batch,)))

    def _chunk(self, flat: np.ndarray, channels: int, tiles: int, batch: int) -> np.ndarray:
        """The (points, channels, tiles * batch) chunk at the start of a worker's flat buffer."""
        a2 = self.tiling.points
        return flat[: a2 * channels * tiles * batch].reshape(a2, channels, tiles * batch)

    def _convolution(self, x, w, bias, pt, pl, out, act: int) -> tuple[list, Callable]:
        """One convolution pass, prepared: (its plan, work(worker, runs)). See convolve."""
        C, _, _, N = x.shape
        K, ho, wo, _ = out.shape
        tiling = self.tiling
        th, tw = self._tiles(ho, wo)
        u = transform_filters(w, self.op.temp("wino_u", (tiling.points, K, C)), tiling.filters)
        b = bias if bias is not None else np.zeros(K, out.dtype)
        plan, most = self._plan(th * tw, C + K, N)

        def work(worker, claims):
            tiles, products = self._buffers(worker, C, K, most, N)
            for _, (t0, t1) in claims:
                v = self._chunk(tiles, C, t1 - t0, N)
                prod = self._chunk(products, K, t1 - t0, N)
                tiling.input_transform(x, pt, pl, t0, t1, tw, v)
                np.matmul(u, v, out=prod)
                tiling.output_transform(prod, t0, t1, tw, b, bias is not None, act, out)

        return plan, work

    def convolve(self, x, w, bias, pt, pl, out, act: int = NO_ACT) -> None:
        """out (K, ho, wo, N) = the r x r correlation of x (C, H, W, N) with w (K, C, r, r), top and
        left padding pt, pl (zeros wherever a window leaves x), plus bias when given, then `act`."""
        run_claimed(*reversed(self._convolution(x, w, bias, pt, pl, out, act)))

    def forward(self, x, w, bias, out, act: int = NO_ACT) -> None:
        self.convolve(x, w, bias, self.op.pt, self.op.pl, out, act)

    def backward(self, x, dy, w, gw, dx=None) -> None:
        """The weight gradient gw and, when dx is given, the input gradient, in one parallel pass:
        the workers are started once for both."""
        weight_plan, weight_work, partial = self._weight_gradient(x, dy)
        passes = [(weight_plan, weight_work)]
        if dx is not None:
            # dx = dy correlated with the filters flipped and transposed, padded by r - 1 - p on each side
            r = self.tiling.filter
            flipped = self.op.temp("wino_flipped", (w.shape[1], w.shape[0], r, r))
            flipped[...] = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
            passes.append(self._convolution(dy, flipped, None, r - 1 - self.op.pt, r - 1 - self.op.pl, dx, NO_ACT))

        def work(worker, *claims):
            for (_, run), claimed in zip(passes, claims):
                run(worker, claimed)

        run_claimed(work, *(plan for plan, _ in passes))
        # each group's sum, added in order (whichever thread computed it): the same result every time
        for extra in partial[1:]:  # summed in place: no temporary of the transformed filters' size
            partial[0] += extra
        filter_gradient(partial[0], gw, self.tiling.filters)

    def _weight_gradient(self, x, dy) -> tuple[list, Callable, np.ndarray]:
        """The weight-gradient pass, prepared: (its plan, its work, the sums it fills). The plan hands
        out groups of consecutive runs of tiles (spec/workspace.py winograd_sums); each group sums,
        over its tiles and samples, (A dY At) (x) V as one GEMM per tile point and run into its own
        row of the sums; backward adds the rows in order and maps the total back with Gt . G into gw."""
        K, ho, wo, N = dy.shape
        tiling, m = self.tiling, self.tiling.size
        th, tw = self._tiles(ho, wo)
        C = x.shape[0]
        pt, pl = self.op.pt, self.op.pl
        if (ho, wo) != (m * th, m * tw):  # output not a whole number of tiles: zero the gradient past its edge
            even = self.op.temp("wino_dy_even", (K, m * th, m * tw, N))
            even[...] = 0
            even[:, :ho, :wo] = dy
            dy = even
        plan, most = self._plan(th * tw, C + K, N)
        runs = [run for share in plan for run in share]
        count = winograd_sums(len(runs), tiling.points * K * C, workers())
        groups = [runs[len(runs) * g // count : len(runs) * (g + 1) // count] for g in range(count)]
        sharers = min(len(plan), count)
        shares = [groups[count * i // sharers : count * (i + 1) // sharers] for i in range(sharers)]
        partial = self.op.temp("wino_du", (count, tiling.points, K, C))
        if count < len(runs):  # groups of several runs (never fewer groups than workers then)
            product = self.op.temp("wino_du_product", (workers(), tiling.points, K, C))

        def work(worker, claims):
            tiles, products = self._buffers(worker, C, K, most, N)
            for index, group in claims:
                for i, (t0, t1) in enumerate(group):
                    v = self._chunk(tiles, C, t1 - t0, N)
                    prod = self._chunk(products, K, t1 - t0, N)
                    tiling.input_transform(x, pt, pl, t0, t1, tw, v)
                    tiling.gradient_transform(dy, t0, t1, tw, prod)
                    if i == 0:
                        np.matmul(prod, v.transpose(0, 2, 1), out=partial[index])
                    else:
                        np.matmul(prod, v.transpose(0, 2, 1), out=product[worker])
                        partial[index] += product[worker]

        return shares, work, partial
