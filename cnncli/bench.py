"""`cnn bench`: where the time of a training step goes, layer by layer, like `caffe time`.

Random data of the spec's input shape; after warm-up, times inference (eval-mode forward) and full
training steps (forward, loss, backward, optimizer), then one more set of steps with a timer around
every layer. Also reports how long the first step took (JIT compilation or loading Numba's cache).
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np

from .spec import Spec


def blas_kernels() -> str:
    from threadpoolctl import threadpool_info

    found = [f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})" for i in threadpool_info()
             if i.get("user_api") == "blas"]
    return ", ".join(found) or "unknown"


def run(spec: Spec, batch: int = 64, steps: int = 20, warmup: int = 3, seed: int = 0) -> dict:
    started = time.perf_counter()
    from . import losses, memory, optim
    from .model import Model
    from .ops.base import Fused
    from .ops.threads import workers
    from .step import TrainStep

    memory.require_for(spec, batch, f"benchmarking {spec.file}")
    model = Model(spec, np.float32, seed)
    rng = np.random.default_rng(seed)
    c, h, w = spec.input
    x = rng.normal(0, 1, (c, h, w, batch)).astype(np.float32)  # the engine's CHWN layout
    loss = losses.from_spec(spec.train, spec.classes)
    if loss.classifies:
        target = rng.integers(0, spec.classes or int(np.prod(spec.output_shape)), batch)
    else:
        target = rng.normal(0, 1, (batch, int(np.prod(spec.output_shape)))).astype(np.float32)
    step = TrainStep(model, loss, optim.from_spec(spec.train, model.flat_params, model.flat_grads))

    step(x, target)
    model.forward_internal(x, train=False)
    first = time.perf_counter() - started
    for _ in range(warmup):
        step(x, target)
        model.forward_internal(x, train=False)

    t = time.perf_counter()
    for _ in range(steps):
        model.forward_internal(x, train=False)
    infer = (time.perf_counter() - t) / steps
    t = time.perf_counter()
    for _ in range(steps):
        step(x, target)
    train = (time.perf_counter() - t) / steps

    spent: dict[tuple[str, str], float] = defaultdict(float)

    def timer(op, phase, fn):
        t0 = time.perf_counter()
        result = fn()
        spent[(op.node.name, phase)] += time.perf_counter() - t0
        return result

    model.timer = timer
    t = time.perf_counter()
    for _ in range(steps):
        step(x, target)
    timed_step = (time.perf_counter() - t) / steps
    model.timer = None

    layers = []
    for node, op in zip(spec.nodes, model.ops):
        fwd = spent[(node.name, "forward")] / steps
        bwd = spent[(node.name, "backward")] / steps
        fused_into = op.into.node.name if isinstance(op, Fused) else None
        layers.append({"name": node.name, "type": node.kind.name, "output": list(node.shape), "fused_into": fused_into,
                       "forward_ms": fwd * 1e3, "backward_ms": bwd * 1e3,
                       "share": (fwd + bwd) / timed_step if timed_step else 0.0})
    in_layers = sum(layer["forward_ms"] + layer["backward_ms"] for layer in layers) / 1e3
    return {
        "name": spec.name,
        "batch": batch,
        "steps": steps,
        "threads": workers(),
        "blas": blas_kernels(),
        "first_step_s": first,
        "train_step_ms": train * 1e3,
        "train_samples_per_s": batch / train,
        "inference_ms": infer * 1e3,
        "inference_samples_per_s": batch / infer,
        "loss_and_optimizer_ms": max(timed_step - in_layers, 0.0) * 1e3,
        "layers": layers,
    }
