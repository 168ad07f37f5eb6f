"""Direct convolution for stride-1 convs with few input rows (C x fh x fw) and filters: the first conv
of an image network (1 or 3 channels) and other small ones (rule: spec/workspace.py, uses_direct).
There im2col + GEMM loses twice: OpenBLAS runs a GEMM with so few rows or filters at a fraction of
its speed (12-22 GFLOP/s per core here against 30-45 for these loops), and the column matrix is
written, packed and read again for a handful of multiply-adds per value.

In the CHWN layout, the inputs one tap (c, i, j) of the filter meets along an output row are one
contiguous span (output columns x samples). So every pass is a vector loop over such spans, four
taps (or filters) at a time: forward adds taps into an output row that stays in L1 cache; the weight
gradient sums a gradient row times each tap's span; the input gradient adds gradient rows back into
the spans the taps read. One nogil call per worker thread covers its whole share (output rows,
filter taps or input channels), with no Python between chunks and no sums across threads.
"""

from __future__ import annotations

import numpy as np

from ..spec.workspace import direct_grain, direct_padding
from .jit import kernel
from .pool import NO_ACT, RELU, RELU6
from .threads import parallel


def pad_into(x: np.ndarray, top: int, left: int, xp: np.ndarray) -> None:
    """xp[c, r, s] = x[c, r - top, s - left] where that lies inside x, else 0 (CHWN; top and left may
    be negative, which crops). NumPy copies, not a kernel: nothing to compile on a cold start."""
    _, H, W, _ = x.shape
    _, Hp, Wp, _ = xp.shape
    r0, r1 = min(max(top, 0), Hp), max(min(Hp, H + top), 0)  # the rows and columns of xp that come from x
    s0, s1 = min(max(left, 0), Wp), max(min(Wp, W + left), 0)
    xp[:, :r0] = 0
    xp[:, max(r1, r0):] = 0
    if r0 < r1:
        xp[:, r0:r1, :s0] = 0
        xp[:, r0:r1, max(s1, s0):] = 0
        if s0 < s1:
            xp[:, r0:r1, s0:s1] = x[:, r0 - top : r1 - top, s0 - left : s1 - left]


@kernel
def forward_rows(lo, hi, xp, filters, b, offsets, act, out):
    """Output rows lo..hi-1, row r = (k, oh) of out (K, ho, wo, N): b[k] plus each tap's weight
    filters[k, t] times its span of the padded input xp, four taps per pass over the row, then the
    activation `act`."""
    K, ho, wo, N = out.shape
    Wp = xp.shape[2]
    taps = filters.shape[1]
    src, dst = xp.reshape(-1), out.reshape(-1)
    span = wo * N
    for r in range(lo, hi):
        k = r // ho
        start = (r - k * ho) * Wp * N
        o = dst[r * span : (r + 1) * span]
        bias = b[k]
        for q in range(span):
            o[q] = bias
        t = 0
        while t + 4 <= taps:
            w0, w1, w2, w3 = filters[k, t], filters[k, t + 1], filters[k, t + 2], filters[k, t + 3]
            a0 = src[start + offsets[t] : start + offsets[t] + span]
            a1 = src[start + offsets[t + 1] : start + offsets[t + 1] + span]
            a2 = src[start + offsets[t + 2] : start + offsets[t + 2] + span]
            a3 = src[start + offsets[t + 3] : start + offsets[t + 3] + span]
            for q in range(span):
                o[q] += w0 * a0[q] + w1 * a1[q] + w2 * a2[q] + w3 * a3[q]
            t += 4
        while t < taps:
            w0 = filters[k, t]
            a0 = src[start + offsets[t] : start + offsets[t] + span]
            for q in range(span):
                o[q] += w0 * a0[q]
            t += 1
        if act == RELU:
            for q in range(span):
                o[q] = max(o[q], 0)
        elif act == RELU6:
            for q in range(span):
                o[q] = min(max(o[q], 0), 6)


@kernel
def weight_gradient_taps(lo, hi, xp, dy, offsets, gw2):
    """gw2[k, t] for the (filter, tap) pairs lo..hi-1 of k * taps + t: the sum over output rows of
    dy's row k times tap t's span of the padded input xp, four taps per pass over the rows."""
    K, ho, wo, N = dy.shape
    Wp = xp.shape[2]
    taps = gw2.shape[1]
    src, grad = xp.reshape(-1), dy.reshape(-1)
    span = wo * N
    zero = grad[0] * np.float32(0)  # the arrays' own float type (float32 * int would be float64)
    for k in range(lo // taps, (hi - 1) // taps + 1):
        t, t_end = max(lo - k * taps, 0), min(hi - k * taps, taps)
        while t < t_end:
            count = 4 if t_end - t >= 4 else 1
            s0 = s1 = s2 = s3 = zero
            for oh in range(ho):
                d = grad[(k * ho + oh) * span : (k * ho + oh + 1) * span]
                start = oh * Wp * N
                if count == 4:
                    a0 = src[start + offsets[t] : start + offsets[t] + span]
                    a1 = src[start + offsets[t + 1] : start + offsets[t + 1] + span]
                    a2 = src[start + offsets[t + 2] : start + offsets[t + 2] + span]
                    a3 = src[start + offsets[t + 3] : start + offsets[t + 3] + span]
                    for q in range(span):
                        s0 += d[q] * a0[q]
                        s1 += d[q] * a1[q]
                        s2 += d[q] * a2[q]
                        s3 += d[q] * a3[q]
                else:
                    a0 = src[start + offsets[t] : start + offsets[t] + span]
                    for q in range(span):
                        s0 += d[q] * a0[q]
            gw2[k, t] = s0
            if count == 4:
                gw2[k, t + 1], gw2[k, t + 2], gw2[k, t + 3] = s1, s2, s3
            t += count


@kernel
def input_gradient_channels(lo, hi, dy, w, dil_h, dil_w, dxp):
    """Channels lo..hi-1 of the padded input gradient dxp (C, Hp, Wp, N): every output row k, oh of
    dy adds, for each tap (i, j), w[k, c, i, j] times that row into the span of dxp the tap read in
    forward; four filters per pass over a span."""
    K, ho, wo, N = dy.shape
    C, Hp, Wp, _ = dxp.shape
    fh, fw = w.shape[2], w.shape[3]
    grad, dst = dy.reshape(-1), dxp.reshape(-1)
    span = wo * N
    for c in range(lo, hi):
        plane = dst[c * Hp * Wp * N : (c + 1) * Hp * Wp * N]
        for q in range(Hp * Wp * N):
            plane[q] = 0
        for oh in range(ho):
            for i in range(fh):
                for j in range(fw):
                    start = ((oh + i * dil_h) * Wp + j * dil_w) * N
                    o = plane[start : start + span]
                    k = 0
                    while k + 4 <= K:
                        w0, w1, w2, w3 = w[k, c, i, j], w[k + 1, c, i, j], w[k + 2, c, i, j], w[k + 3, c, i, j]
                        d0 = grad[(k * ho + oh) * span : (k * ho + oh + 1) * span]
                        d1 = grad[((k + 1) * ho + oh) * span : ((k + 1) * ho + oh + 1) * span]
                        d2 = grad[((k + 2) * ho + oh) * span : ((k + 2) * ho + oh + 1) * span]
                        d3 = grad[((k + 3) * ho + oh) * span : ((k + 3) * ho + oh + 1) * span]
                        for q in range(span):
                            o[q] += w0 * d0[q] + w1 * d1[q] + w2 * d2[q] + w3 * d3[q]
                        k += 4
                    while k < K:
                        w0 = w[k, c, i, j]
                        d0 = grad[(k * ho + oh) * span : (k * ho + oh + 1) * span]
                        for q in range(span):
                            o[q] += w0 * d0[q]
                        k += 1


def tap_offsets(xp: np.ndarray, fh: int, fw: int, dil_h: int, dil_w: int) -> np.ndarray:
    """Where each tap (c, i, j), in filter order, starts in the padded CHWN input xp, counted from
    the window of output row 0, column 0."""
    C, Hp, Wp, N = xp.shape
    rows = np.arange(C)[:, None] * Hp + np.arange(fh)[None, :] * dil_h  # (c, i): the row of xp
    return ((rows[:, :, None] * Wp + np.arange(fw) * dil_w) * N).reshape(-1)


class Direct:
    """The direct passes of one conv op (stride 1, no groups); the padded copies of the input and of
    the input gradient live only during one pass, on the model's shared workspace."""

    def __init__(self, op):
        self.op, self.window = op, op.node.info.window
        (self.fh, self.fw), (self.dil_h, self.dil_w) = self.window.kernel, self.window.dilation

    def _input(self, x: np.ndarray) -> np.ndarray:
        """x with the conv's zero padding around it: x itself when the conv has none."""
        C, H, W, N = x.shape
        rows, cols, top, left = direct_padding(H, W, self.window)
        if (rows, cols) == (H, W):
            return x
        xp = self.op.temp("direct_x", (C, rows, cols, N))
        pad_into(x, top, left, xp)
        return xp

    def _offsets(self, xp: np.ndarray) -> np.ndarray:
        return tap_offsets(xp, self.fh, self.fw, self.dil_h, self.dil_w)

    def _rows(self, xp, filters, b, act, out) -> None:
        """out = the correlation of the padded xp with filters (K, taps), plus b, then act."""
        K, ho, wo, N = out.shape
        grain = direct_grain(filters.shape[1] * wo * N)
        parallel(forward_rows, K * ho, xp, filters, b, self._offsets(xp), act, out, grain=grain)

    def forward(self, x, w, bias, out, act: int = NO_ACT) -> None:
        b = bias if bias is not None else np.zeros(out.shape[0], out.dtype)
        self._rows(self._input(x), w.reshape(w.shape[0], -1), b, act, out)

    def backward(self, x, dy, w, gw, dx=None) -> None:
        K, ho, wo, N = dy.shape
        xp = self._input(x)
        gw2 = gw.reshape(K, -1)
        grain = direct_grain(ho * wo * N)
        parallel(weight_gradient_taps, gw2.size, xp, dy, self._offsets(xp), gw2, grain=grain)
        if dx is None:
            return
        # dx: each output gradient row goes back, through each tap, to the span of the padded input the
        # tap read; summed per input channel, so the workers (a range of channels each) never collide
        C, H, W, _ = dx.shape
        rows, cols, top, left = direct_padding(H, W, self.window)
        dxp = dx if (rows, cols) == (H, W) else self.op.temp("direct_dx", (C, rows, cols, N))
        grain = direct_grain(K * self.fh * self.fw * ho * wo * N)
        parallel(input_gradient_channels, C, dy, w, self.dil_h, self.dil_w, dxp, grain=grain)
        if dxp is not dx:
            pad_into(dxp, -top, -left, dx)  # the padding's rows and columns cut off
