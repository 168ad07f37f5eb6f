"""Sliding-window arithmetic shared by convolution and pooling: output size, padding, dropped pixels.

The geometry is resolved once, during shape inference, into a `Window` kept on the node
(`node.info.window`); the compiled ops and the PyTorch twin read it instead of recomputing it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import LayerError
from .base import need_map


@dataclass(frozen=True)
class Window:
    """A sliding window over one input size. Pairs are (along H, along W)."""

    kernel: tuple[int, int]  # as written (f=...)
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pad_h: tuple[int, int]  # rows of zeros at the top and the bottom
    pad_w: tuple[int, int]  # columns of zeros at the left and the right
    out: tuple[int, int]  # output height and width

    @property
    def effective(self) -> tuple[int, int]:
        """The span the dilated kernel covers: dilation * (kernel - 1) + 1."""
        return effective(self.kernel[0], self.dilation[0]), effective(self.kernel[1], self.dilation[1])


def resolve_padding(padding, in_hw, kernel_hw, stride_hw) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)) from a spec value: a pair, or 'same'."""
    if padding == "same":
        return tuple(same_padding(n, k, s) for n, k, s in zip(in_hw, kernel_hw, stride_hw))  # type: ignore[return-value]
    return (padding[0], padding[0]), (padding[1], padding[1])


def resolve(kind: str, shape, kernel, stride, padding, dilation=(1, 1), ceil=False) -> tuple[Window, list[str]]:
    """The window of a layer over its input `shape` and any dropped-pixel warning, or a LayerError
    showing the arithmetic when the output collapses."""
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
    window = Window(tuple(kernel), tuple(stride), tuple(dilation), pads[0], pads[1], (outs[0], outs[1]))
    return window, ["; ".join(warnings)] if warnings else []


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow/Keras 'same': output = ceil(size / stride); the odd pixel of padding goes last."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def slide(
    axis: str, size: int, kernel: int, stride: int, pad: tuple[int, int], ceil: bool = False, kernel_note: str = ""
) -> tuple[int, str | None]:
    """Output length along one axis, PyTorch's rules; returns (length, warning about dropped input).

    `axis` is "H" or "W"; `kernel` is the effective kernel (dilation applied).
    """
    lo, hi = pad
    span = size + lo + hi - kernel
    formula = _formula(axis, size, kernel, stride, lo, hi)
    if ceil:  # PyTorch: round up, but the last window must start inside the input or left padding
        out = (span + stride - 1) // stride + 1
        if out > 0 and (out - 1) * stride >= size + lo:
            out -= 1
    else:
        out = span // stride + 1
    if out <= 0:
        rounded = "" if span % stride == 0 else (", rounded up" if ceil else ", rounded down")
        fix_pad = -(-(kernel - size) // 2)
        raise LayerError(
            f"output {axis} collapses to {out}: {formula} = {_frac(span, stride)}{rounded}{kernel_note}",
            f"the {kernel}-wide window does not fit the {size}-pixel input: use a kernel of at most "
            f"{size + lo + hi}, or pad with p={fix_pad} or more, or downsample less before this layer",
        )
    if ceil:
        return out, None
    leftover = span % stride
    # The uncovered tail, less the part that is only padding, less the gap a kernel smaller than its
    # stride leaves between every two windows anyway (a 1x1 stride-2 shortcut skips every other row).
    dropped = leftover - hi - max(stride - kernel, 0)
    if dropped > 0:
        rows = "row" if axis == "H" else "column"
        return out, (
            f"{dropped} input {rows}{'s' if dropped > 1 else ''} at the "
            f"{'bottom' if axis == 'H' else 'right'} never reach{'es' if dropped == 1 else ''} a window: "
            f"{formula} = {_frac(span, stride)} floors to {out}"
        )
    return out, None


def _formula(axis: str, size: int, kernel: int, stride: int, lo: int, hi: int) -> str:
    pad = f"2*{lo}" if lo == hi else f"{lo} + {hi}"
    return f"({axis}={size} - {kernel} + {pad})/{stride} + 1"


def _frac(span: int, stride: int) -> str:
    if span % stride == 0:  # exact, however large the sizes
        return str(span // stride + 1)
    return f"{span / stride + 1:g}"


def effective(kernel: int, dilation: int) -> int:
    return dilation * (kernel - 1) + 1
