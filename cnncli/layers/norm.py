"""Normalisation: batch norm (PyTorch's definition) and local response norm (AlexNet)."""

from __future__ import annotations

from .base import Inferred, LayerKind, Param, need_map


class BatchNorm(LayerKind):
    name = "bn"
    aliases = ("batchnorm", "batch_norm", "batchnorm2d")
    family = "norm"
    summary = "batch normalisation; running mean/var are buffers, not parameters"
    example = "bn eps=1e-3"
    params = (
        Param("eps", "float", 1e-5, "added to the variance", minimum=0.0),
        Param("momentum", "float", 0.1, "running-statistics update rate (PyTorch's convention)",
              minimum=0.0, maximum=1.0),
        Param("affine", "bool", True, "learn a scale (gamma) and shift (beta) per channel"),
    )

    def infer(self, p, inputs):
        channels = inputs[0][0]
        return Inferred(shape=inputs[0], params=2 * channels if p["affine"] else 0, buffers=2 * channels)


class LocalResponseNorm(LayerKind):
    name = "lrn"
    aliases = ("localresponsenorm",)
    family = "norm"
    summary = "local response normalisation across channels (PyTorch's formula)"
    example = "lrn 5 alpha=1e-4 beta=0.75 k=2"
    params = (
        Param("size", "int", 5, "number of neighbouring channels", positional=True, minimum=1),
        Param("alpha", "float", 1e-4, "scale", minimum=0.0),
        Param("beta", "float", 0.75, "exponent", minimum=0.0),
        Param("k", "float", 1.0, "additive constant", minimum=0.0),
    )

    def infer(self, p, inputs):
        need_map("lrn", inputs[0])
        return Inferred(shape=inputs[0])


KINDS = (BatchNorm, LocalResponseNorm)
