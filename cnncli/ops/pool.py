"""Pooling kernels over CNHW planes: max (arg-max routing), average (count_include_pad), L2, global."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..layers.conv import window_output
from .base import Op


@njit(parallel=True, cache=True)
def max_forward(x, fh, fw, sh, sw, pt, pl, out, arg):
    C, N, H, W = x.shape
    _, _, ho, wo = out.shape
    for p in prange(C * N):
        c = p // N
        n = p % N
        for oh in range(ho):
            h0 = max(oh * sh - pt, 0)
            h1 = min(oh * sh - pt + fh, H)
            for ow in range(wo):
                w0 = max(ow * sw - pl, 0)
                w1 = min(ow * sw - pl + fw, W)
                best = x[c, n, h0, w0]
                where = h0 * W + w0
                for ih in range(h0, h1):
                    for iw in range(w0, w1):
                        v = x[c, n, ih, iw]
                        if v > best:
                            best = v
                            where = ih * W + iw
                out[c, n, oh, ow] = best
                arg[c, n, oh, ow] = where


@njit(parallel=True, cache=True)
def max_backward(dy, arg, dx):
    C, N, H, W = dx.shape
    _, _, ho, wo = dy.shape
    for p in prange(C * N):
        c = p // N
        n = p % N
        plane = dx[c, n]
        plane[:, :] = 0
        for oh in range(ho):
            for ow in range(wo):
                a = arg[c, n, oh, ow]
                plane[a // W, a % W] += dy[c, n, oh, ow]


@njit(parallel=True, cache=True)
def sum_forward(x, fh, fw, sh, sw, pt, pl, pb, pr, square, out):
    """Average (square=False, divided by PyTorch's count_include_pad window) or L2 (square=True) pooling."""
    C, N, H, W = x.shape
    _, _, ho, wo = out.shape
    for p in prange(C * N):
        c = p // N
        n = p % N
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
                acc = x[c, n, 0, 0] * 0
                for ih in range(h0, h1):
                    for iw in range(w0, w1):
                        v = x[c, n, ih, iw]
                        acc += v * v if square else v
                if square:
                    out[c, n, oh, ow] = np.sqrt(acc)
                else:
                    out[c, n, oh, ow] = acc / ((he - hs) * (we - ws))


@njit(parallel=True, cache=True)
def sum_backward(dy, x, y, fh, fw, sh, sw, pt, pl, pb, pr, square, dx):
    C, N, H, W = dx.shape
    _, _, ho, wo = dy.shape
    for p in prange(C * N):
        c = p // N
        n = p % N
        plane = dx[c, n]
        plane[:, :] = 0
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
                g = dy[c, n, oh, ow]
                if square:
                    norm = y[c, n, oh, ow]
                    if norm > 0:
                        for ih in range(h0, h1):
                            for iw in range(w0, w1):
                                plane[ih, iw] += g * x[c, n, ih, iw] / norm
                else:
                    share = g / ((he - hs) * (we - ws))
                    for ih in range(h0, h1):
                        for iw in range(w0, w1):
                            plane[ih, iw] += share


@njit(parallel=True, cache=True)
def global_forward(x, use_max, out, arg):
    C, N, H, W = x.shape
    for p in prange(C * N):
        c = p // N
        n = p % N
        if use_max:
            best = x[c, n, 0, 0]
            where = 0
            for ih in range(H):
                for iw in range(W):
                    if x[c, n, ih, iw] > best:
                        best = x[c, n, ih, iw]
                        where = ih * W + iw
            out[c, n, 0, 0] = best
            arg[c, n, 0, 0] = where
        else:
            acc = 0.0
            for ih in range(H):
                for iw in range(W):
                    acc += x[c, n, ih, iw]
            out[c, n, 0, 0] = acc / (H * W)


@njit(parallel=True, cache=True)
def global_backward(dy, arg, use_max, dx):
    C, N, H, W = dx.shape
    for p in prange(C * N):
        c = p // N
        n = p % N
        g = dy[c, n, 0, 0]
        if use_max:
            dx[c, n] = 0
            a = arg[c, n, 0, 0]
            dx[c, n, a // W, a % W] = g
        else:
            dx[c, n] = g / (H * W)


class _Window(Op):
    square = False

    def __init__(self, node, dtype):
        super().__init__(node, dtype)
        self.fh, self.fw = self.p["f"]
        self.sh, self.sw = self.p["s"] or self.p["f"]
        _, pads, _ = window_output(node.kind.name, node.in_shapes[0], self.p["f"], (self.sh, self.sw), self.p["p"],
                                   ceil=self.p["ceil"])
        (self.pt, self.pb), (self.pl, self.pr) = pads


class MaxPoolOp(_Window):
    def forward(self, xs, train, rng):
        x = xs[0]
        self.in_shape = x.shape
        out = self.scratch("out", self.out_shape(x.shape[1]))
        self.arg = self.scratch("arg", out.shape, np.int32)
        max_forward(x, self.fh, self.fw, self.sh, self.sw, self.pt, self.pl, out, self.arg)
        return out

    def backward(self, dy, need):
        dx = self.scratch("dx", self.in_shape)
        max_backward(dy, self.arg, dx)
        return [dx]


class SumPoolOp(_Window):
    def forward(self, xs, train, rng):
        self.x = xs[0]
        self.y = out = self.scratch("out", self.out_shape(self.x.shape[1]))
        sum_forward(self.x, self.fh, self.fw, self.sh, self.sw, self.pt, self.pl, self.pb, self.pr, self.square, out)
        return out

    def backward(self, dy, need):
        dx = self.scratch("dx", self.x.shape)
        sum_backward(dy, self.x, self.y, self.fh, self.fw, self.sh, self.sw, self.pt, self.pl, self.pb, self.pr,
                     self.square, dx)
        return [dx]


class L2PoolOp(SumPoolOp):
    square = True


class GlobalPoolOp(Op):
    def forward(self, xs, train, rng):
        x = xs[0]
        self.in_shape = x.shape
        out = self.scratch("out", self.out_shape(x.shape[1]))
        self.arg = self.scratch("arg", out.shape, np.int32)
        global_forward(x, self.node.kind.name == "gmp", out, self.arg)
        return out

    def backward(self, dy, need):
        dx = self.scratch("dx", self.in_shape)
        global_backward(dy, self.arg, self.node.kind.name == "gmp", dx)
        return [dx]


OPS = {"pool": MaxPoolOp, "avgpool": SumPoolOp, "l2pool": L2PoolOp, "gap": GlobalPoolOp, "gmp": GlobalPoolOp}
