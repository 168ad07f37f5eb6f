"""Finite-difference gradient check of a whole network, layer by layer, in float64.

For the scalar L = sum(forward(x) * R) with random x and R, every parameter's analytic gradient and
the gradient arriving at every layer's input are compared with central differences
(L(v + h) - L(v - h)) / 2h on a sample of entries. A layer's backward is wrong exactly when the
gradient at its input (or its parameters) disagrees while the gradient at its output agrees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import memory
from .model import Model
from .spec import Spec
from .spec.graph import INPUT


@dataclass
class LayerCheck:
    name: str
    kind: str
    worst: float  # the worst relative error among this layer's parameters and input gradients
    checked: int  # entries compared
    worst_where: str
    kinks: int = 0  # entries skipped: the loss is not differentiable there (relu at 0, max-pool ties)


FLOOR = 1e-3  # gradients below this are compared absolutely: their finite differences are mostly noise
KINK = 1e-3  # one-sided slopes that differ by more than this (relatively) mark a non-differentiable point


def relative_error(analytic: float, numeric: float) -> float:
    return abs(analytic - numeric) / max(abs(analytic), abs(numeric), FLOOR)


class _Probe:
    """Runs the model with one value nudged: a parameter entry, or an entry of a layer's output."""

    def __init__(self, model: Model, x: np.ndarray, train: bool, seed: int):
        self.model, self.x, self.train, self.seed = model, x, train, seed
        self.r: np.ndarray | None = None  # the random weights of the scalar loss, drawn on the first run
        self.rng_state = model.rng.bit_generator.state
        self.buffers = {k: v.copy() for k, v in model.buffers().items()}

    def loss(self, nudge: tuple | None = None) -> float:
        """L with `nudge` = (node index or INPUT, delta array) added to that value."""
        m = self.model
        m.rng.bit_generator.state = self.rng_state  # the same dropout mask every time
        for k, v in self.buffers.items():  # BN running statistics must not drift between runs
            m.param(k)[...] = v
        x, tap = self.x, None
        if nudge is not None and nudge[0] == INPUT:
            x = self.x + nudge[1]
        elif nudge is not None:
            index, delta = nudge
            tap = lambda i, y: y + delta if i == index else y  # noqa: E731
        out = m.forward_internal(x, self.train, tap)
        if self.r is None:
            self.r = np.random.default_rng([self.seed, 2]).normal(0, 1, out.shape)
        return float(np.sum(out * self.r))


def check(spec: Spec, batch: int = 2, entries: int = 8, seed: int = 0, h: float = 1e-6,
          train: bool = True, fuse: bool = False) -> list[LayerCheck]:
    """Per-layer checks need every layer on its own (fuse=False); fuse=True checks the fused
    kernels the trainer runs (a fused layer's error then shows at the op that absorbed it)."""
    memory.require_for(spec, batch, f"checking gradients of {spec.file}", value_bytes=8)
    model = Model(spec, np.float64, seed, fuse=fuse)
    rng = np.random.default_rng(seed + 1)
    c, hh, ww = spec.input
    x = rng.normal(0, 1, (c, hh, ww, batch))  # the engine's CHWN layout
    probe = _Probe(model, x, train, seed)

    # Analytic: every parameter's gradient, and the gradient arriving at every node's output.
    probe.loss()
    arriving: dict[int, np.ndarray] = {}
    arriving[INPUT] = np.array(model.backward_internal(probe.r, input_grad=True, seen=arriving))
    analytic_params = {k: v.copy() for k, v in model.grads().items()}

    def sample(shape):
        size = int(np.prod(shape))
        picks = rng.choice(size, min(entries, size), replace=False)
        return [np.unravel_index(p, shape) for p in picks]

    base = probe.loss()

    def derivative(plus: float, minus: float) -> float | None:
        """The central difference, or None at a kink, where the one-sided slopes disagree."""
        right, left = (plus - base) / h, (base - minus) / h
        if abs(right - left) > KINK * max(abs(right), abs(left), FLOOR):
            return None
        return (plus - minus) / (2 * h)

    def numeric_of_output(index: int, where) -> float | None:
        target = x if index == INPUT else model.output_of(index)
        delta = np.zeros(target.shape)
        delta[where] = h
        return derivative(probe.loss((index, delta)), probe.loss((index, -delta)))

    def numeric_of_param(name: str, where) -> float | None:
        p = model.param(name)
        keep = p[where]
        p[where] = keep + h
        plus = probe.loss()
        p[where] = keep - h
        minus = probe.loss()
        p[where] = keep
        return derivative(plus, minus)

    results = []
    for op in model.ops:
        worst, worst_where, count, kinks = 0.0, "", 0, 0

        def compare(analytic: float, numeric: float | None, label: str) -> None:
            nonlocal worst, worst_where, count, kinks
            if numeric is None:
                kinks += 1
                return
            count += 1
            err = relative_error(analytic, numeric)
            if err >= worst:
                worst, worst_where = err, label

        for name in [n for n in analytic_params if n.rpartition(".")[0] == op.node.name]:
            for where in sample(analytic_params[name].shape):
                compare(analytic_params[name][where], numeric_of_param(name, where), f"{name}{list(map(int, where))}")
        for i in op.node.inputs:
            probe.loss()  # refresh the outputs the nudges are applied to
            shape = (x if i == INPUT else model.output_of(i)).shape
            label = "input" if i == INPUT else spec.nodes[i].name
            for where in sample(shape):
                nchw = [int(where[3]), *map(int, where[:3])]  # shown as (sample, channel, row, column)
                compare(arriving[i][where], numeric_of_output(i, where), f"d/d {label}{nchw}")
        results.append(LayerCheck(op.node.name, op.node.kind.name, worst, count, worst_where, kinks))
    return results
