"""Joining branches: element-wise sum, channel concatenation (contiguous slices in CHWN), and the
parameter-free ResNet shortcut (subsample by s, zero-pad the channels)."""

from __future__ import annotations

import numpy as np

from ..layers.merge import Add, Concat, Multiply, Shortcut
from .base import Op
from .jit import kernel
from .pool import NO_ACT, RELU6
from .threads import parallel, parallel_values


@kernel
def add_act(lo, hi, a, b, act, out):
    """out = a + b over values lo..hi of flat arrays, then ReLU (act 1) or ReLU6 (act 2)."""
    a, b, out = a[lo:hi], b[lo:hi], out[lo:hi]
    if act == NO_ACT:  # a plain sum, so a NaN or an infinity passes on as it is
        # in place, a loop of its own: LLVM vectorises a read and write of one array at one index, but
        # not of two arrays that may overlap
        if out.ctypes.data == a.ctypes.data:
            for i in range(out.size):
                out[i] += b[i]
        else:
            for i in range(out.size):
                out[i] = a[i] + b[i]
        return
    low, high = out.dtype.type(0), out.dtype.type(6) if act == RELU6 else out.dtype.type(np.inf)
    for i in range(out.size):
        out[i] = min(max(a[i] + b[i], low), high)


@kernel
def act_backward(lo, hi, y, dy, act, dx):
    """dx = dy where the activation's output y is inside its linear range (0 < y, and y < 6 for
    ReLU6), else 0: the fused activation's gradient, read from its output."""
    y, dy, dx = y[lo:hi], dy[lo:hi], dx[lo:hi]
    z = y.dtype.type(0)
    high = y.dtype.type(6) if act == RELU6 else y.dtype.type(np.inf)
    for i in range(y.size):
        dx[i] = dy[i] if (y[i] > z and y[i] < high) else z


def add_arrays(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out = a + b for arrays of one shape, on the engine's workers (out may be a or b)."""
    flat = out.reshape(-1)
    parallel_values(add_act, flat.size, a.reshape(-1), b.reshape(-1), NO_ACT, flat)


class AddOp(Op):
    """Element-wise sum. Model fuses a following ReLU/ReLU6 (`act`), as after a ResNet block's sum:
    one pass forward, and one pass that masks the gradient for every branch backward."""

    kinds = (Add,)
    act = NO_ACT

    def forward(self, xs, train, rng):
        out = self.scratch("out", xs[0].shape)
        flat = out.reshape(-1)
        parallel_values(add_act, flat.size, xs[0].reshape(-1), xs[1].reshape(-1), NO_ACT if len(xs) > 2 else self.act, flat)
        for i, x in enumerate(xs[2:], start=3):
            parallel_values(add_act, flat.size, flat, x.reshape(-1), self.act if i == len(xs) else NO_ACT, flat)
        self.y = out
        return out

    def backward(self, dy, need):
        if self.act != NO_ACT:
            g = self.gradient(dy.shape)  # one masked gradient, passed on to every branch
            parallel_values(act_backward, g.size, self.y.reshape(-1), dy.reshape(-1), self.act, g.reshape(-1))
            dy = g
        return [dy if wanted else None for wanted in need]


@kernel
def channel_dot(lo, hi, dy, x, ds):
    """ds[c, n] = sum over positions m of dy[c, m, n] * x[c, m, n], for channels lo..hi."""
    for c in range(lo, hi):
        acc = ds[c]
        acc[:] = 0
        for m in range(dy.shape[1]):
            a, b = dy[c, m], x[c, m]
            for n in range(acc.size):
                acc[n] += a[n] * b[n]


class MultiplyOp(Op):
    """Product of branches. A (C, 1, 1, N) branch broadcasts over H x W of the full-size ones; its
    gradient sums dy * (product of the others) over those positions."""

    kinds = (Multiply,)

    def forward(self, xs, train, rng):
        self.xs = xs
        out = self.scratch("out", self.out_shape(xs[0].shape[3]))
        np.multiply(xs[0], xs[1], out=out)
        for x in xs[2:]:
            out *= x
        return out

    def backward(self, dy, need):
        grads = []
        for i, wanted in enumerate(need):
            x, others = self.xs[i], [other for j, other in enumerate(self.xs) if j != i]
            if not wanted:
                grads.append(None)
            elif x.shape != dy.shape and len(others) == 1 and others[0].shape == dy.shape:
                c, n = dy.shape[0], dy.shape[3]  # the usual squeeze-and-excitation scale
                ds = self.scratch(f"d{i}", x.shape)
                parallel(channel_dot, c, dy.reshape(c, -1, n), others[0].reshape(c, -1, n), ds.reshape(c, n))
                grads.append(ds)
            else:
                full = self.scratch(f"full{i}", dy.shape)
                np.multiply(dy, others[0], out=full)
                for other in others[1:]:
                    full *= other
                if x.shape == dy.shape:
                    grads.append(full)
                else:
                    grads.append(full.sum(axis=(1, 2), keepdims=True))
        return grads


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


@kernel
def shortcut_forward(lo, hi, x, s, front, out):
    """Output channels lo..hi of the shortcut: x subsampled by s where channel k - front of x
    exists, zeros in the padding channels around it."""
    _, ho, wo, N = out.shape
    z = out.dtype.type(0)
    for k in range(lo, hi):
        c = k - front
        for i in range(ho):
            for j in range(wo):
                if 0 <= c < x.shape[0]:
                    for n in range(N):
                        out[k, i, j, n] = x[c, i * s, j * s, n]
                else:
                    for n in range(N):
                        out[k, i, j, n] = z


@kernel
def shortcut_backward(lo, hi, dy, s, front, dx):
    """Input channels lo..hi of the shortcut's gradient: dy's values at the kept positions, 0 elsewhere."""
    _, H, W, N = dx.shape
    ho, wo = dy.shape[1], dy.shape[2]
    z = dx.dtype.type(0)
    for c in range(lo, hi):
        for h in range(H):
            for w in range(W):
                for n in range(N):
                    dx[c, h, w, n] = z
        for i in range(ho):
            for j in range(wo):
                for n in range(N):
                    dx[c, i * s, j * s, n] = dy[c + front, i, j, n]


class ShortcutOp(Op):
    kinds = (Shortcut,)

    def forward(self, xs, train, rng):
        x = xs[0]
        self.in_shape = x.shape
        out = self.scratch("out", self.out_shape(x.shape[3]))
        self.front = (out.shape[0] - x.shape[0]) // 2
        parallel(shortcut_forward, out.shape[0], x, self.p["s"], self.front, out)
        return out

    def backward(self, dy, need):
        dx = self.gradient(self.in_shape)
        parallel(shortcut_backward, dx.shape[0], dy, self.p["s"], self.front, dx)
        return [dx]


OPS = (AddOp, ConcatOp, MultiplyOp, ShortcutOp)
