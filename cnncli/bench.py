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


def layer_flops(node, batch: int) -> tuple[int, int]:
    """Floating-point operations of one layer's forward and backward for a batch: 2 per
    multiply-add of a conv or fc (the backward computes the weight gradient and, unless the layer
    reads the network's input, the input gradient: one forward's worth each); 0 for other layers."""
    from .spec.graph import INPUT

    forward = 2 * node.info.macs * batch
    return forward, forward * (1 if INPUT in node.inputs else 2)


def cpu() -> dict:
    """What the figures were measured on: the CPU's name, its widest float vector and the core count."""
    import os
    import platform

    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in open("/proc/cpuinfo", encoding="ascii", errors="replace"):
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() in ("flags", "Features"):
                flags = set(value.split())
                break
    except OSError:
        pass
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "AVX" if "avx" in flags else \
        "NEON" if "asimd" in flags else "SSE" if "sse2" in flags else "unknown"
    fma = "fma" in flags or "asimd" in flags
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return {"name": name, "vector": vector + (" + FMA" if fma and vector != "NEON" else ""), "cores": cores}


def blas_kernels() -> str:
    from threadpoolctl import threadpool_info

    found = [f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})" for i in threadpool_info()
             if i.get("user_api") == "blas"]
    return ", ".join(found) or "unknown"


def random_training(spec: Spec, batch: int, seed: int = 0):
    """(model, step, x, target): a float32 model of `spec`, its training step (the spec's loss and
    optimizer) and a batch of random data in the engine's (C, H, W, N) layout with random targets."""
    from . import losses, optim
    from .model import Model
    from .step import TrainStep

    model = Model(spec, np.float32, seed)
    rng = np.random.default_rng(seed)
    c, h, w = spec.input
    x = rng.normal(0, 1, (c, h, w, batch)).astype(np.float32)
    loss = losses.from_spec(spec.train, spec.classes)
    if loss.classifies:
        target = rng.integers(0, spec.classes or int(np.prod(spec.output_shape)), batch)
    else:
        target = rng.normal(0, 1, (batch, int(np.prod(spec.output_shape)))).astype(np.float32)
    step = TrainStep(model, loss, optim.from_spec(spec.train, model.flat_params, model.flat_grads))
    return model, step, x, target


def run(spec: Spec, batch: int = 64, steps: int = 20, warmup: int = 3, seed: int = 0) -> dict:
    started = time.perf_counter()
    from . import memory
    from .ops.base import Fused
    from .ops.threads import workers

    memory.require_for(spec, batch, f"benchmarking {spec.file}")
    model, step, x, target = random_training(spec, batch, seed)

    step(x, target)
    model.infer_internal(x)
    first = time.perf_counter() - started
    for _ in range(warmup):
        step(x, target)
        model.infer_internal(x)

    t = time.perf_counter()
    for _ in range(steps):
        model.infer_internal(x)
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
        flops = layer_flops(node, batch)
        layers.append({"name": node.name, "type": node.kind.name, "output": list(node.shape), "fused_into": fused_into,
                       "forward_ms": fwd * 1e3, "backward_ms": bwd * 1e3,
                       "forward_gflop_per_s": flops[0] / fwd / 1e9 if fwd and flops[0] else None,
                       "backward_gflop_per_s": flops[1] / bwd / 1e9 if bwd and flops[1] else None,
                       "share": (fwd + bwd) / timed_step if timed_step else 0.0})
    train_flops = sum(sum(layer_flops(node, batch)) for node in spec.nodes)
    infer_flops = sum(layer_flops(node, batch)[0] for node in spec.nodes)
    in_layers = sum(layer["forward_ms"] + layer["backward_ms"] for layer in layers) / 1e3
    return {
        "name": spec.name,
        "batch": batch,
        "steps": steps,
        "threads": workers(),
        "blas": blas_kernels(),
        "cpu": cpu(),
        "first_step_s": first,
        "train_step_ms": train * 1e3,
        "train_samples_per_s": batch / train,
        "inference_ms": infer * 1e3,
        "inference_samples_per_s": batch / infer,
        "train_gflop_per_s": train_flops / train / 1e9,
        "inference_gflop_per_s": infer_flops / infer / 1e9,
        "loss_and_optimizer_ms": max(timed_step - in_layers, 0.0) * 1e3,
        "layers": layers,
    }
