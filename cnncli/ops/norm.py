"""Batch norm (PyTorch's definition: biased variance to normalise, unbiased for the running
estimate, momentum 0.1) and local response norm (PyTorch's formula), over CNHW tensors."""

from __future__ import annotations

import numpy as np
from numba import njit

from .base import Op
from .threads import parallel


@njit(nogil=True, cache=True)
def bn_train_forward(lo, hi, x, gamma, beta, eps, y, xhat, mean, var, invstd):
    C, M = x.shape
    for c in range(lo, hi):
        s = 0.0
        for i in range(M):
            s += x[c, i]
        mu = s / M
        q = 0.0
        for i in range(M):
            d = x[c, i] - mu
            q += d * d
        v = q / M
        inv = 1.0 / np.sqrt(v + eps)
        mean[c] = mu
        var[c] = v
        invstd[c] = inv
        b = beta[c]
        m32 = x.dtype.type(mu)
        i32 = x.dtype.type(inv)
        for i in range(M):
            h = (x[c, i] - m32) * i32
            xhat[c, i] = h
            y[c, i] = h * gamma[c] + b


@njit(nogil=True, cache=True)
def bn_eval_forward(lo, hi, x, gamma, beta, mean, var, eps, y, xhat):
    C, M = x.shape
    for c in range(lo, hi):
        inv = x.dtype.type(1.0 / np.sqrt(var[c] + eps))
        mu = mean[c]
        for i in range(M):
            h = (x[c, i] - mu) * inv
            xhat[c, i] = h
            y[c, i] = h * gamma[c] + beta[c]


@njit(nogil=True, cache=True)
def bn_backward(lo, hi, dy, xhat, gamma, invstd, train, dx, dgamma, dbeta):
    C, M = dy.shape
    for c in range(lo, hi):
        sg = 0.0
        sb = 0.0
        for i in range(M):
            sg += dy[c, i] * xhat[c, i]
            sb += dy[c, i]
        dgamma[c] = sg
        dbeta[c] = sb
        scale = gamma[c] * invstd[c]
        if train:
            a = dy.dtype.type(scale)
            mb = dy.dtype.type(sb / M)
            mg = dy.dtype.type(sg / M)
            for i in range(M):
                dx[c, i] = a * (dy[c, i] - mb - xhat[c, i] * mg)
        else:
            a = dy.dtype.type(scale)
            for i in range(M):
                dx[c, i] = a * dy[c, i]


class BatchNormOp(Op):
    def __init__(self, node, dtype):
        super().__init__(node, dtype)
        self.channels = node.shape[0]

    def param_shapes(self):
        return {"weight": (self.channels,), "bias": (self.channels,)} if self.p["affine"] else {}

    def buffer_shapes(self):
        return {"running_mean": (self.channels,), "running_var": (self.channels,)}

    def init(self, rng):
        if self.p["affine"]:
            self.params["weight"][...] = 1
            self.params["bias"][...] = 0
        self.buffers["running_mean"][...] = 0
        self.buffers["running_var"][...] = 1

    def _affine(self):
        if self.p["affine"]:
            return self.params["weight"], self.params["bias"]
        ones = self.scratch("ones", (self.channels,))
        ones[...] = 1
        zeros = self.scratch("zeros", (self.channels,))
        zeros[...] = 0
        return ones, zeros

    def forward(self, xs, train, rng):
        x = xs[0]
        self.shape = x.shape
        x2 = x.reshape(self.channels, -1)
        y = self.scratch("out", x.shape)
        self.xhat = self.scratch("xhat", x2.shape)
        gamma, beta = self._affine()
        self.invstd = self.scratch("invstd", (self.channels,), np.float64)
        self.train = train
        eps = self.p["eps"]
        if train:
            if x2.shape[1] < 2:
                from ..errors import UserError

                raise UserError(f"{self.node.name}: batch norm in training needs more than one value per channel",
                                "use a batch of at least 2 samples")
            mean = self.scratch("mean", (self.channels,), np.float64)
            var = self.scratch("var", (self.channels,), np.float64)
            parallel(bn_train_forward, self.channels, x2, gamma, beta, eps, y.reshape(x2.shape), self.xhat, mean, var, self.invstd)
            m = self.p["momentum"]
            count = x2.shape[1]
            rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
            rm[...] = (1 - m) * rm + m * mean
            rv[...] = (1 - m) * rv + m * var * (count / (count - 1))
        else:
            rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
            parallel(bn_eval_forward, self.channels, x2, gamma, beta, rm, rv, eps, y.reshape(x2.shape), self.xhat)
            self.invstd[...] = 1.0 / np.sqrt(rv.astype(np.float64) + eps)
        return y

    def backward(self, dy, need):
        gamma, _ = self._affine()
        dx = self.scratch("dx", self.shape)
        dgamma = self.grads.get("weight")
        dbeta = self.grads.get("bias")
        if dgamma is None:
            dgamma = self.scratch("dgamma", (self.channels,))
            dbeta = self.scratch("dbeta", (self.channels,))
        parallel(bn_backward, self.channels, dy.reshape(self.channels, -1), self.xhat, gamma, self.invstd, self.train,
                    dx.reshape(self.channels, -1), dgamma, dbeta)
        return [dx]


@njit(nogil=True, cache=True)
def lrn_forward(lo, hi, x, size, alpha, beta, k, y, scale):
    C, M = x.shape
    before = size // 2
    after = (size - 1) // 2
    coef = alpha / size
    for c in range(lo, hi):
        first = max(c - before, 0)
        last = min(c + after, C - 1)
        for i in range(M):
            s = 0.0
            for cc in range(first, last + 1):
                s += x[cc, i] * x[cc, i]
            sc = k + coef * s
            scale[c, i] = sc
            y[c, i] = x[c, i] * sc ** (-beta)


@njit(nogil=True, cache=True)
def lrn_backward_terms(lo, hi, dy, x, scale, beta, t):
    C, M = x.shape
    for c in range(lo, hi):
        for i in range(M):
            t[c, i] = dy[c, i] * x[c, i] * scale[c, i] ** (-beta - 1.0)


@njit(nogil=True, cache=True)
def lrn_backward(lo, hi, dy, x, scale, size, alpha, beta, t, dx):
    C, M = x.shape
    before = size // 2
    after = (size - 1) // 2
    coef = 2.0 * alpha * beta / size
    for c in range(lo, hi):
        first = max(c - after, 0)  # the channels whose window contains c
        last = min(c + before, C - 1)
        for i in range(M):
            s = 0.0
            for cc in range(first, last + 1):
                s += t[cc, i]
            dx[c, i] = dy[c, i] * scale[c, i] ** (-beta) - coef * x[c, i] * s


class LRNOp(Op):
    def forward(self, xs, train, rng):
        x = xs[0]
        self.x = x
        c = x.shape[0]
        y = self.scratch("out", x.shape)
        self.sc = self.scratch("scale", (c, x.size // c))
        parallel(lrn_forward, c, x.reshape(c, -1), self.p["size"], self.p["alpha"], self.p["beta"], self.p["k"],
                    y.reshape(c, -1), self.sc)
        return y

    def backward(self, dy, need):
        x = self.x
        c = x.shape[0]
        dx = self.scratch("dx", x.shape)
        t = self.scratch("t", self.sc.shape)
        parallel(lrn_backward_terms, c, dy.reshape(c, -1), x.reshape(c, -1), self.sc, self.p["beta"], t)
        parallel(lrn_backward, c, dy.reshape(c, -1), x.reshape(c, -1), self.sc, self.p["size"], self.p["alpha"],
                 self.p["beta"], t, dx.reshape(c, -1))
        return [dx]


OPS = {"bn": BatchNormOp, "lrn": LRNOp}
