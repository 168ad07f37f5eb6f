from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnncli.errors import UserError
from cnncli.spec import loads

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURES = ROOT / "architectures"


def forward_backward(model, x, dy=None):
    """A training forward and backward of `model` on x (N, C, H, W): (output, input gradient, the
    parameters' gradients, dy), copied, so that a later call does not overwrite them; dy random
    unless given."""
    y = model.forward(x, train=True).copy()
    if dy is None:
        dy = np.random.default_rng(1).normal(0, 1, y.shape)
    dx = model.backward(dy, input_grad=True).copy()
    return y, dx, {name: g.copy() for name, g in model.grads().items()}, dy


def spec_error(text: str, file: str = "t.yaml") -> UserError:
    """Load a spec that must fail and return its error."""
    with pytest.raises(UserError) as info:
        loads(text, file)
    return info.value


def net(chain: str, input: str = "1x28x28", extra: str = ""):
    return loads(f"input: {input}\n{extra}net: {chain}\n", "t.yaml")
