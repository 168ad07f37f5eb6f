"""Convolution. For g=1: im2col + BLAS GEMM on chunks of samples small enough to stay in cache, the
chunks shared among worker threads. For groups and depthwise: direct Numba kernels."""

from __future__ import annotations

import numpy as np

from ..layers.conv import window_output
from . import init
from .base import Op
from .jit import kernel
from .threads import parallel, run_parallel, split_work

CHUNK_VALUES = 1 << 19  # column-matrix values per chunk (2 MiB of float32)


@kernel
def im2col(x, oh0, oh1, fh, fw, sh, sw, pt, pl, dh, dw, wo, cols):
    """cols[(c, i, j), (oh - oh0, ow, n)] for output rows oh0..oh1-1 of a CHWN input. The valid
    columns of each kernel offset are computed once; with stride 1 each output row is one
    contiguous copy of (valid width) x N values."""
    C, H, W, N = x.shape
    flat = x.reshape(-1)
    out = cols.reshape(-1)
    width = cols.shape[1]
    span = wo * N
    for c in range(C):
        for i in range(fh):
            for j in range(fw):
                r = (c * fh + i) * fw + j
                off = j * dw - pl
                lo = min(max((-off + sw - 1) // sw, 0), wo)  # first ow whose iw >= 0
                hi = min(max((W - off + sw - 1) // sw, lo), wo)  # first ow whose iw >= W
                for oh in range(oh0, oh1):
                    ih = oh * sh - pt + i * dh
                    dst = r * width + (oh - oh0) * span
                    if ih < 0 or ih >= H:
                        out[dst : dst + span] = 0
                        continue
                    out[dst : dst + lo * N] = 0
                    row = (c * H + ih) * W * N
                    if sw == 1:
                        src = row + (lo + off) * N
                        count = (hi - lo) * N
                        out[dst + lo * N : dst + lo * N + count] = flat[src : src + count]
                    else:
                        for ow in range(lo, hi):
                            src = row + (ow * sw + off) * N
                            out[dst + ow * N : dst + ow * N + N] = flat[src : src + N]
                    out[dst + hi * N : dst + span] = 0


@kernel
def col2im(cols, oh0, oh1, fh, fw, sh, sw, pt, pl, dh, dw, wo, dx):
    """The adjoint of im2col: adds the columns of output rows oh0..oh1-1 into dx (not zeroed here)."""
    C, H, W, N = dx.shape
    flat = dx.reshape(-1)
    src = cols.reshape(-1)
    width = cols.shape[1]
    span = wo * N
    for c in range(C):
        for i in range(fh):
            for j in range(fw):
                r = (c * fh + i) * fw + j
                off = j * dw - pl
                lo = min(max((-off + sw - 1) // sw, 0), wo)
                hi = min(max((W - off + sw - 1) // sw, lo), wo)
                for oh in range(oh0, oh1):
                    ih = oh * sh - pt + i * dh
                    if ih < 0 or ih >= H:
                        continue
                    base = r * width + (oh - oh0) * span
                    row = (c * H + ih) * W * N
                    if sw == 1:
                        dst = row + (lo + off) * N
                        count = (hi - lo) * N
                        flat[dst : dst + count] += src[base + lo * N : base + lo * N + count]
                    else:
                        for ow in range(lo, hi):
                            dst = row + (ow * sw + off) * N
                            first = base + ow * N
                            for n in range(N):
                                flat[dst + n] += src[first + n]


@kernel
def grouped_forward(lo, hi, x, w, b, use_bias, groups, sh, sw, pt, pl, dh, dw, out):
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
                        ih = oh * sh - pt + i * dh
                        if ih < 0 or ih >= H:
                            continue
                        for j in range(fw):
                            iw = ow * sw - pl + j * dw
                            if iw < 0 or iw >= W:
                                continue
                            wt = w[k, cl, i, j]
                            for n in range(N):
                                out[k, oh, ow, n] += wt * x[c0 + cl, ih, iw, n]


@kernel
def grouped_backward_weights(lo, hi, x, dy, groups, sh, sw, pt, pl, dh, dw, dw_out, db_out):
    K, ho, wo, N = dy.shape
    C, H, W, _ = x.shape
    kg = K // groups
    cg = C // groups
    fh, fw = dw_out.shape[2], dw_out.shape[3]
    for k in range(lo, hi):
        c0 = (k // kg) * cg
        total = 0.0
        for oh in range(ho):
            for ow in range(wo):
                for n in range(N):
                    total += dy[k, oh, ow, n]
        db_out[k] = total
        for cl in range(cg):
            for i in range(fh):
                for j in range(fw):
                    acc = 0.0
                    for oh in range(ho):
                        ih = oh * sh - pt + i * dh
                        if ih < 0 or ih >= H:
                            continue
                        for ow in range(wo):
                            iw = ow * sw - pl + j * dw
                            if iw < 0 or iw >= W:
                                continue
                            for n in range(N):
                                acc += dy[k, oh, ow, n] * x[c0 + cl, ih, iw, n]
                    dw_out[k, cl, i, j] = acc


@kernel
def grouped_backward_input(lo, hi, w, dy, groups, sh, sw, pt, pl, dh, dw, dx):
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
                    ih = oh * sh - pt + i * dh
                    if ih < 0 or ih >= H:
                        continue
                    for ow in range(wo):
                        for j in range(fw):
                            iw = ow * sw - pl + j * dw
                            if iw < 0 or iw >= W:
                                continue
                            wt = w[k, cl, i, j]
                            for n in range(N):
                                dx[c, ih, iw, n] += wt * dy[k, oh, ow, n]


class ConvOp(Op):
    def __init__(self, node, dtype):
        super().__init__(node, dtype)
        c = node.in_shapes[0][0]
        self.groups = c if self.p["g"] == "dw" else self.p["g"]
        self.filters = node.shape[0]
        self.cin = c
        _, pads, _ = window_output("conv", node.in_shapes[0], self.p["f"], self.p["s"], self.p["p"], self.p["d"])
        self.pt, self.pl = pads[0][0], pads[1][0]
        self.fh, self.fw = self.p["f"]
        self.ho, self.wo = node.shape[1], node.shape[2]
        self.geometry = (*self.p["s"], self.pt, self.pl, *self.p["d"])  # sh, sw, pt, pl, dh, dw
        self.rows = self.cin // self.groups * self.fh * self.fw
        # A 1x1, stride-1, unpadded conv needs no im2col: the input already is the column matrix.
        self.pointwise = (self.fh, self.fw, self.p["s"], self.pt, self.pl) == (1, 1, (1, 1), 0, 0)

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

    def forward(self, xs, train, rng):
        x = self.x = xs[0]
        out = self.scratch("out", self.out_shape(x.shape[3]))
        w = self.params["weight"]
        bias = self.params.get("bias")
        if self.groups > 1:
            b = bias if bias is not None else np.zeros(self.filters, self.dtype)
            parallel(grouped_forward, self.filters, x, w, b, bias is not None, self.groups, *self.geometry, out)
            return out
        w2 = w.reshape(self.filters, -1)
        out2 = out.reshape(self.filters, -1)
        span = self.wo * x.shape[3]

        def work(worker, runs):
            for oh0, oh1 in runs:
                target = out2[:, oh0 * span : oh1 * span]
                np.matmul(w2, self._columns(worker, oh0, oh1), out=target)
                if bias is not None:
                    target += bias[:, None]

        run_parallel(work, self._plan(x.shape[3]))
        return out

    def backward(self, dy, need):
        x, w, gw = self.x, self.params["weight"], self.grads["weight"]
        if self.groups > 1:
            gb = self.grads["bias"] if "bias" in self.grads else np.zeros(self.filters, self.dtype)
            parallel(grouped_backward_weights, self.filters, x, dy, self.groups, *self.geometry, gw, gb)
            if not need[0]:
                return [None]
            dx = self.scratch("dx", x.shape)
            parallel(grouped_backward_input, self.cin, w, dy, self.groups, *self.geometry, dx)
            return [dx]
        dy2 = dy.reshape(self.filters, -1)
        w2 = w.reshape(self.filters, -1)
        span = self.wo * x.shape[3]
        plan = self._plan(x.shape[3])
        partial = self.scratch("dw_partial", (len(plan), self.filters, self.rows))
        product = self.scratch("dw_product", (len(plan), self.filters, self.rows))
        # Windows of neighbouring output rows overlap, so each worker sums into its own input gradient.
        dxs = [self.scratch("dx" if i == 0 else f"dx{i}", x.shape) for i in range(len(plan))] if need[0] else None

        def work(worker, runs):
            partial[worker] = 0
            if dxs is not None and not self.pointwise:
                dxs[worker][...] = 0
            for oh0, oh1 in runs:
                g = dy2[:, oh0 * span : oh1 * span]
                np.matmul(g, self._columns(worker, oh0, oh1).T, out=product[worker])
                partial[worker] += product[worker]
                if dxs is None:
                    continue
                if self.pointwise:  # output row oh is input row oh: no overlap, write in place
                    np.matmul(w2.T, g, out=dxs[0].reshape(self.cin, -1)[:, oh0 * span : oh1 * span])
                else:
                    dcols = self._chunk_buffer("dcols", worker, oh1 - oh0, x.shape[3])
                    np.matmul(w2.T, g, out=dcols)
                    col2im(dcols, oh0, oh1, self.fh, self.fw, *self.geometry, self.wo, dxs[worker])

        run_parallel(work, plan)
        np.sum(partial, axis=0, out=gw.reshape(self.filters, self.rows))
        if "bias" in self.grads:
            np.sum(dy2, axis=1, out=self.grads["bias"])
        if dxs is None:
            return [None]
        if not self.pointwise:
            for extra in dxs[1:]:
                dxs[0] += extra
        return [dxs[0]]

    # -- the im2col + GEMM path works on chunks of output rows, each small enough to stay in cache

    def _plan(self, batch: int) -> list[list[tuple[int, int]]]:
        size = max(1, min(self.ho, CHUNK_VALUES // (self.rows * self.wo * batch)))
        self.chunk_rows = size
        return split_work(self.ho, size)

    def _chunk_buffer(self, name: str, worker: int, rows_out: int, batch: int) -> np.ndarray:
        span = self.wo * batch
        flat = self.scratch(f"{name}{worker}", (self.rows * self.chunk_rows * span,))
        return flat[: self.rows * rows_out * span].reshape(self.rows, rows_out * span)

    def _columns(self, worker: int, oh0: int, oh1: int) -> np.ndarray:
        batch = self.x.shape[3]
        span = self.wo * batch
        if self.pointwise:
            return self.x.reshape(self.cin, -1)[:, oh0 * span : oh1 * span]
        cols = self._chunk_buffer("cols", worker, oh1 - oh0, batch)
        im2col(self.x, oh0, oh1, self.fh, self.fw, *self.geometry, self.wo, cols)
        return cols


OPS = {"conv": ConvOp}
