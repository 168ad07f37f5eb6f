"""Losses over the engine's (K, N) outputs: softmax cross-entropy (fused, log-sum-exp, optional label
smoothing as PyTorch defines it), MSE and MAE (means over all values, as PyTorch's reduction='mean')."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def cross_entropy(logits, labels, smoothing, grad):
    """Mean loss over the batch; grad gets d(mean loss)/d(logits). Returns (loss, correct)."""
    K, N = logits.shape
    total = 0.0
    correct = 0
    for n in range(N):
        top = logits[0, n]
        best = 0
        for k in range(1, K):
            if logits[k, n] > top:
                top = logits[k, n]
                best = k
        s = 0.0
        mean_logit = 0.0
        for k in range(K):
            s += np.exp(logits[k, n] - top)
            mean_logit += logits[k, n]
        lse = top + np.log(s)
        y = labels[n]
        total += (1.0 - smoothing) * (lse - logits[y, n]) + smoothing * (lse - mean_logit / K)
        if best == y:
            correct += 1
        for k in range(K):
            target = smoothing / K + (1.0 - smoothing if k == y else 0.0)
            grad[k, n] = (np.exp(logits[k, n] - lse) - target) / N
    return total / N, correct


@njit(cache=True, error_model="numpy")
def regression(pred, target, absolute, grad):
    """MSE (absolute=False) or MAE over all values; target is (N, K), pred and grad (K, N)."""
    K, N = pred.shape
    total = 0.0
    count = K * N
    for n in range(N):
        for k in range(K):
            d = pred[k, n] - target[n, k]
            if absolute:
                total += abs(d)
                grad[k, n] = (1.0 if d > 0 else (-1.0 if d < 0 else 0.0)) / count
            else:
                total += d * d
                grad[k, n] = 2.0 * d / count
    return total / count


class Loss:
    """Computes the loss of a batch and the gradient for the network's output, reusing one buffer."""

    def __init__(self, name: str, smoothing: float = 0.0):
        self.name = name
        self.smoothing = smoothing
        self._grad: np.ndarray | None = None

    @property
    def classifies(self) -> bool:
        return self.name == "cross_entropy"

    def __call__(self, out: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, int]:
        """out: (K, N) or (K, 1, 1, N) engine output; target: labels (N,) or values (N, K).
        Returns (mean loss, gradient shaped like out, number of correct predictions)."""
        k, n = out.shape[0], out.shape[-1]
        logits = out.reshape(k, n)
        if self._grad is None or self._grad.shape != logits.shape or self._grad.dtype != logits.dtype:
            self._grad = np.empty(logits.shape, logits.dtype)
        if self.classifies:
            loss, correct = cross_entropy(logits, np.asarray(target, np.int64), self.smoothing, self._grad)
        else:
            target = np.asarray(target, logits.dtype).reshape(n, k)
            loss, correct = regression(logits, target, self.name == "mae", self._grad), 0
        return float(loss), self._grad.reshape(out.shape), int(correct)


def from_spec(train, classes: int | None) -> Loss:
    setting = train.loss_setting(classes)
    return Loss(setting["name"], setting.get("smoothing", 0.0))
