"""Fully connected layers and flatten. A feature map is flattened in (C, H, W) order, as PyTorch does,
so weights are interchangeable with a PyTorch nn.Linear after nn.Flatten."""

from __future__ import annotations

import numpy as np

from . import init
from .base import Op


def to_matrix(x: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """(C, N, H, W) -> (C*H*W, N); a view when H = W = 1, else a copy into `out`."""
    c, n, h, w = x.shape
    if h == 1 and w == 1:
        return x.reshape(c, n)
    out[...] = x.transpose(0, 2, 3, 1).reshape(c * h * w, n)
    return out


def from_matrix(m: np.ndarray, shape, out: np.ndarray) -> np.ndarray:
    c, n, h, w = shape
    if h == 1 and w == 1:
        return m.reshape(shape)
    out[...] = m.reshape(c, h, w, n).transpose(0, 3, 1, 2)
    return out


class DenseOp(Op):
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
        n = x.shape[1]
        self.xm = to_matrix(x, self.scratch("xm", (self.fan_in, n)))
        out = self.scratch("out", (self.units, n, 1, 1))
        o2 = out.reshape(self.units, n)
        np.matmul(self.params["weight"], self.xm, out=o2)
        if "bias" in self.params:
            o2 += self.params["bias"][:, None]
        return out

    def backward(self, dy, need):
        n = dy.shape[1]
        d2 = dy.reshape(self.units, n)
        np.matmul(d2, self.xm.T, out=self.grads["weight"])
        if "bias" in self.grads:
            np.sum(d2, axis=1, out=self.grads["bias"])
        if not need[0]:
            return [None]
        dm = self.scratch("dm", (self.fan_in, n))
        np.matmul(self.params["weight"].T, d2, out=dm)
        return [from_matrix(dm, self.in_shape, self.scratch("dx", self.in_shape))]


class FlattenOp(Op):
    def forward(self, xs, train, rng):
        x = xs[0]
        self.in_shape = x.shape
        c, n, h, w = x.shape
        m = to_matrix(x, self.scratch("out", (c * h * w, n)))
        return m.reshape(c * h * w, n, 1, 1)

    def backward(self, dy, need):
        n = dy.shape[1]
        return [from_matrix(dy.reshape(-1, n), self.in_shape, self.scratch("dx", self.in_shape))]


OPS = {"fc": DenseOp, "flatten": FlattenOp}
