"""The memory estimate of one float32 training step, as `cnn shapes` shows it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .network import Spec

BYTES_PER_VALUE = 4  # float32


def optimizer_slots(train) -> int:
    """Arrays of the parameters' size the spec's optimizer keeps: its declared state (Adam: 2, plain SGD: 0)."""
    from .train import OPTIMIZERS

    opt = train.optimizer or {"name": "adam"}
    return len(OPTIMIZERS[opt["name"]].state(opt))


def train_step_bytes(spec: Spec, batch: int) -> dict[str, int]:
    """Weights, their gradients, optimizer state, BN buffers, and per sample every layer's output
    plus its gradient."""
    params = spec.total_params
    out = {
        "batch": batch,
        "weights": params * BYTES_PER_VALUE,
        "gradients": params * BYTES_PER_VALUE,
        "optimizer_state": optimizer_slots(spec.train) * spec.trainable_params * BYTES_PER_VALUE,
        "buffers": spec.buffers * BYTES_PER_VALUE,
        "activations": 2 * batch * spec.activations_per_sample * BYTES_PER_VALUE,
    }
    out["total"] = sum(v for k, v in out.items() if k != "batch")
    return out
