"""Batch norm (PyTorch's definition: biased variance to normalise, unbiased for the running
estimate, momentum 0.1) and local response norm (PyTorch's formula), over CHWN tensors."""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from ..layers.norm import BatchNorm, LocalResponseNorm
from .base import Op
from .jit import kernel
from .pool import NO_ACT, RELU, RELU6, max_pool_channel
from .threads import parallel

# Batch norm kernels work per channel on the (C, M) view, M = H*W*N. They keep no normalised copy
# of x: backward recomputes it, which costs less than writing and reading one. `act` fuses a
# following ReLU (1) or ReLU6 (2) into the same pass (see Model's fusion of bn -> relu).



@kernel
def channel_stats(flat, eps):
    """Mean and 1/sqrt(biased variance + eps) of one channel, in one pass over memory: sums in
    float64 of the values less the channel's first value. The shift keeps the sum of squares from
    cancelling when the mean is large against the spread (a shifted variance is exact however
    large the common offset, as long as the first value lies within a few spreads of the mean)."""
    shift = np.float64(flat[0])
    total = 0.0
    sq = 0.0
    for i in range(flat.size):
        d = flat[i] - shift
        total += d
        sq += d * d
    mean = total / flat.size
    var = max(sq / flat.size - mean * mean, 0.0)
    return shift + mean, 1.0 / np.sqrt(var + eps)


@kernel
def update_running(running_mean, running_var, mean, invstd, eps, momentum, count):
    """PyTorch's running estimates: r = (1 - momentum) r + momentum * batch value, the variance
    unbiased (count / (count - 1)); one call instead of a dozen NumPy operations on short vectors."""
    unbias = count / (count - 1)
    for c in range(running_mean.size):
        var = 1.0 / (invstd[c] * invstd[c]) - eps
        running_mean[c] = (1 - momentum) * running_mean[c] + momentum * mean[c]
        running_var[c] = (1 - momentum) * running_var[c] + momentum * var * unbias


@kernel
def _affine(xc, scale, shift, act, yc):
    a = xc.dtype.type(scale)
    b = xc.dtype.type(shift)
    z = xc.dtype.type(0)
    six = xc.dtype.type(6)
    if act == RELU:
        for i in range(xc.size):
            yc[i] = max(xc[i] * a + b, z)
    elif act == RELU6:
        for i in range(xc.size):
            yc[i] = min(max(xc[i] * a + b, z), six)
    else:
        for i in range(xc.size):
            yc[i] = xc[i] * a + b


@kernel
def bn_train_forward(lo, hi, x, gamma, beta, eps, act, y, mean, invstd):
    for c in range(lo, hi):
        mu, inv = channel_stats(x[c], eps)
        mean[c] = mu
        invstd[c] = inv
        _affine(x[c], gamma[c] * inv, beta[c] - mu * gamma[c] * inv, act, y[c])


@kernel
def bn_eval_forward(lo, hi, x, gamma, beta, mean, var, eps, act, y):
    for c in range(lo, hi):
        inv = 1.0 / np.sqrt(var[c] + eps)
        _affine(x[c], gamma[c] * inv, beta[c] - mean[c] * gamma[c] * inv, act, y[c])


@kernel
def _dx_coefficients(sb, sx, M, mean, inv, gamma, train):
    """Batch norm's input gradient is dx = a * g + b * x + k for the gradient g at its (activated)
    output, from the sums sb of g and sx of g * x over the channel's M values: (a, b, k, the sum of
    g * xhat, which is dgamma). Out of training mode (running statistics) dx = a * g."""
    sg = (sx - mean * sb) * inv  # the sum of g * xhat
    scale = gamma * inv
    if not train:
        return scale, 0.0, 0.0, sg
    k = sg / M * inv  # dx = scale * (g - sb/M - xhat * sg/M)
    return scale, -scale * k, scale * (mean * k - sb / M), sg


@kernel
def _input_grad_in_place(g, xc, mean, inv, gamma, train):
    """Rewrites g, the gradient at one channel's output, into dx; returns (dgamma, dbeta)."""
    M = xc.size
    sb = 0.0
    sx = 0.0
    for i in range(M):
        sb += g[i]
        sx += g[i] * xc[i]
    scale, slope, offset, sg = _dx_coefficients(sb, sx, M, mean, inv, gamma, train)
    a, b, cc = xc.dtype.type(scale), xc.dtype.type(slope), xc.dtype.type(offset)
    if train:
        for i in range(M):
            g[i] = a * g[i] + b * xc[i] + cc
    else:
        for i in range(M):
            g[i] = a * g[i]
    return sg, sb


@kernel
def bn_backward(lo, hi, dy, x, gamma, beta, mean, invstd, train, act, dx, dgamma, dbeta):
    """Batch norm's backward with its fused activation, two passes over each channel: the sums of g
    and g * x, then dx. g is dy where the activation was in its linear range, judged from the
    pre-activation x * s + t recomputed exactly as forward computed it; so neither y nor a masked
    copy of dy is read or written: five streams over memory instead of the eight of mask, sums and dx
    as three passes."""
    M = dy.shape[1]
    z = dy.dtype.type(0)
    high = dy.dtype.type(6) if act == RELU6 else dy.dtype.type(np.inf)
    for c in range(lo, hi):
        dyc, xc, dxc = dy[c], x[c], dx[c]
        inv = invstd[c]
        s = xc.dtype.type(gamma[c] * inv)  # forward's affine, as bn_train_forward / bn_eval_forward
        t = xc.dtype.type(beta[c] - mean[c] * gamma[c] * inv)
        sb = 0.0
        sx = 0.0
        if act == NO_ACT:
            for i in range(M):
                sb += dyc[i]
                sx += dyc[i] * xc[i]
        elif act == RELU:  # a loop of its own: 15-25% faster than with a test against high = inf
            for i in range(M):
                pre = xc[i] * s + t
                g = dyc[i] if pre > z else z
                sb += g
                sx += g * xc[i]
        else:
            for i in range(M):
                pre = xc[i] * s + t
                g = dyc[i] if (pre > z and pre < high) else z
                sb += g
                sx += g * xc[i]
        scale, slope, offset, sg = _dx_coefficients(sb, sx, M, mean[c], inv, gamma[c], train)
        a, b, cc = xc.dtype.type(scale), xc.dtype.type(slope), xc.dtype.type(offset)
        if act == NO_ACT and train:
            for i in range(M):
                dxc[i] = a * dyc[i] + b * xc[i] + cc
        elif act == NO_ACT:
            for i in range(M):
                dxc[i] = a * dyc[i]
        elif not train:
            for i in range(M):
                pre = xc[i] * s + t
                dxc[i] = a * dyc[i] if (pre > z and pre < high) else z
        elif act == RELU:
            for i in range(M):
                pre = xc[i] * s + t
                g = dyc[i] if pre > z else z
                dxc[i] = a * g + b * xc[i] + cc
        else:
            for i in range(M):
                pre = xc[i] * s + t
                g = dyc[i] if (pre > z and pre < high) else z
                dxc[i] = a * g + b * xc[i] + cc
        dgamma[c], dbeta[c] = sg, sb


class BatchNormOp(Op):
    kinds = (BatchNorm,)
    act = NO_ACT  # set by Model when it fuses the following relu/relu6 into this op
    folded = False  # set by Model when the conv before applies this op in infer()

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

    def fold_into(self, w: np.ndarray, bias: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The filters and bias of the conv before this op with this op's eval-mode affine folded in:
        conv(x, w * s) + b * s + t = bn(conv(x, w) + b), s = gamma / sqrt(running_var + eps),
        t = beta - running_mean * s (computed in float64)."""
        gamma, beta = self._affine()
        rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
        scale = gamma / np.sqrt(rv.astype(np.float64) + self.p["eps"])
        shift = beta - rm * scale + (bias * scale if bias is not None else 0)
        folded = self.scratch("folded_weight", w.shape)
        folded[...] = w * scale.reshape(-1, *([1] * (w.ndim - 1)))
        b = self.scratch("folded_bias", (self.channels,))
        b[...] = shift
        return folded, b

    def infer(self, xs, rng):
        return xs[0] if self.folded else self.forward(xs, False, rng)

    def _check_batch(self, x):
        if x.size // self.channels < 2:
            raise UserError(f"{self.node.name}: batch norm in training needs more than one value per channel",
                            "use a batch of at least 2 samples")

    def _update_running(self, x):
        update_running(self.buffers["running_mean"], self.buffers["running_var"], self.mean, self.invstd,
                       self.p["eps"], self.p["momentum"], x.size // self.channels)

    def _grad_buffers(self):
        if "weight" in self.grads:
            return self.grads["weight"], self.grads["bias"]
        return self.scratch("dgamma", (self.channels,)), self.scratch("dbeta", (self.channels,))

    def forward(self, xs, train, rng):
        x = self.x = xs[0]
        x2 = x.reshape(self.channels, -1)
        y = self.scratch("out", x.shape)
        gamma, beta = self._affine()
        self.mean = self.scratch("mean", (self.channels,), np.float64)
        self.invstd = self.scratch("invstd", (self.channels,), np.float64)
        self.train = train
        eps = self.p["eps"]
        rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
        if train:
            self._check_batch(x)
            parallel(bn_train_forward, self.channels, x2, gamma, beta, eps, self.act, y.reshape(x2.shape),
                     self.mean, self.invstd)
            self._update_running(x)
        else:
            parallel(bn_eval_forward, self.channels, x2, gamma, beta, rm, rv, eps, self.act, y.reshape(x2.shape))
            self.mean[...] = rm
            self.invstd[...] = 1.0 / np.sqrt(rv.astype(np.float64) + eps)
        return y

    def backward(self, dy, need):
        gamma, beta = self._affine()
        flat = (self.channels, -1)
        dx = self.gradient(self.x.shape)
        dgamma, dbeta = self._grad_buffers()
        parallel(bn_backward, self.channels, dy.reshape(flat), self.x.reshape(flat), gamma, beta, self.mean,
                 self.invstd, self.train, self.act, dx.reshape(flat), dgamma, dbeta)
        return [dx]


# -- bn -> relu -> max pool in one op: the normalised map is never written. Forward pools the
# normalised values on the fly; backward writes dx in one pass and scatters the pooled gradient.


@kernel
def bn_act_maxpool_forward(lo, hi, x, gamma, beta, eps, train, act, fh, fw, sh, sw, pt, pl, out, arg, mean, invstd):
    """train: batch statistics into mean/invstd; else mean/invstd hold the running ones."""
    for c in range(lo, hi):
        if train:
            mean[c], invstd[c] = channel_stats(x[c].reshape(-1), eps)
        scale = gamma[c] * invstd[c]
        max_pool_channel(x[c], scale, beta[c] - mean[c] * scale, act, fh, fw, sh, sw, pt, pl, out[c], arg[c])


@kernel
def bn_act_maxpool_backward(lo, hi, dp, x, arg, gamma, beta, mean, invstd, train, act, dx, dgamma, dbeta):
    """Per channel: scatter the pooled gradient to the arg-max positions (into the channel's dx, which
    stays in cache), mask it by the activation, then batch norm's backward in place in one vectorised pass."""
    C, H, W, N = x.shape
    M = H * W * N
    P = dp.shape[1] * dp.shape[2]
    z = x.dtype.type(0)
    six = x.dtype.type(6)
    for c in range(lo, hi):
        inv = invstd[c]
        a = x.dtype.type(gamma[c] * inv)
        b = x.dtype.type(beta[c] - mean[c] * gamma[c] * inv)
        xc, gc = x[c].reshape(-1), dx[c].reshape(-1)
        ac, pc = arg[c].reshape(-1), dp[c].reshape(-1)
        gc[:] = z
        for q in range(P):
            base = q * N
            for n in range(N):
                gc[ac[base + n] * N + n] += pc[base + n]
        for i in range(M):  # the activation's mask, from the recomputed pre-activation
            t = xc[i] * a + b
            live = t > z if act == RELU else (t > z and t < six)
            gc[i] = gc[i] if live else z
        dgamma[c], dbeta[c] = _input_grad_in_place(gc, xc, mean[c], inv, gamma[c], train)


class BatchNormActPoolOp(BatchNormOp):
    """bn -> relu (or relu6) -> max pool, fused by Model when each feeds only the next."""

    def __init__(self, node, dtype, act, pool):
        super().__init__(node, dtype)
        self.act = act
        self.pool = pool  # the MaxPoolOp whose geometry and output shape this op takes over

    def forward(self, xs, train, rng):
        x = self.x = xs[0]
        gamma, beta = self._affine()
        self.train = train
        self.mean = self.scratch("mean", (self.channels,), np.float64)
        self.invstd = self.scratch("invstd", (self.channels,), np.float64)
        rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
        p = self.pool
        out = self.scratch("out", p.out_shape(x.shape[3]))
        self.arg = self.scratch("arg", out.shape, np.int32)
        if train:
            self._check_batch(x)
        else:
            self.mean[...] = rm
            self.invstd[...] = 1.0 / np.sqrt(rv.astype(np.float64) + self.p["eps"])
        parallel(bn_act_maxpool_forward, self.channels, x, gamma, beta, self.p["eps"], train, self.act,
                 p.fh, p.fw, p.sh, p.sw, p.pt, p.pl, out, self.arg, self.mean, self.invstd)
        if train:
            self._update_running(x)
        return out

    def backward(self, dy, need):
        gamma, beta = self._affine()
        dx = self.gradient(self.x.shape)
        dgamma, dbeta = self._grad_buffers()
        parallel(bn_act_maxpool_backward, self.channels, dy, self.x, self.arg, gamma, beta, self.mean,
                 self.invstd, self.train, self.act, dx, dgamma, dbeta)
        return [dx]



@kernel
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


@kernel
def lrn_backward_terms(lo, hi, dy, x, scale, beta, t):
    C, M = x.shape
    for c in range(lo, hi):
        for i in range(M):
            t[c, i] = dy[c, i] * x[c, i] * scale[c, i] ** (-beta - 1.0)


@kernel
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
    kinds = (LocalResponseNorm,)

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
        dx = self.gradient(x.shape)
        t = self.temp("t", self.sc.shape)
        parallel(lrn_backward_terms, c, dy.reshape(c, -1), x.reshape(c, -1), self.sc, self.p["beta"], t)
        parallel(lrn_backward, c, dy.reshape(c, -1), x.reshape(c, -1), self.sc, self.p["size"], self.p["alpha"],
                 self.p["beta"], t, dx.reshape(c, -1))
        return [dx]


OPS = (BatchNormOp, LRNOp)
