"""Convolution. 3x3 stride 1 on 4 or more channels: Winograd F(2x2, 3x3) or F(4x4, 3x3); 5x5 stride 1
on 10 or more: F(2x2, 5x5) (winograd.py). Other stride-1 convs with few input rows (channels x filter
size) and filters: direct loops (direct.py). Other shapes with g=1: im2col + BLAS GEMM on chunks of output positions small enough to
stay in cache, the chunks shared among worker threads. For groups and depthwise: direct Numba kernels."""

from __future__ import annotations

import numpy as np

from ..layers.conv import Conv
from . import init
from .base import Op
from .jit import kernel
from .pool import NO_ACT, RELU, RELU6
from ..spec.workspace import im2col_plan, is_pointwise, uses_direct, uses_winograd
from .direct import Direct
from .merge import add_arrays
from .threads import parallel, run_parallel, workers
from .winograd import Winograd


# The column copies are loops, not slice assignments (`out[a:b] = src[c:d]`, `a[..] += b[..]`): a slice
# assignment makes Numba compile its shape-mismatch message, string formatting and all (several seconds
# of every cold start), and `+=` on slices builds a temporary; the loops ran im2col 1.2-2.5x and col2im
# 2-4x faster here, with identical results.


@kernel
def copy(src, s0, dst, d0, n):
    """dst[d0:d0 + n] = src[s0:s0 + n], through views that start at 0 (so the loop vectorises)."""
    a, b = src[s0 : s0 + n], dst[d0 : d0 + n]
    for q in range(n):
        b[q] = a[q]


@kernel
def add(src, s0, dst, d0, n):
    """dst[d0:d0 + n] += src[s0:s0 + n], through views that start at 0."""
    a, b = src[s0 : s0 + n], dst[d0 : d0 + n]
    for q in range(n):
        b[q] += a[q]


@kernel
def im2col(x, p0, p1, fh, fw, sh, sw, pt, pl, dil_h, dil_w, wo, cols):
    """cols[(c, i, j), (p - p0, n)] for output positions p = oh * wo + ow in p0..p1-1 of a CHWN
    input. Per kernel offset the valid output columns are computed once; with stride 1, each output
    row's share of the chunk is one contiguous copy of (valid width) x N values."""
    C, H, W, N = x.shape
    flat = x.reshape(-1)
    out = cols.reshape(-1)
    width = cols.shape[1]
    for c in range(C):
        for i in range(fh):
            for j in range(fw):
                r = (c * fh + i) * fw + j
                off = j * dil_w - pl
                lo = min(max((-off + sw - 1) // sw, 0), wo)  # first ow whose iw >= 0
                hi = min(max((W - off + sw - 1) // sw, lo), wo)  # first ow whose iw >= W
                for oh in range(p0 // wo, (p1 - 1) // wo + 1):
                    a = max(p0 - oh * wo, 0)  # this row's output columns in the chunk: a..b-1
                    b = min(p1 - oh * wo, wo)
                    dst = r * width + (oh * wo - p0) * N
                    ih = oh * sh - pt + i * dil_h
                    if ih < 0 or ih >= H:
                        out[dst + a * N : dst + b * N] = 0
                        continue
                    va, vb = min(max(lo, a), b), max(min(hi, b), min(max(lo, a), b))
                    out[dst + a * N : dst + va * N] = 0
                    row = (c * H + ih) * W * N
                    if sw == 1:
                        copy(flat, row + (va + off) * N, out, dst + va * N, (vb - va) * N)
                    else:
                        for ow in range(va, vb):
                            copy(flat, row + (ow * sw + off) * N, out, dst + ow * N, N)
                    out[dst + vb * N : dst + b * N] = 0


@kernel
def col2im(cols, p0, p1, fh, fw, sh, sw, pt, pl, dil_h, dil_w, wo, dx):
    """The adjoint of im2col: adds the columns of output positions p0..p1-1 into dx (not zeroed)."""
    C, H, W, N = dx.shape
    flat = dx.reshape(-1)
    src = cols.reshape(-1)
    width = cols.shape[1]
    for c in range(C):
        for i in range(fh):
            for j in range(fw):
                r = (c * fh + i) * fw + j
                off = j * dil_w - pl
                lo = min(max((-off + sw - 1) // sw, 0), wo)
                hi = min(max((W - off + sw - 1) // sw, lo), wo)
                for oh in range(p0 // wo, (p1 - 1) // wo + 1):
                    ih = oh * sh - pt + i * dil_h
                    if ih < 0 or ih >= H:
                        continue
                    a = max(p0 - oh * wo, 0)
                    b = min(p1 - oh * wo, wo)
                    va, vb = min(max(lo, a), b), max(min(hi, b), min(max(lo, a), b))
                    base = r * width + (oh * wo - p0) * N
                    row = (c * H + ih) * W * N
                    if sw == 1:
                        add(src, base + va * N, flat, row + (va + off) * N, (vb - va) * N)
                    else:
                        for ow in range(va, vb):
                            add(src, base + ow * N, flat, row + (ow * sw + off) * N, N)


@kernel
def grouped_forward(lo, hi, x, w, b, use_bias, groups, sh, sw, pt, pl, dil_h, dil_w, out):
    K, ho, wo, N = out.shape
    C, H, W, _ = x.shape
    kg = K // groups
    cg = C // groups
    fh, fw = w.shape[2], w.shape[3]
    for k in range(lo, hi):
        c0 = (k // kg) * cg
        for oh in range(ho):
            for ow in range(wo):
                for n in range(N):
                    out[k, oh, ow, n] = b[k] if use_bias else 0
                for cl in range(cg):
                    for i in range(fh):
                        ih = oh * sh - pt + i * dil_h
                        if ih < 0 or ih >= H:
                            continue
                        for j in range(fw):
                            iw = ow * sw - pl + j * dil_w
                            if iw < 0 or iw >= W:
                                continue
                            wt = w[k, cl, i, j]
                            for n in range(N):
                                out[k, oh, ow, n] += wt * x[c0 + cl, ih, iw, n]


@kernel
def grouped_backward_weights(lo, hi, x, dy, groups, sh, sw, pt, pl, dil_h, dil_w, gw, gb):
    K, ho, wo, N = dy.shape
    C, H, W, _ = x.shape
    kg = K // groups
    cg = C // groups
    fh, fw = gw.shape[2], gw.shape[3]
    for k in range(lo, hi):
        c0 = (k // kg) * cg
        total = 0.0
        for oh in range(ho):
            for ow in range(wo):
                for n in range(N):
                    total += dy[k, oh, ow, n]
        gb[k] = total
        for cl in range(cg):
            for i in range(fh):
                for j in range(fw):
                    acc = 0.0
                    for oh in range(ho):
                        ih = oh * sh - pt + i * dil_h
                        if ih < 0 or ih >= H:
                            continue
                        for ow in range(wo):
                            iw = ow * sw - pl + j * dil_w
                            if iw < 0 or iw >= W:
                                continue
                            for n in range(N):
                                acc += dy[k, oh, ow, n] * x[c0 + cl, ih, iw, n]
                    gw[k, cl, i, j] = acc


@kernel
def grouped_backward_input(lo, hi, w, dy, groups, sh, sw, pt, pl, dil_h, dil_w, dx):
    K, ho, wo, N = dy.shape
    C, H, W, _ = dx.shape
    kg = K // groups
    cg = C // groups
    fh, fw = w.shape[2], w.shape[3]
    for c in range(lo, hi):
        g = c // cg
        cl = c - g * cg
        dx[c] = 0
        for k in range(g * kg, (g + 1) * kg):
            for oh in range(ho):
                for i in range(fh):
                    ih = oh * sh - pt + i * dil_h
                    if ih < 0 or ih >= H:
                        continue
                    for ow in range(wo):
                        for j in range(fw):
                            iw = ow * sw - pl + j * dil_w
                            if iw < 0 or iw >= W:
                                continue
                            wt = w[k, cl, i, j]
                            for n in range(N):
                                dx[c, ih, iw, n] += wt * dy[k, oh, ow, n]


class ConvOp(Op):
    kinds = (Conv,)

    def __init__(self, node, dtype):
        super().__init__(node, dtype)
        window = node.info.window
        self.groups = node.info.groups
        self.filters = node.shape[0]
        self.cin = node.in_shapes[0][0]
        self.pt, self.pl = window.pad_h[0], window.pad_w[0]
        self.fh, self.fw = window.kernel
        self.ho, self.wo = window.out
        self.geometry = (*window.stride, self.pt, self.pl, *window.dilation)  # sh, sw, pt, pl, dil_h, dil_w
        self.rows = self.cin // self.groups * self.fh * self.fw
        self.pointwise = is_pointwise(window)
        self.winograd = Winograd(self) if uses_winograd(window, self.groups, self.cin) else None
        self.direct = Direct(self) if uses_direct(window, self.groups, self.cin, self.filters) else None

    def param_shapes(self):
        shapes = {"weight": (self.filters, self.cin // self.groups, self.fh, self.fw)}
        if self.p["bias"]:
            shapes["bias"] = (self.filters,)
        return shapes

    def init(self, rng):
        fan_out = self.filters // self.groups * self.fh * self.fw
        init.weights(self.params["weight"], self.p["init"], self.rows, fan_out, rng)
        if "bias" in self.params:
            init.bias(self.params["bias"], self.p["init"], self.rows, rng)

    fold = None  # a batch norm right after this conv, folded into it by infer() (set by Model)

    def forward(self, xs, train, rng):
        x = self.x = xs[0]
        return self._convolve(x, self.params["weight"], self.params.get("bias"), NO_ACT)

    def infer(self, xs, rng):
        """Eval-mode forward that no backward follows: a folded batch norm's scale and shift go into
        the filters and bias, its fused activation into the output pass, and the bn op passes through."""
        if self.fold is None:
            return self.forward(xs, False, rng)
        w, bias = self.fold.fold_into(self.params["weight"], self.params.get("bias"))
        return self._convolve(xs[0], w, bias, self.fold.act)

    def _convolve(self, x, w, bias, act):
        out = self.scratch("out", self.out_shape(x.shape[3]))
        if self.groups > 1:
            b = bias if bias is not None else np.zeros(self.filters, self.dtype)
            parallel(grouped_forward, self.filters, x, w, b, bias is not None, self.groups, *self.geometry, out)
            activate(out, act)
            return out
        passes = self.winograd or self.direct
        if passes is not None:
            passes.forward(x, w, bias, out, act)
            return out
        w2 = w.reshape(self.filters, -1)
        out2 = out.reshape(self.filters, -1)
        n = x.shape[3]

        def work(worker, runs):
            for p0, p1 in runs:
                target = out2[:, p0 * n : p1 * n]
                np.matmul(w2, self._columns(worker, p0, p1), out=target)
                if bias is not None:
                    target += bias[:, None]
                activate(target, act)

        run_parallel(work, self._plan(x.shape[3]))
        return out

    def backward(self, dy, need):
        x, w, gw = self.x, self.params["weight"], self.grads["weight"]
        if self.groups > 1:
            gb = self.grads["bias"] if "bias" in self.grads else np.zeros(self.filters, self.dtype)
            parallel(grouped_backward_weights, self.filters, x, dy, self.groups, *self.geometry, gw, gb)
            if not need[0]:
                return [None]
            dx = self.gradient(x.shape)
            parallel(grouped_backward_input, self.cin, w, dy, self.groups, *self.geometry, dx)
            return [dx]
        passes = self.winograd or self.direct
        if passes is not None:
            dx = self.gradient(x.shape) if need[0] else None
            passes.backward(x, dy, w, gw, dx)
            if "bias" in self.grads:
                np.sum(dy.reshape(self.filters, -1), axis=1, out=self.grads["bias"])
            return [dx]
        dy2 = dy.reshape(self.filters, -1)
        w2 = w.reshape(self.filters, -1)
        n = x.shape[3]
        plan = self._plan(n)
        # The weight gradient is summed transposed, (rows, filters) += cols @ dy.T: OpenBLAS runs that shape faster
        # than dy @ cols.T (per core here: 99 vs 91 GFLOP/s with its AVX2 kernels, 171 vs 82 with AVX-512).
        partial = self.temp("gw_partial", (len(plan), self.rows, self.filters))
        product = self.temp("gw_product", (len(plan), self.rows, self.filters))
        # Windows of neighbouring output positions overlap: each worker sums into its own input gradient
        # (the first into the one returned, the others into workspace copies). A 1x1 conv's do not overlap.
        if not need[0]:
            dxs = None
        elif self.pointwise:
            dxs = [self.gradient(x.shape)]
        else:
            dxs = [self.gradient(x.shape)] + [self.temp(f"dx{i}", x.shape) for i in range(1, len(plan))]

        def work(worker, runs):
            partial[worker] = 0
            if dxs is not None and not self.pointwise:
                dxs[worker][...] = 0
            for p0, p1 in runs:
                g = dy2[:, p0 * n : p1 * n]
                np.matmul(self._columns(worker, p0, p1), g.T, out=product[worker])
                partial[worker] += product[worker]
                if dxs is None:
                    continue
                if self.pointwise:  # output position p is input position p: no overlap, write in place
                    np.matmul(w2.T, g, out=dxs[0].reshape(self.cin, -1)[:, p0 * n : p1 * n])
                else:
                    dcols = self._chunk_buffer("dcols", worker, p1 - p0, n)
                    np.matmul(w2.T, g, out=dcols)
                    col2im(dcols, p0, p1, self.fh, self.fw, *self.geometry, self.wo, dxs[worker])

        run_parallel(work, plan)
        for extra in partial[1:]:  # summed in place: no temporary of the weights' size
            partial[0] += extra
        gw.reshape(self.filters, self.rows)[...] = partial[0].T
        if "bias" in self.grads:
            np.sum(dy2, axis=1, out=self.grads["bias"])
        if dxs is None:
            return [None]
        if not self.pointwise:
            for extra in dxs[1:]:
                add_arrays(dxs[0], extra, dxs[0])
        return [dxs[0]]

    # -- the im2col + GEMM path works on chunks of output positions (oh, ow), each chunk's columns
    # (all samples of those positions) small enough to stay in cache, whatever the batch size

    def _plan(self, batch: int) -> list[list[tuple[int, int]]]:
        plan, self.chunk_positions = im2col_plan(self.rows, self.ho * self.wo, batch, workers())
        return plan

    def _chunk_buffer(self, name: str, worker: int, positions: int, batch: int) -> np.ndarray:
        flat = self.temp(f"{name}{worker}", (self.rows * self.chunk_positions * batch,))
        return flat[: self.rows * positions * batch].reshape(self.rows, positions * batch)

    def _columns(self, worker: int, p0: int, p1: int) -> np.ndarray:
        batch = self.x.shape[3]
        if self.pointwise:
            return self.x.reshape(self.cin, -1)[:, p0 * batch : p1 * batch]
        cols = self._chunk_buffer("cols", worker, p1 - p0, batch)
        im2col(self.x, p0, p1, self.fh, self.fw, *self.geometry, self.wo, cols)
        return cols


def activate(y: np.ndarray, act: int) -> None:
    """A folded batch norm's fused activation, in place (on a chunk that is still in cache)."""
    if act == RELU:
        np.maximum(y, 0, out=y)
    elif act == RELU6:
        np.clip(y, 0, 6, out=y)


OPS = (ConvOp,)
