"""Convolution: filters, rectangular kernels, stride, padding (incl. 'same'), dilation, groups, bias."""

from __future__ import annotations

from ..errors import LayerError
from .base import INIT_PARAM, REQUIRED, Inferred, LayerKind, Param, need_map
from .window import effective, same_padding, slide


def resolve_padding(padding, in_hw, kernel_hw, stride_hw) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)) from a spec value: a pair, or 'same'."""
    if padding == "same":
        return tuple(same_padding(n, k, s) for n, k, s in zip(in_hw, kernel_hw, stride_hw))  # type: ignore[return-value]
    return (padding[0], padding[0]), (padding[1], padding[1])


def window_output(kind: str, shape, kernel, stride, padding, dilation=(1, 1), ceil=False):
    """Output (H, W), the resolved padding and any dropped-pixel warnings for a sliding window."""
    c, h, w = need_map(kind, shape)
    eff = (effective(kernel[0], dilation[0]), effective(kernel[1], dilation[1]))
    pads = resolve_padding(padding, (h, w), eff, stride)
    outs, warnings = [], []
    for axis, size, k, s, pad, raw, d in zip("HW", (h, w), eff, stride, pads, kernel, dilation):
        note = f" (effective kernel {k} = {d}*({raw}-1)+1)" if d > 1 else ""
        out, warning = slide(axis, size, k, s, pad, ceil, note)
        outs.append(out)
        if warning:
            warnings.append(warning)
    return (outs[0], outs[1]), pads, ["; ".join(warnings)] if warnings else []


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
        groups = c if p["g"] == "dw" else p["g"]
        filters = p["k"]
        if filters is None:
            if p["g"] != "dw":
                raise LayerError("conv needs k, the number of filters", "write e.g. conv k=32 f=3")
            filters = c
        if c % groups or filters % groups:
            raise LayerError(
                f"g={groups} groups must divide both the {c} input channels and the k={filters} filters",
                f"choose g among the common divisors of {c} and {filters}",
            )
        (ho, wo), _, warnings = window_output("conv", inputs[0], p["f"], p["s"], p["p"], p["d"])
        fh, fw = p["f"]
        weights = filters * (c // groups) * fh * fw
        kernel = (effective(fh, p["d"][0]), effective(fw, p["d"][1]))
        return Inferred(
            shape=(filters, ho, wo),
            params=weights + (filters if p["bias"] else 0),
            macs=weights * ho * wo,
            rf_kernel=kernel,
            rf_stride=p["s"],
            warnings=warnings,
        )


KINDS = (Conv,)
