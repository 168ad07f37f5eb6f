"""One training step: forward in training mode, loss, backward, optimizer update."""

from __future__ import annotations

import numpy as np

from .losses import Loss
from .model import Model
from .optim import Optimizer


class TrainStep:
    def __init__(self, model: Model, loss: Loss, optimizer: Optimizer):
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.start = model.logits_node if loss.classifies else model.spec.output_node

    def __call__(self, x: np.ndarray, target: np.ndarray) -> tuple[float, int]:
        """x in the engine's (C, H, W, N) layout. Returns (mean loss, correct predictions)."""
        m = self.model
        m.forward_internal(x, train=True)
        loss, grad, correct = self.loss(m.output_of(self.start), target)
        m.backward_internal(grad, start=self.start)
        self.optimizer.step()
        return loss, correct

    def evaluate(self, x: np.ndarray, target: np.ndarray) -> tuple[float, int]:
        m = self.model
        m.infer_internal(x)
        loss, _, correct = self.loss(m.output_of(self.start), target)
        return loss, correct
