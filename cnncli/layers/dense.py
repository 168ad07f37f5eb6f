"""Fully connected layers and flatten."""

from __future__ import annotations

from math import prod

from .base import INIT_PARAM, REQUIRED, Inferred, LayerKind, Param


def _flat_rf(shape):
    """A layer that sees the whole map: its receptive-field kernel is the map."""
    if len(shape) == 3:
        return (shape[1], shape[2])
    return (1, 1)


class Dense(LayerKind):
    name = "fc"
    aliases = ("dense", "linear", "fullyconnected")
    family = "dense"
    summary = "fully connected; flattens a feature map first (C, H, W order, as PyTorch's flatten)"
    example = "fc 10"
    params = (
        Param("units", "int", REQUIRED, "number of outputs", positional=True, minimum=1),
        Param("bias", "bool", True, "learn a bias per output"),
        INIT_PARAM,
    )

    def infer(self, p, inputs):
        fan_in = prod(inputs[0])
        weights = fan_in * p["units"]
        kernel = _flat_rf(inputs[0])
        return Inferred(
            shape=(p["units"],),
            params=weights + (p["units"] if p["bias"] else 0),
            macs=weights,
            rf_kernel=kernel,
            rf_stride=kernel,
        )


class Flatten(LayerKind):
    name = "flatten"
    family = "dense"
    summary = "C x H x W -> a vector of C*H*W (fc does this by itself)"
    example = "flatten"

    def infer(self, p, inputs):
        shape = inputs[0]
        kernel = _flat_rf(shape)
        warnings = [] if len(shape) == 3 else ["flatten of an already flat vector does nothing; remove it"]
        return Inferred(shape=(prod(shape),), rf_kernel=kernel, rf_stride=kernel, warnings=warnings)


KINDS = (Dense, Flatten)
