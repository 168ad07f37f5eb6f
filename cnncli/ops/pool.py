"""Pooling kernels over CHWN tensors: max (arg-max routing), average (count_include_pad), L2, global."""

from __future__ import annotations

import numpy as np

from ..layers.pool import AvgPool, GlobalAvgPool, GlobalMaxPool, L2Pool, MaxPool
from .base import Op
from .jit import kernel
from .threads import parallel

# Kernels take a range of channels lo..hi and work on per-channel views; the innermost loop runs
# over the batch, contiguous in CHWN, so it vectorises.


NO_ACT, RELU, RELU6 = 0, 1, 2


@kernel
def max_pool_channel(xc, scale, shift, act, fh, fw, sh, sw, pt, pl, oc, ac):
    """Max pooling of one channel (H, W, N) of scale * x + shift, then the activation `act` (relu and
    relu6 commute with max). ac gets the arg-max as ih * W + iw; ties go to the first, as PyTorch.
    Plain pooling is scale 1, shift 0, no activation; batch norm's fused op passes its own."""
    H, W, N = xc.shape
    ho, wo = oc.shape[0], oc.shape[1]
    a = xc.dtype.type(scale)
    b = xc.dtype.type(shift)
    z = xc.dtype.type(0)
    six = xc.dtype.type(6)
    for oh in range(ho):
        h0 = max(oh * sh - pt, 0)
        h1 = min(oh * sh - pt + fh, H)
        for ow in range(wo):
            w0 = max(ow * sw - pl, 0)
            w1 = min(ow * sw - pl + fw, W)
            o, g = oc[oh, ow], ac[oh, ow]
            first = xc[h0, w0]
            start = h0 * W + w0
            for n in range(N):
                o[n] = first[n] * a + b
                g[n] = start
            for ih in range(h0, h1):
                for iw in range(w0, w1):
                    if ih == h0 and iw == w0:
                        continue
                    v = xc[ih, iw]
                    where = ih * W + iw
                    for n in range(N):
                        t = v[n] * a + b
                        better = t > o[n]
                        o[n] = t if better else o[n]
                        g[n] = where if better else g[n]
            if act == RELU:
                for n in range(N):
                    o[n] = max(o[n], z)
            elif act == RELU6:
                for n in range(N):
                    o[n] = min(max(o[n], z), six)


@kernel
def max_forward(lo, hi, x, fh, fw, sh, sw, pt, pl, out, arg):
    for c in range(lo, hi):
        max_pool_channel(x[c], 1.0, 0.0, NO_ACT, fh, fw, sh, sw, pt, pl, out[c], arg[c])


@kernel
def max_backward(lo, hi, dy, arg, dx):
    C, H, W, N = dx.shape
    P = dy.shape[1] * dy.shape[2]
    z = dx.dtype.type(0)
    for c in range(lo, hi):
        d, a, g = dx[c].reshape(-1), arg[c].reshape(-1), dy[c].reshape(-1)
        d[:] = z
        for q in range(P):
            base = q * N
            for n in range(N):
                d[a[base + n] * N + n] += g[base + n]


@kernel
def sum_forward(lo, hi, x, fh, fw, sh, sw, pt, pl, pb, pr, square, out):
    """Average (square=False, divided by PyTorch's count_include_pad window) or L2 (square=True) pooling."""
    C, H, W, N = x.shape
    _, ho, wo, _ = out.shape
    z = x.dtype.type(0)
    for c in range(lo, hi):
        xc, oc = x[c], out[c]
        for oh in range(ho):
            hs = oh * sh - pt
            he = min(hs + fh, H + pb)
            h0 = max(hs, 0)
            h1 = min(he, H)
            for ow in range(wo):
                ws = ow * sw - pl
                we = min(ws + fw, W + pr)
                w0 = max(ws, 0)
                w1 = min(we, W)
                o = oc[oh, ow]
                for n in range(N):
                    o[n] = z
                for ih in range(h0, h1):
                    for iw in range(w0, w1):
                        v = xc[ih, iw]
                        if square:
                            for n in range(N):
                                o[n] += v[n] * v[n]
                        else:
                            for n in range(N):
                                o[n] += v[n]
                if square:
                    for n in range(N):
                        o[n] = np.sqrt(o[n])
                else:
                    inv = x.dtype.type(1.0 / ((he - hs) * (we - ws)))
                    for n in range(N):
                        o[n] *= inv


@kernel
def sum_backward(lo, hi, dy, x, y, fh, fw, sh, sw, pt, pl, pb, pr, square, dx):
    C, H, W, N = dx.shape
    _, ho, wo, _ = dy.shape
    z = dx.dtype.type(0)
    for c in range(lo, hi):
        dxc = dx[c]
        dxc[...] = z
        for oh in range(ho):
            hs = oh * sh - pt
            he = min(hs + fh, H + pb)
            h0 = max(hs, 0)
            h1 = min(he, H)
            for ow in range(wo):
                ws = ow * sw - pl
                we = min(ws + fw, W + pr)
                w0 = max(ws, 0)
                w1 = min(we, W)
                g = dy[c, oh, ow]
                if square:
                    norm = y[c, oh, ow]
                    for ih in range(h0, h1):
                        for iw in range(w0, w1):
                            v, d = x[c, ih, iw], dxc[ih, iw]
                            for n in range(N):
                                if norm[n] > z:
                                    d[n] += g[n] * v[n] / norm[n]
                else:
                    inv = dx.dtype.type(1.0 / ((he - hs) * (we - ws)))
                    for ih in range(h0, h1):
                        for iw in range(w0, w1):
                            d = dxc[ih, iw]
                            for n in range(N):
                                d[n] += g[n] * inv


@kernel
def global_forward(lo, hi, x, use_max, out, arg):
    C, H, W, N = x.shape
    for c in range(lo, hi):
        xc, o, a = x[c], out[c, 0, 0], arg[c, 0, 0]
        for n in range(N):
            o[n] = xc[0, 0, n]
            a[n] = 0
        for ih in range(H):
            for iw in range(W):
                if ih == 0 and iw == 0:
                    continue
                v = xc[ih, iw]
                where = ih * W + iw
                if use_max:
                    for n in range(N):
                        better = v[n] > o[n]
                        o[n] = v[n] if better else o[n]
                        a[n] = where if better else a[n]
                else:
                    for n in range(N):
                        o[n] += v[n]
        if not use_max:
            inv = x.dtype.type(1.0 / (H * W))
            for n in range(N):
                o[n] *= inv


@kernel
def global_backward(lo, hi, dy, arg, use_max, dx):
    C, H, W, N = dx.shape
    z = dx.dtype.type(0)
    for c in range(lo, hi):
        g, a, dxc = dy[c, 0, 0], arg[c, 0, 0], dx[c]
        if use_max:
            dxc[...] = z
            for n in range(N):
                dxc[a[n] // W, a[n] % W, n] = g[n]
        else:
            inv = dx.dtype.type(1.0 / (H * W))
            for ih in range(H):
                for iw in range(W):
                    d = dxc[ih, iw]
                    for n in range(N):
                        d[n] = g[n] * inv


class _Window(Op):
    square = False

    def __init__(self, node, dtype):
        super().__init__(node, dtype)
        window = node.info.window
        self.fh, self.fw = window.kernel
        self.sh, self.sw = window.stride
        (self.pt, self.pb), (self.pl, self.pr) = window.pad_h, window.pad_w


class MaxPoolOp(_Window):
    kinds = (MaxPool,)

    def forward(self, xs, train, rng):
        x = xs[0]
        self.in_shape = x.shape
        out = self.scratch("out", self.out_shape(x.shape[3]))
        self.arg = self.scratch("arg", out.shape, np.int32)
        parallel(max_forward, x.shape[0], x, self.fh, self.fw, self.sh, self.sw, self.pt, self.pl, out, self.arg)
        return out

    def backward(self, dy, need):
        dx = self.gradient(self.in_shape)
        parallel(max_backward, dx.shape[0], dy, self.arg, dx)
        return [dx]


class SumPoolOp(_Window):
    kinds = (AvgPool,)

    def forward(self, xs, train, rng):
        self.x = xs[0]
        self.y = out = self.scratch("out", self.out_shape(self.x.shape[3]))
        parallel(sum_forward, out.shape[0], self.x, self.fh, self.fw, self.sh, self.sw, self.pt, self.pl, self.pb, self.pr, self.square, out)
        return out

    def backward(self, dy, need):
        dx = self.gradient(self.x.shape)
        parallel(sum_backward, dx.shape[0], dy, self.x, self.y, self.fh, self.fw, self.sh, self.sw, self.pt, self.pl, self.pb, self.pr,
                     self.square, dx)
        return [dx]


class L2PoolOp(SumPoolOp):
    kinds = (L2Pool,)
    square = True


class GlobalPoolOp(Op):
    kinds = (GlobalAvgPool, GlobalMaxPool)

    def forward(self, xs, train, rng):
        x = xs[0]
        self.in_shape = x.shape
        out = self.scratch("out", self.out_shape(x.shape[3]))
        self.arg = self.scratch("arg", out.shape, np.int32)
        parallel(global_forward, x.shape[0], x, self.node.kind is GlobalMaxPool, out, self.arg)
        return out

    def backward(self, dy, need):
        dx = self.gradient(self.in_shape)
        parallel(global_backward, dx.shape[0], dy, self.arg, self.node.kind is GlobalMaxPool, dx)
        return [dx]


OPS = (MaxPoolOp, SumPoolOp, L2PoolOp, GlobalPoolOp)
