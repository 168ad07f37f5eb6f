"""Pooling kernels over CHWN tensors: max (arg-max routing), average (count_include_pad), L2, global."""

from __future__ import annotations

import numpy as np
from numba import njit

from ..layers.conv import window_output
from .base import Op
from .threads import parallel


@njit(nogil=True, cache=True)
def max_forward(lo, hi, x, fh, fw, sh, sw, pt, pl, out, arg):
    """arg holds the arg-max as ih * W + iw, for the backward pass. Ties go to the first, as PyTorch."""
    C, H, W, N = x.shape
    _, ho, wo, _ = out.shape
    for c in range(lo, hi):
        for oh in range(ho):
            h0 = max(oh * sh - pt, 0)
            h1 = min(oh * sh - pt + fh, H)
            for ow in range(wo):
                w0 = max(ow * sw - pl, 0)
                w1 = min(ow * sw - pl + fw, W)
                for n in range(N):
                    out[c, oh, ow, n] = x[c, h0, w0, n]
                    arg[c, oh, ow, n] = h0 * W + w0
                for ih in range(h0, h1):
                    for iw in range(w0, w1):
                        where = ih * W + iw
                        for n in range(N):
                            v = x[c, ih, iw, n]
                            if v > out[c, oh, ow, n]:
                                out[c, oh, ow, n] = v
                                arg[c, oh, ow, n] = where


@njit(nogil=True, cache=True)
def max_backward(lo, hi, dy, arg, dx):
    C, H, W, N = dx.shape
    _, ho, wo, _ = dy.shape
    for c in range(lo, hi):
        dx[c] = 0
        for oh in range(ho):
            for ow in range(wo):
                for n in range(N):
                    a = arg[c, oh, ow, n]
                    dx[c, a // W, a % W, n] += dy[c, oh, ow, n]


@njit(nogil=True, cache=True)
def sum_forward(lo, hi, x, fh, fw, sh, sw, pt, pl, pb, pr, square, out):
    """Average (square=False, divided by PyTorch's count_include_pad window) or L2 (square=True) pooling."""
    C, H, W, N = x.shape
    _, ho, wo, _ = out.shape
    for c in range(lo, hi):
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
                for n in range(N):
                    out[c, oh, ow, n] = 0
                for ih in range(h0, h1):
                    for iw in range(w0, w1):
                        for n in range(N):
                            v = x[c, ih, iw, n]
                            out[c, oh, ow, n] += v * v if square else v
                if square:
                    for n in range(N):
                        out[c, oh, ow, n] = np.sqrt(out[c, oh, ow, n])
                else:
                    inv = 1.0 / ((he - hs) * (we - ws))
                    for n in range(N):
                        out[c, oh, ow, n] *= inv


@njit(nogil=True, cache=True)
def sum_backward(lo, hi, dy, x, y, fh, fw, sh, sw, pt, pl, pb, pr, square, dx):
    C, H, W, N = dx.shape
    _, ho, wo, _ = dy.shape
    for c in range(lo, hi):
        dx[c] = 0
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
                inv = 1.0 / ((he - hs) * (we - ws))
                for ih in range(h0, h1):
                    for iw in range(w0, w1):
                        for n in range(N):
                            g = dy[c, oh, ow, n]
                            if square:
                                norm = y[c, oh, ow, n]
                                if norm > 0:
                                    dx[c, ih, iw, n] += g * x[c, ih, iw, n] / norm
                            else:
                                dx[c, ih, iw, n] += g * inv


@njit(nogil=True, cache=True)
def global_forward(lo, hi, x, use_max, out, arg):
    C, H, W, N = x.shape
    for c in range(lo, hi):
        for n in range(N):
            out[c, 0, 0, n] = x[c, 0, 0, n]
            arg[c, 0, 0, n] = 0
        for ih in range(H):
            for iw in range(W):
                if ih == 0 and iw == 0:
                    continue
                for n in range(N):
                    v = x[c, ih, iw, n]
                    if use_max:
                        if v > out[c, 0, 0, n]:
                            out[c, 0, 0, n] = v
                            arg[c, 0, 0, n] = ih * W + iw
                    else:
                        out[c, 0, 0, n] += v
        if not use_max:
            inv = 1.0 / (H * W)
            for n in range(N):
                out[c, 0, 0, n] *= inv


@njit(nogil=True, cache=True)
def global_backward(lo, hi, dy, arg, use_max, dx):
    C, H, W, N = dx.shape
    for c in range(lo, hi):
        if use_max:
            dx[c] = 0
            for n in range(N):
                a = arg[c, 0, 0, n]
                dx[c, a // W, a % W, n] = dy[c, 0, 0, n]
        else:
            inv = 1.0 / (H * W)
            for ih in range(H):
                for iw in range(W):
                    for n in range(N):
                        dx[c, ih, iw, n] = dy[c, 0, 0, n] * inv


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
        out = self.scratch("out", self.out_shape(x.shape[3]))
        self.arg = self.scratch("arg", out.shape, np.int32)
        parallel(max_forward, x.shape[0], x, self.fh, self.fw, self.sh, self.sw, self.pt, self.pl, out, self.arg)
        return out

    def backward(self, dy, need):
        dx = self.scratch("dx", self.in_shape)
        parallel(max_backward, dx.shape[0], dy, self.arg, dx)
        return [dx]


class SumPoolOp(_Window):
    def forward(self, xs, train, rng):
        self.x = xs[0]
        self.y = out = self.scratch("out", self.out_shape(self.x.shape[3]))
        parallel(sum_forward, out.shape[0], self.x, self.fh, self.fw, self.sh, self.sw, self.pt, self.pl, self.pb, self.pr, self.square, out)
        return out

    def backward(self, dy, need):
        dx = self.scratch("dx", self.x.shape)
        parallel(sum_backward, dx.shape[0], dy, self.x, self.y, self.fh, self.fw, self.sh, self.sw, self.pt, self.pl, self.pb, self.pr,
                     self.square, dx)
        return [dx]


class L2PoolOp(SumPoolOp):
    square = True


class GlobalPoolOp(Op):
    def forward(self, xs, train, rng):
        x = xs[0]
        self.in_shape = x.shape
        out = self.scratch("out", self.out_shape(x.shape[3]))
        self.arg = self.scratch("arg", out.shape, np.int32)
        parallel(global_forward, x.shape[0], x, self.node.kind.name == "gmp", out, self.arg)
        return out

    def backward(self, dy, need):
        dx = self.scratch("dx", self.in_shape)
        parallel(global_backward, dx.shape[0], dy, self.arg, self.node.kind.name == "gmp", dx)
        return [dx]


OPS = {"pool": MaxPoolOp, "avgpool": SumPoolOp, "l2pool": L2PoolOp, "gap": GlobalPoolOp, "gmp": GlobalPoolOp}
