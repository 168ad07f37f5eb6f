"""Element-wise activations, softmax over channels, and inverted dropout."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..layers.activation import (ELU, GELU, Dropout, HardSigmoid, HardSwish, LeakyReLU, ReLU, ReLU6, Sigmoid, SiLU,
                                 Softmax, Tanh)
from .base import Op
from .jit import kernel
from .threads import parallel, parallel_values

# One small kernel per activation and direction, over values lo..hi of flat arrays. Each works on
# views starting at 0 with constants of the array's dtype: Numba then needs no negative-index checks
# and no float64 promotion, and LLVM vectorises the loop (ReLU on 800K values: 0.51 -> 0.06 ms).
# `a` is the slope (lrelu) or alpha (elu).


@kernel
def relu_forward(lo, hi, x, a, y):
    x, y = x[lo:hi], y[lo:hi]
    z = x.dtype.type(0)
    for i in range(x.size):
        y[i] = x[i] if x[i] > 0 else z


@kernel
def relu_backward(lo, hi, x, y, dy, a, dx):
    x, y, dy, dx = x[lo:hi], y[lo:hi], dy[lo:hi], dx[lo:hi]
    z = x.dtype.type(0)
    for i in range(x.size):
        dx[i] = dy[i] if x[i] > 0 else z


@kernel
def relu6_forward(lo, hi, x, a, y):
    x, y = x[lo:hi], y[lo:hi]
    z, six = x.dtype.type(0), x.dtype.type(6)
    for i in range(x.size):
        y[i] = z if x[i] < 0 else (six if x[i] > six else x[i])


@kernel
def relu6_backward(lo, hi, x, y, dy, a, dx):
    x, y, dy, dx = x[lo:hi], y[lo:hi], dy[lo:hi], dx[lo:hi]
    z, six = x.dtype.type(0), x.dtype.type(6)
    for i in range(x.size):
        dx[i] = dy[i] if (x[i] > 0 and x[i] < six) else z


@kernel
def lrelu_forward(lo, hi, x, a, y):
    x, y = x[lo:hi], y[lo:hi]
    for i in range(x.size):
        y[i] = x[i] if x[i] > 0 else a * x[i]


@kernel
def lrelu_backward(lo, hi, x, y, dy, a, dx):
    x, y, dy, dx = x[lo:hi], y[lo:hi], dy[lo:hi], dx[lo:hi]
    for i in range(x.size):
        dx[i] = dy[i] if x[i] > 0 else a * dy[i]


@kernel
def elu_forward(lo, hi, x, a, y):
    x, y = x[lo:hi], y[lo:hi]
    one = x.dtype.type(1)
    for i in range(x.size):
        y[i] = x[i] if x[i] > 0 else a * (np.exp(x[i]) - one)


@kernel
def elu_backward(lo, hi, x, y, dy, a, dx):
    x, y, dy, dx = x[lo:hi], y[lo:hi], dy[lo:hi], dx[lo:hi]
    for i in range(x.size):
        dx[i] = dy[i] if x[i] > 0 else dy[i] * (y[i] + a)


@kernel
def sigmoid_forward(lo, hi, x, a, y):
    x, y = x[lo:hi], y[lo:hi]
    one = x.dtype.type(1)
    for i in range(x.size):
        y[i] = one / (one + np.exp(-x[i]))


@kernel
def sigmoid_backward(lo, hi, x, y, dy, a, dx):
    x, y, dy, dx = x[lo:hi], y[lo:hi], dy[lo:hi], dx[lo:hi]
    one = x.dtype.type(1)
    for i in range(x.size):
        dx[i] = dy[i] * y[i] * (one - y[i])


@kernel
def tanh_forward(lo, hi, x, a, y):
    x, y = x[lo:hi], y[lo:hi]
    for i in range(x.size):
        y[i] = np.tanh(x[i])


@kernel
def tanh_backward(lo, hi, x, y, dy, a, dx):
    x, y, dy, dx = x[lo:hi], y[lo:hi], dy[lo:hi], dx[lo:hi]
    one = x.dtype.type(1)
    for i in range(x.size):
        dx[i] = dy[i] * (one - y[i] * y[i])


@kernel
def silu_forward(lo, hi, x, a, y):
    x, y = x[lo:hi], y[lo:hi]
    one = x.dtype.type(1)
    for i in range(x.size):
        y[i] = x[i] / (one + np.exp(-x[i]))


@kernel
def silu_backward(lo, hi, x, y, dy, a, dx):
    """d/dx x*s(x) = s + x*s*(1 - s) = s * (1 + x - y), with y = x*s."""
    x, y, dy, dx = x[lo:hi], y[lo:hi], dy[lo:hi], dx[lo:hi]
    one = x.dtype.type(1)
    for i in range(x.size):
        s = one / (one + np.exp(-x[i]))
        dx[i] = dy[i] * s * (one + x[i] - y[i])


@kernel
def hardsigmoid_forward(lo, hi, x, a, y):
    x, y = x[lo:hi], y[lo:hi]
    z, one, three, sixth = x.dtype.type(0), x.dtype.type(1), x.dtype.type(3), x.dtype.type(1 / 6)
    for i in range(x.size):
        y[i] = z if x[i] <= -three else (one if x[i] >= three else x[i] * sixth + x.dtype.type(0.5))


@kernel
def hardsigmoid_backward(lo, hi, x, y, dy, a, dx):
    x, y, dy, dx = x[lo:hi], y[lo:hi], dy[lo:hi], dx[lo:hi]
    z, three, sixth = x.dtype.type(0), x.dtype.type(3), x.dtype.type(1 / 6)
    for i in range(x.size):
        dx[i] = dy[i] * sixth if (x[i] > -three and x[i] < three) else z


@kernel
def hardswish_forward(lo, hi, x, a, y):
    x, y = x[lo:hi], y[lo:hi]
    z, three, sixth = x.dtype.type(0), x.dtype.type(3), x.dtype.type(1 / 6)
    for i in range(x.size):
        y[i] = z if x[i] <= -three else (x[i] if x[i] >= three else x[i] * (x[i] + three) * sixth)


@kernel
def hardswish_backward(lo, hi, x, y, dy, a, dx):
    """0 below -3, 1 above 3, (2x + 3) / 6 between (PyTorch's choice at the kinks)."""
    x, y, dy, dx = x[lo:hi], y[lo:hi], dy[lo:hi], dx[lo:hi]
    z, three, half, third = x.dtype.type(0), x.dtype.type(3), x.dtype.type(0.5), x.dtype.type(1 / 3)
    for i in range(x.size):
        dx[i] = z if x[i] < -three else (dy[i] if x[i] > three else dy[i] * (x[i] * third + half))


@kernel
def gelu_forward(lo, hi, x, a, y):
    """Phi(x) = erfc(-x / sqrt 2) / 2: erfc keeps float32 precision where erf would cancel (x << 0)."""
    x, y = x[lo:hi], y[lo:hi]
    half, root_half = x.dtype.type(0.5), x.dtype.type(0.7071067811865476)
    for i in range(x.size):
        y[i] = half * x[i] * math.erfc(-x[i] * root_half)


@kernel
def gelu_backward(lo, hi, x, y, dy, a, dx):
    """d/dx x*Phi(x) = Phi(x) + x*phi(x)."""
    x, y, dy, dx = x[lo:hi], y[lo:hi], dy[lo:hi], dx[lo:hi]
    half, root_half = x.dtype.type(0.5), x.dtype.type(0.7071067811865476)
    inv_root_2pi = x.dtype.type(0.3989422804014327)
    for i in range(x.size):
        cdf = half * math.erfc(-x[i] * root_half)
        dx[i] = dy[i] * (cdf + x[i] * inv_root_2pi * np.exp(-half * x[i] * x[i]))


# float32 tanh as a rational function: only multiplies, adds and one divide, so it vectorises
# (libm's tanh does not, and took 3 ms of LeNet-5's 7 ms step). The minimax coefficients are the
# ones Eigen uses for float tanh; measured error against float64 tanh: at most 4e-7 (3 ulp).
_NUM = (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05, 5.12229709037114e-08,
        -8.60467152213735e-11, 2.00018790482477e-13, -2.76076847742355e-16)
_DEN = (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06)
_CLAMP = 7.90531110763549805  # beyond this, tanh rounds to +-1 in float32
A1, A3, A5, A7, A9, A11, A13 = (np.float32(c) for c in _NUM)
B0, B2, B4, B6 = (np.float32(c) for c in _DEN)
CLAMP = np.float32(_CLAMP)


@njit(nogil=True, cache=True, fastmath=True, error_model="numpy", inline="always")
def _tanh32(v):
    v = min(max(v, -CLAMP), CLAMP)
    v2 = v * v
    p = ((((((A13 * v2 + A11) * v2 + A9) * v2 + A7) * v2 + A5) * v2 + A3) * v2 + A1) * v
    q = ((B6 * v2 + B4) * v2 + B2) * v2 + B0
    return p / q


@kernel
def tanh32_forward(lo, hi, x, a, y):
    x, y = x[lo:hi], y[lo:hi]
    for i in range(x.size):
        y[i] = _tanh32(x[i])


@kernel
def sigmoid32_forward(lo, hi, x, a, y):
    x, y = x[lo:hi], y[lo:hi]
    half = np.float32(0.5)
    for i in range(x.size):
        y[i] = half + half * _tanh32(half * x[i])


FAST32 = {Tanh: tanh32_forward, Sigmoid: sigmoid32_forward}

# Each element-wise activation: its declaration and its (forward, backward) kernels.
KERNELS = {
    ReLU: (relu_forward, relu_backward),
    ReLU6: (relu6_forward, relu6_backward),
    LeakyReLU: (lrelu_forward, lrelu_backward),
    ELU: (elu_forward, elu_backward),
    Sigmoid: (sigmoid_forward, sigmoid_backward),
    Tanh: (tanh_forward, tanh_backward),
    SiLU: (silu_forward, silu_backward),
    HardSigmoid: (hardsigmoid_forward, hardsigmoid_backward),
    HardSwish: (hardswish_forward, hardswish_backward),
    GELU: (gelu_forward, gelu_backward),
}


class ActivationOp(Op):
    kinds = tuple(KERNELS)

    def __init__(self, node, dtype):
        super().__init__(node, dtype)
        self.kernel_forward, self.kernel_backward = KERNELS[node.kind]
        if self.dtype == np.float32:
            self.kernel_forward = FAST32.get(node.kind, self.kernel_forward)
        self.a = self.scalar(self.p.get("slope") or self.p.get("alpha") or 0.0)

    def forward(self, xs, train, rng):
        self.x = xs[0]
        self.y = y = self.scratch("out", self.x.shape)
        parallel_values(self.kernel_forward, self.x.size, self.x.reshape(-1), self.a, y.reshape(-1))
        return y

    def backward(self, dy, need):
        dx = self.gradient(self.x.shape)
        parallel_values(self.kernel_backward, self.x.size, self.x.reshape(-1), self.y.reshape(-1), dy.reshape(-1),
                        self.a, dx.reshape(-1))
        return [dx]


@kernel
def softmax_forward(lo, hi, x, y):
    """Softmax over channels (axis 0) for positions lo..hi of (C, M) arrays."""
    x, y = x[:, lo:hi], y[:, lo:hi]
    C, M = x.shape
    top = x[0].copy()
    for c in range(1, C):
        for i in range(M):
            top[i] = max(top[i], x[c, i])
    total = np.zeros(M, np.float64)
    for c in range(C):
        for i in range(M):
            e = np.exp(x[c, i] - top[i])
            y[c, i] = e
            total[i] += e
    for c in range(C):
        for i in range(M):
            y[c, i] = y[c, i] / total[i]


@kernel
def softmax_backward(lo, hi, y, dy, dx):
    y, dy, dx = y[:, lo:hi], dy[:, lo:hi], dx[:, lo:hi]
    C, M = y.shape
    dot = np.zeros(M, np.float64)
    for c in range(C):
        for i in range(M):
            dot[i] += dy[c, i] * y[c, i]
    for c in range(C):
        for i in range(M):
            dx[c, i] = y[c, i] * (dy[c, i] - dot[i])


class SoftmaxOp(Op):
    kinds = (Softmax,)

    def forward(self, xs, train, rng):
        x = xs[0]
        c = x.shape[0]
        self.y = y = self.scratch("out", x.shape)
        parallel(softmax_forward, x.size // c, x.reshape(c, -1), y.reshape(c, -1))
        return y

    def backward(self, dy, need):
        c = dy.shape[0]
        dx = self.gradient(dy.shape)
        parallel(softmax_backward, dy.size // c, self.y.reshape(c, -1), dy.reshape(c, -1), dx.reshape(c, -1))
        return [dx]


class DropoutOp(Op):
    """Inverted dropout: in training, keep each value with probability 1 - rate and scale it by
    1 / (1 - rate); in evaluation, the identity. The mask comes from the model's seeded generator."""

    kinds = (Dropout,)

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
        if self.p["rate"] == 0:
            return [dy]
        dx = self.gradient(dy.shape)  # in evaluation mode too, where the model's gradient plan expects it
        if self.train:
            np.multiply(dy, self.mask, out=dx)
        else:
            np.copyto(dx, dy)
        return [dx]


OPS = (ActivationOp, SoftmaxOp, DropoutOp)
