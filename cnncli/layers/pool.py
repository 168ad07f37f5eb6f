"""Pooling: max, average (PyTorch's count-include-pad), L2, and global average/max."""

from __future__ import annotations

from ..errors import LayerError
from .base import Inferred, LayerKind, Param, need_map
from .window import resolve


class _WindowPool(LayerKind):
    family = "pool"
    params = (
        Param("f", "pair", 2, "window size, e.g. 2 or 3x3", positional=True, minimum=1),
        Param("s", "pair", None, "stride (defaults to the window)", positional=True, minimum=1),
        Param("p", "padding", 0, "padding on each side, or 'same'", minimum=0),
        Param("ceil", "bool", False, "round the output size up (Caffe/GoogLeNet) instead of down"),
    )

    def infer(self, p, inputs):
        c, _, _ = need_map(self.name, inputs[0])
        stride = p["s"] or p["f"]
        if p["p"] != "same":
            for pad, window in zip(p["p"], p["f"]):
                if 2 * pad > window:
                    raise LayerError(
                        f"padding {pad} is more than half the {window}-wide window",
                        f"use p={window // 2} or less (PyTorch's rule: windows of padding alone are undefined)",
                    )
        window, warnings = resolve(self.name, inputs[0], p["f"], stride, p["p"], ceil=p["ceil"])
        return Inferred(shape=(c, *window.out), rf_kernel=p["f"], rf_stride=stride, warnings=warnings, window=window)


class MaxPool(_WindowPool):
    name = "pool"
    aliases = ("maxpool", "max_pool", "maxpool2d")
    summary = "max pooling; backward routes the gradient to the arg-max"
    example = "pool 3 s=2 p=1"


class AvgPool(_WindowPool):
    name = "avgpool"
    aliases = ("avg_pool", "avgpool2d", "meanpool")
    summary = "average pooling; padded zeros count in the mean (PyTorch's count_include_pad)"
    example = "avgpool 2"


class L2Pool(_WindowPool):
    name = "l2pool"
    aliases = ("lppool", "l2_pool")
    summary = "L2 pooling: square root of the sum of squares in each window"
    example = "l2pool 2"


class _GlobalPool(LayerKind):
    family = "pool"

    def infer(self, p, inputs):
        c, h, w = need_map(self.name, inputs[0])
        return Inferred(shape=(c, 1, 1), rf_kernel=(h, w), rf_stride=(h, w))


class GlobalAvgPool(_GlobalPool):
    name = "gap"
    aliases = ("globalavgpool", "global_avg_pool", "avgpool_global")
    summary = "global average pooling: each channel's mean, giving Cx1x1"
    example = "gap"


class GlobalMaxPool(_GlobalPool):
    name = "gmp"
    aliases = ("globalmaxpool", "global_max_pool", "maxpool_global")
    summary = "global max pooling: each channel's maximum, giving Cx1x1"
    example = "gmp"


KINDS = (MaxPool, AvgPool, L2Pool, GlobalAvgPool, GlobalMaxPool)
