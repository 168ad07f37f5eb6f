"""Element-wise activations, softmax over channels, and inverted dropout."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .base import Op

RELU, RELU6, LRELU, ELU, SIGMOID, TANH = range(6)
MODES = {"relu": RELU, "relu6": RELU6, "lrelu": LRELU, "elu": ELU, "sigmoid": SIGMOID, "tanh": TANH}


@njit(parallel=True, cache=True)
def act_forward(x, mode, a, y):
    for i in prange(x.size):
        v = x[i]
        if mode == RELU:
            y[i] = v if v > 0 else 0
        elif mode == RELU6:
            y[i] = 0 if v < 0 else (6 if v > 6 else v)
        elif mode == LRELU:
            y[i] = v if v > 0 else a * v
        elif mode == ELU:
            y[i] = v if v > 0 else a * (np.exp(v) - 1)
        elif mode == SIGMOID:
            y[i] = 1 / (1 + np.exp(-v))
        else:
            y[i] = np.tanh(v)


@njit(parallel=True, cache=True)
def act_backward(x, y, dy, mode, a, dx):
    for i in prange(x.size):
        v = x[i]
        g = dy[i]
        if mode == RELU:
            dx[i] = g if v > 0 else 0
        elif mode == RELU6:
            dx[i] = g if (v > 0 and v < 6) else 0
        elif mode == LRELU:
            dx[i] = g if v > 0 else a * g
        elif mode == ELU:
            dx[i] = g if v > 0 else g * (y[i] + a)
        elif mode == SIGMOID:
            dx[i] = g * y[i] * (1 - y[i])
        else:
            dx[i] = g * (1 - y[i] * y[i])


class ActivationOp(Op):
    def __init__(self, node, dtype):
        super().__init__(node, dtype)
        self.mode = MODES[node.kind.name]
        self.a = self.scalar(self.p.get("slope") or self.p.get("alpha") or 0.0)

    def forward(self, xs, train, rng):
        self.x = xs[0]
        self.y = y = self.scratch("out", self.x.shape)
        act_forward(self.x.reshape(-1), self.mode, self.a, y.reshape(-1))
        return y

    def backward(self, dy, need):
        dx = self.scratch("dx", self.x.shape)
        act_backward(self.x.reshape(-1), self.y.reshape(-1), dy.reshape(-1), self.mode, self.a, dx.reshape(-1))
        return [dx]


@njit(parallel=True, cache=True)
def softmax_forward(x, y):
    C, M = x.shape
    for i in prange(M):
        top = x[0, i]
        for c in range(1, C):
            top = max(top, x[c, i])
        s = 0.0
        for c in range(C):
            e = np.exp(x[c, i] - top)
            y[c, i] = e
            s += e
        inv = 1.0 / s
        for c in range(C):
            y[c, i] = y[c, i] * inv


@njit(parallel=True, cache=True)
def softmax_backward(y, dy, dx):
    C, M = y.shape
    for i in prange(M):
        s = 0.0
        for c in range(C):
            s += dy[c, i] * y[c, i]
        for c in range(C):
            dx[c, i] = y[c, i] * (dy[c, i] - s)


class SoftmaxOp(Op):
    def forward(self, xs, train, rng):
        x = xs[0]
        c = x.shape[0]
        self.y = y = self.scratch("out", x.shape)
        softmax_forward(x.reshape(c, -1), y.reshape(c, -1))
        return y

    def backward(self, dy, need):
        c = dy.shape[0]
        dx = self.scratch("dx", dy.shape)
        softmax_backward(self.y.reshape(c, -1), dy.reshape(c, -1), dx.reshape(c, -1))
        return [dx]


class DropoutOp(Op):
    """Inverted dropout: in training, keep each value with probability 1 - rate and scale it by
    1 / (1 - rate); in evaluation, the identity. The mask comes from the model's seeded generator."""

    def forward(self, xs, train, rng):
        x = xs[0]
        self.train = train
        if not train or self.p["rate"] == 0:
            return x
        keep = 1.0 - self.p["rate"]
        self.mask = mask = self.scratch("mask", x.shape)
        rng.random(dtype=mask.dtype, out=mask)
        kept = self.scratch("kept", x.shape, np.bool_)
        np.less(mask, keep, out=kept)
        np.multiply(kept, self.scalar(1.0 / keep), out=mask)
        y = self.scratch("out", x.shape)
        np.multiply(x, mask, out=y)
        return y

    def backward(self, dy, need):
        if not self.train or self.p["rate"] == 0:
            return [dy]
        dx = self.scratch("dx", dy.shape)
        np.multiply(dy, self.mask, out=dx)
        return [dx]


OPS = {**{name: ActivationOp for name in MODES}, "softmax": SoftmaxOp, "dropout": DropoutOp}
