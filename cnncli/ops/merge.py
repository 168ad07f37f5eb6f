"""Joining branches: element-wise sum, channel concatenation (contiguous slices in CHWN), and the
parameter-free ResNet shortcut (subsample by s, zero-pad the channels)."""

from __future__ import annotations

import numpy as np

from ..layers.merge import Add, Concat, Shortcut
from .base import Op


class AddOp(Op):
    kinds = (Add,)

    def forward(self, xs, train, rng):
        out = self.scratch("out", xs[0].shape)
        np.add(xs[0], xs[1], out=out)
        for x in xs[2:]:
            out += x
        return out

    def backward(self, dy, need):
        return [dy if wanted else None for wanted in need]


class ConcatOp(Op):
    kinds = (Concat,)

    def forward(self, xs, train, rng):
        self.sizes = [x.shape[0] for x in xs]
        out = self.scratch("out", (sum(self.sizes),) + xs[0].shape[1:])
        start = 0
        for x in xs:
            out[start : start + x.shape[0]] = x
            start += x.shape[0]
        return out

    def backward(self, dy, need):
        grads, start = [], 0
        for size, wanted in zip(self.sizes, need):
            grads.append(dy[start : start + size] if wanted else None)
            start += size
        return grads


class ShortcutOp(Op):
    kinds = (Shortcut,)

    def forward(self, xs, train, rng):
        x = xs[0]
        self.in_shape = x.shape
        s = self.p["s"]
        out = self.scratch("out", self.out_shape(x.shape[3]))
        self.front = (out.shape[0] - x.shape[0]) // 2
        out[...] = 0
        out[self.front : self.front + x.shape[0]] = x[:, ::s, ::s, :]
        return out

    def backward(self, dy, need):
        s = self.p["s"]
        dx = self.scratch("dx", self.in_shape)
        dx[...] = 0
        dx[:, ::s, ::s, :] = dy[self.front : self.front + self.in_shape[0]]
        return [dx]


OPS = (AddOp, ConcatOp, ShortcutOp)
