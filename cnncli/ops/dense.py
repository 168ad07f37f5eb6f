"""Fully connected layers and flatten. A feature map is flattened in (C, H, W) order, as PyTorch does,
so weights are interchangeable with a PyTorch nn.Linear after nn.Flatten."""

from __future__ import annotations

import numpy as np

from ..layers.dense import Dense, Flatten
from . import init
from .base import Op


class DenseOp(Op):
    kinds = (Dense,)

    def __init__(self, node, dtype):
        super().__init__(node, dtype)
        self.units = self.p["units"]
        self.fan_in = int(np.prod(node.in_shapes[0]))

    def param_shapes(self):
        shapes = {"weight": (self.units, self.fan_in)}
        if self.p["bias"]:
            shapes["bias"] = (self.units,)
        return shapes

    def init(self, rng):
        init.weights(self.params["weight"], self.p["init"], self.fan_in, self.units, rng)
        if "bias" in self.params:
            init.bias(self.params["bias"], self.p["init"], self.fan_in, rng)

    def forward(self, xs, train, rng):
        x = xs[0]
        self.in_shape = x.shape
        n = x.shape[3]
        self.xm = x.reshape(self.fan_in, n)  # CHWN flattens to (C*H*W, N) for free, in PyTorch's order
        out = self.scratch("out", (self.units, 1, 1, n))
        o2 = out.reshape(self.units, n)
        np.matmul(self.params["weight"], self.xm, out=o2)
        if "bias" in self.params:
            o2 += self.params["bias"][:, None]
        return out

    def backward(self, dy, need):
        n = dy.shape[3]
        d2 = dy.reshape(self.units, n)
        np.matmul(d2, self.xm.T, out=self.grads["weight"])
        if "bias" in self.grads:
            np.sum(d2, axis=1, out=self.grads["bias"])
        if not need[0]:
            return [None]
        dx = self.gradient(self.in_shape)
        np.matmul(self.params["weight"].T, d2, out=dx.reshape(self.fan_in, n))
        return [dx]


class FlattenOp(Op):
    kinds = (Flatten,)

    def forward(self, xs, train, rng):
        x = xs[0]
        self.in_shape = x.shape
        return x.reshape(-1, 1, 1, x.shape[3])

    def backward(self, dy, need):
        return [dy.reshape(self.in_shape)]


OPS = (DenseOp, FlattenOp)
