"""Convolution: filters, rectangular kernels, stride, padding (incl. 'same'), dilation, groups, bias."""

from __future__ import annotations

from ..errors import LayerError
from .base import DEPTHWISE, INIT_PARAM, REQUIRED, Inferred, LayerKind, Param, need_map
from .window import resolve


class Conv(LayerKind):
    name = "conv"
    aliases = ("conv2d", "convolution")
    family = "conv"
    summary = "2-D convolution (cross-correlation, as in PyTorch)"
    example = "conv k=32 f=3 s=1 p=same"
    params = (
        Param("k", "int", None, "number of filters (output channels); with g=dw defaults to the input channels",
              positional=True, minimum=1),
        Param("f", "pair", REQUIRED, "kernel size, e.g. 5 or 3x5", positional=True, minimum=1),
        Param("s", "pair", 1, "stride", minimum=1),
        Param("p", "padding", 0, "zero padding on each side, HxW, or 'same'", minimum=0),
        Param("d", "pair", 1, "dilation", minimum=1),
        Param("g", "groups", 1, "groups; 'dw' = depthwise (one group per input channel)", minimum=1),
        Param("bias", "bool", True, "learn a bias per filter"),
        INIT_PARAM,
    )

    def infer(self, p, inputs):
        c, h, w = need_map("conv", inputs[0])
        groups = c if p["g"] == DEPTHWISE else p["g"]
        filters = p["k"]
        if filters is None:
            if p["g"] != DEPTHWISE:
                raise LayerError("conv needs k, the number of filters", "write e.g. conv k=32 f=3")
            filters = c
        if c % groups or filters % groups:
            raise LayerError(
                f"g={groups} groups must divide both the {c} input channels and the k={filters} filters",
                f"choose g among the common divisors of {c} and {filters}",
            )
        window, warnings = resolve("conv", inputs[0], p["f"], p["s"], p["p"], p["d"])
        fh, fw = p["f"]
        ho, wo = window.out
        weights = filters * (c // groups) * fh * fw
        return Inferred(
            shape=(filters, ho, wo),
            params=weights + (filters if p["bias"] else 0),
            macs=weights * ho * wo,
            rf_kernel=window.effective,
            rf_stride=p["s"],
            warnings=warnings,
            window=window,
            groups=groups,
        )


KINDS = (Conv,)
