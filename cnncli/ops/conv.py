"""Convolution: im2col + one BLAS GEMM per batch for g=1; a direct Numba kernel for groups/depthwise."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..layers.conv import window_output
from . import init
from .base import Op


@njit(parallel=True, cache=True)
def im2col(x, fh, fw, sh, sw, pt, pl, dh, dw, ho, wo, cols):
    C, N, H, W = x.shape
    per = ho * wo
    for r in prange(C * fh * fw):
        c = r // (fh * fw)
        i = (r // fw) % fh
        j = r % fw
        for n in range(N):
            base = n * per
            for oh in range(ho):
                ih = oh * sh - pt + i * dh
                row = base + oh * wo
                if ih < 0 or ih >= H:
                    for ow in range(wo):
                        cols[r, row + ow] = 0
                else:
                    for ow in range(wo):
                        iw = ow * sw - pl + j * dw
                        if iw >= 0 and iw < W:
                            cols[r, row + ow] = x[c, n, ih, iw]
                        else:
                            cols[r, row + ow] = 0


@njit(parallel=True, cache=True)
def col2im(cols, fh, fw, sh, sw, pt, pl, dh, dw, ho, wo, dx):
    C, N, H, W = dx.shape
    per = ho * wo
    for p in prange(C * N):
        c = p // N
        n = p % N
        plane = dx[c, n]
        plane[:, :] = 0
        for i in range(fh):
            for j in range(fw):
                r = (c * fh + i) * fw + j
                for oh in range(ho):
                    ih = oh * sh - pt + i * dh
                    if ih >= 0 and ih < H:
                        row = n * per + oh * wo
                        for ow in range(wo):
                            iw = ow * sw - pl + j * dw
                            if iw >= 0 and iw < W:
                                plane[ih, iw] += cols[r, row + ow]


@njit(parallel=True, cache=True)
def grouped_forward(x, w, b, use_bias, groups, sh, sw, pt, pl, dh, dw, out):
    K, N, ho, wo = out.shape
    C, _, H, W = x.shape
    kg = K // groups
    cg = C // groups
    fh, fw = w.shape[2], w.shape[3]
    for p in prange(K * N):
        k = p // N
        n = p % N
        c0 = (k // kg) * cg
        for oh in range(ho):
            for ow in range(wo):
                acc = b[k] if use_bias else b[k] * 0
                for cl in range(cg):
                    for i in range(fh):
                        ih = oh * sh - pt + i * dh
                        if ih < 0 or ih >= H:
                            continue
                        for j in range(fw):
                            iw = ow * sw - pl + j * dw
                            if iw >= 0 and iw < W:
                                acc += w[k, cl, i, j] * x[c0 + cl, n, ih, iw]
                out[k, n, oh, ow] = acc


@njit(parallel=True, cache=True)
def grouped_backward_weights(x, dy, groups, sh, sw, pt, pl, dh, dw, dw_out, db_out):
    K, N, ho, wo = dy.shape
    C, _, H, W = x.shape
    kg = K // groups
    cg = C // groups
    fh, fw = dw_out.shape[2], dw_out.shape[3]
    for k in prange(K):
        c0 = (k // kg) * cg
        db = 0.0
        for n in range(N):
            for oh in range(ho):
                for ow in range(wo):
                    db += dy[k, n, oh, ow]
        db_out[k] = db
        for cl in range(cg):
            for i in range(fh):
                for j in range(fw):
                    acc = 0.0
                    for n in range(N):
                        for oh in range(ho):
                            ih = oh * sh - pt + i * dh
                            if ih < 0 or ih >= H:
                                continue
                            for ow in range(wo):
                                iw = ow * sw - pl + j * dw
                                if iw >= 0 and iw < W:
                                    acc += dy[k, n, oh, ow] * x[c0 + cl, n, ih, iw]
                    dw_out[k, cl, i, j] = acc


@njit(parallel=True, cache=True)
def grouped_backward_input(w, dy, groups, sh, sw, pt, pl, dh, dw, dx):
    K, N, ho, wo = dy.shape
    C, _, H, W = dx.shape
    kg = K // groups
    cg = C // groups
    fh, fw = w.shape[2], w.shape[3]
    for p in prange(C * N):
        c = p // N
        n = p % N
        g = c // cg
        cl = c - g * cg
        plane = dx[c, n]
        plane[:, :] = 0
        for k in range(g * kg, (g + 1) * kg):
            for oh in range(ho):
                for i in range(fh):
                    ih = oh * sh - pt + i * dh
                    if ih < 0 or ih >= H:
                        continue
                    for ow in range(wo):
                        g_out = dy[k, n, oh, ow]
                        for j in range(fw):
                            iw = ow * sw - pl + j * dw
                            if iw >= 0 and iw < W:
                                plane[ih, iw] += w[k, cl, i, j] * g_out


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
        self.sh, self.sw = self.p["s"]
        self.dh, self.dw = self.p["d"]
        self.ho, self.wo = node.shape[1], node.shape[2]
        # A 1x1, stride-1, unpadded conv needs no im2col: the input already is the column matrix.
        self.pointwise = (self.fh, self.fw, self.sh, self.sw, self.pt, self.pl) == (1, 1, 1, 1, 0, 0)

    def param_shapes(self):
        shapes = {"weight": (self.filters, self.cin // self.groups, self.fh, self.fw)}
        if self.p["bias"]:
            shapes["bias"] = (self.filters,)
        return shapes

    def init(self, rng):
        fan_in = self.cin // self.groups * self.fh * self.fw
        fan_out = self.filters // self.groups * self.fh * self.fw
        init.weights(self.params["weight"], self.p["init"], fan_in, fan_out, rng)
        if "bias" in self.params:
            init.bias(self.params["bias"], self.p["init"], fan_in, rng)

    def _geometry(self):
        return self.sh, self.sw, self.pt, self.pl, self.dh, self.dw

    def forward(self, xs, train, rng):
        x = xs[0]
        self.x = x
        n = x.shape[1]
        out = self.scratch("out", self.out_shape(n))
        w = self.params["weight"]
        bias = self.params.get("bias")
        if self.groups > 1:
            b = bias if bias is not None else self.scratch("nobias", (self.filters,))
            grouped_forward(x, w, b, bias is not None, self.groups, *self._geometry(), out)
            return out
        cols = self.columns(x)
        out2 = out.reshape(self.filters, -1)
        np.matmul(w.reshape(self.filters, -1), cols, out=out2)
        if bias is not None:
            out2 += bias[:, None]
        return out

    def columns(self, x):
        n = x.shape[1]
        if self.pointwise:
            return x.reshape(self.cin, -1)
        cols = self.scratch("cols", (self.cin * self.fh * self.fw, n * self.ho * self.wo))
        im2col(x, self.fh, self.fw, *self._geometry(), self.ho, self.wo, cols)
        return cols

    def backward(self, dy, need):
        x = self.x
        w = self.params["weight"]
        gw = self.grads["weight"]
        if self.groups > 1:
            gb = self.grads["bias"] if "bias" in self.grads else self.scratch("nobias_grad", (self.filters,))
            grouped_backward_weights(x, dy, self.groups, *self._geometry(), gw, gb)
            if not need[0]:
                return [None]
            dx = self.scratch("dx", x.shape)
            grouped_backward_input(w, dy, self.groups, *self._geometry(), dx)
            return [dx]
        dy2 = dy.reshape(self.filters, -1)
        cols = x.reshape(self.cin, -1) if self.pointwise else self._scratch["cols"]  # kept from forward
        np.matmul(dy2, cols.T, out=gw.reshape(self.filters, -1))
        if "bias" in self.grads:
            np.sum(dy2, axis=1, out=self.grads["bias"])
        if not need[0]:
            return [None]
        dx = self.scratch("dx", x.shape)
        if self.pointwise:
            np.matmul(w.reshape(self.filters, -1).T, dy2, out=dx.reshape(self.cin, -1))
            return [dx]
        dcols = self.scratch("dcols", cols.shape)
        np.matmul(w.reshape(self.filters, -1).T, dy2, out=dcols)
        col2im(dcols, self.fh, self.fw, *self._geometry(), self.ho, self.wo, dx)
        return [dx]


OPS = {"conv": ConvOp}
