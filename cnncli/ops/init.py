"""Weight initialisation, chosen per layer with init=... (PyTorch's defaults unless told otherwise)."""

from __future__ import annotations

import math

import numpy as np


def weights(w: np.ndarray, scheme: str, fan_in: int, fan_out: int, rng: np.random.Generator) -> None:
    if scheme == "default":
        # PyTorch's conv/linear default: kaiming_uniform(a=sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        bound = 1.0 / math.sqrt(fan_in)
        w[...] = rng.uniform(-bound, bound, w.shape)
    elif scheme == "he_normal":
        w[...] = rng.normal(0.0, math.sqrt(2.0 / fan_in), w.shape)
    elif scheme == "he_uniform":
        bound = math.sqrt(6.0 / fan_in)
        w[...] = rng.uniform(-bound, bound, w.shape)
    elif scheme == "xavier_normal":
        w[...] = rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), w.shape)
    elif scheme == "xavier_uniform":
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        w[...] = rng.uniform(-bound, bound, w.shape)
    elif scheme == "zeros":
        w[...] = 0
    else:  # the spec layer validated the name; reaching here is a bug
        raise ValueError(f"unknown init scheme {scheme}")


def bias(b: np.ndarray, scheme: str, fan_in: int, rng: np.random.Generator) -> None:
    """PyTorch draws biases from U(-1/sqrt(fan_in), ...); the He/Xavier schemes start them at zero."""
    if scheme == "default":
        bound = 1.0 / math.sqrt(fan_in)
        b[...] = rng.uniform(-bound, bound, b.shape)
    else:
        b[...] = 0
