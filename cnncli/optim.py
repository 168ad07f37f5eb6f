"""Optimizers with PyTorch's update rules, over the model's one flat parameter vector.

Before the update, as `loss.backward(); clip_grad_norm_(); optimizer.step()` would: an L1 penalty
adds l1 * sign(w) to the gradient, then the gradient's global norm is clipped. Weight decay is the
optimizer's own (added to the gradient, or decoupled for AdamW), applied to every parameter.
"""

from __future__ import annotations

import math

import numpy as np

from .ops.jit import kernel
from .ops.threads import parallel_values

# Each kernel updates values lo..hi of the flat vectors, through views starting at 0 and with
# constants of the parameters' dtype (so the loops vectorise and float32 stays float32).


@kernel
def _l1(lo, hi, p, g, l1):
    p, g = p[lo:hi], g[lo:hi]
    z = p.dtype.type(0)
    for i in range(p.size):
        g[i] += l1 if p[i] > z else (-l1 if p[i] < z else z)


@kernel
def _sum_squares(lo, hi, g):
    g = g[lo:hi]
    total = 0.0
    for i in range(g.size):
        total += g[i] * g[i]
    return total


@kernel
def _sgd(lo, hi, p, g, buf, lr, momentum, dampening, nesterov, wd, first):
    p, g, buf = p[lo:hi], g[lo:hi], buf[lo:hi]
    keep = p.dtype.type(1) - dampening
    for i in range(p.size):
        d = g[i] + wd * p[i]
        if momentum != 0:
            b = d if first else momentum * buf[i] + keep * d
            buf[i] = b
            d = d + momentum * b if nesterov else b
        p[i] -= lr * d


@kernel
def _adam(lo, hi, p, g, m, v, lr, beta1, beta2, eps, wd, decoupled, bias1, bias2_sqrt):
    p, g, m, v = p[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi]
    one = p.dtype.type(1)
    step = lr / bias1
    keep = one - lr * wd
    rest1, rest2 = one - beta1, one - beta2
    for i in range(p.size):
        d = g[i]
        if decoupled:
            p[i] *= keep
        else:
            d = d + wd * p[i]
        mi = beta1 * m[i] + rest1 * d
        vi = beta2 * v[i] + rest2 * d * d
        m[i] = mi
        v[i] = vi
        p[i] -= step * mi / (np.sqrt(vi) / bias2_sqrt + eps)


@kernel
def _rmsprop(lo, hi, p, g, sq, buf, lr, alpha, eps, momentum, wd):
    p, g, sq, buf = p[lo:hi], g[lo:hi], sq[lo:hi], buf[lo:hi]
    rest = p.dtype.type(1) - alpha
    for i in range(p.size):
        d = g[i] + wd * p[i]
        s = alpha * sq[i] + rest * d * d
        sq[i] = s
        step = d / (np.sqrt(s) + eps)
        if momentum > 0:
            b = momentum * buf[i] + step
            buf[i] = b
            p[i] -= lr * b
        else:
            p[i] -= lr * step


class Optimizer:
    """One of sgd, adam, adamw, rmsprop, configured like the spec's `optimizer:` setting."""

    def __init__(self, params: np.ndarray, grads: np.ndarray, name: str = "adam", l1: float = 0.0,
                 clip: float = 0.0, **settings):
        from .errors import UserError
        from .spec.train import OPTIMIZERS

        if name not in OPTIMIZERS:
            raise UserError(f"unknown optimizer '{name}'", "choose one of: " + ", ".join(OPTIMIZERS))
        known = {p.name: p.default for p in OPTIMIZERS[name].params}
        unknown = set(settings) - set(known)
        if unknown:
            raise UserError(f"{name} has no setting {', '.join(sorted(unknown))}", "it takes: " + ", ".join(known))
        self.params, self.grads = params, grads
        self.name = name
        self.settings = {**known, **settings}
        self.lr = self.settings["lr"]
        self.l1, self.clip = l1, clip
        self.steps = 0
        # the state arrays its declaration names (none for plain SGD); an absent one is passed as empty
        self.state = {slot: np.zeros_like(params) for slot in OPTIMIZERS[name].state(self.settings)}
        self._none = np.zeros(0, params.dtype)
        self.last_grad_norm = 0.0

    def _t(self, value: float):
        return self.params.dtype.type(value)

    def step(self) -> None:
        p, g, s, t = self.params, self.grads, self.settings, self._t
        if self.l1:
            parallel_values(_l1, p.size, p, g, t(self.l1))
        if self.clip:
            norm = math.sqrt(sum(parallel_values(_sum_squares, g.size, g)))
            self.last_grad_norm = norm
            if norm > self.clip:
                g *= t(self.clip / (norm + 1e-6))  # PyTorch's clip_grad_norm_
        self.steps += 1
        wd = t(s.get("weight_decay", 0.0))
        lr = t(self.lr)
        if self.name == "sgd":
            parallel_values(_sgd, p.size, p, g, self.state.get("momentum_buffer", self._none), lr, t(s["momentum"]), t(s["dampening"]), s["nesterov"], wd,
                 self.steps == 1)
        elif self.name in ("adam", "adamw"):
            b1, b2 = s["beta1"], s["beta2"]
            parallel_values(_adam, p.size, p, g, self.state["exp_avg"], self.state["exp_avg_sq"], lr, t(b1), t(b2), t(s["eps"]), wd,
                  self.name == "adamw", t(1 - b1 ** self.steps), t(math.sqrt(1 - b2 ** self.steps)))
        else:
            parallel_values(_rmsprop, p.size, p, g, self.state["square_avg"], self.state.get("momentum_buffer", self._none), lr, t(s["alpha"]), t(s["eps"]),
                     t(s["momentum"]), wd)


def from_spec(train, params: np.ndarray, grads: np.ndarray) -> Optimizer:
    """The optimizer a TrainSettings names (Adam by default), over the given flat vectors."""
    from .spec.train import OPTIMIZERS, parse_component

    if train.optimizer:
        settings = dict(train.optimizer)
    else:
        settings = {"name": "adam", **parse_component("adam", OPTIMIZERS, "optimizer")[1]}
    if train.lr is not None:
        settings["lr"] = train.lr
    if train.weight_decay is not None:
        settings["weight_decay"] = train.weight_decay
    name = settings.pop("name")
    return Optimizer(params, grads, name, l1=train.l1, clip=train.clip, **settings)
