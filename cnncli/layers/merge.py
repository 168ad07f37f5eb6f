"""Layers that join branches (residual sums, channel concatenation) and the parameter-free shortcut."""

from __future__ import annotations

from ..errors import LayerError
from .base import REQUIRED, Inferred, LayerKind, Param, describe_shape, need_map


def _branches(shapes) -> str:
    return ", ".join(f"branch {i + 1}: {describe_shape(s)}" for i, s in enumerate(shapes))


class Add(LayerKind):
    name = "add"
    aliases = ("sum", "residual")
    family = "merge"
    summary = "element-wise sum of its branches (residual connections)"
    example = "add(conv k=64 f=3 p=1 -> bn | id)"
    is_merge = True

    def infer(self, p, inputs):
        if any(s != inputs[0] for s in inputs):
            raise LayerError(
                f"add needs branches of one shape, but they differ ({_branches(inputs)})",
                "make the branches agree: a projection shortcut (conv k=... f=1 s=...) or the "
                "parameter-free 'shortcut k=... s=...' on the identity branch",
            )
        return Inferred(shape=inputs[0])


class Concat(LayerKind):
    name = "cat"
    aliases = ("concat", "concatenate")
    family = "merge"
    summary = "concatenates its branches along the channels (Inception, DenseNet)"
    example = "cat(conv k=64 f=1 | conv k=96 f=1 -> conv k=128 f=3 p=1)"
    is_merge = True

    def infer(self, p, inputs):
        if all(len(s) == 1 for s in inputs):
            return Inferred(shape=(sum(s[0] for s in inputs),))
        if any(len(s) != 3 or s[1:] != inputs[0][1:] for s in inputs):
            raise LayerError(
                f"cat joins channels, so its branches need one height and width ({_branches(inputs)})",
                "give every branch the same stride and padding (e.g. p=same, or pool ... s=1 p=1)",
            )
        return Inferred(shape=(sum(s[0] for s in inputs), inputs[0][1], inputs[0][2]))


class Multiply(LayerKind):
    name = "mul"
    aliases = ("multiply", "scale")
    family = "merge"
    summary = ("element-wise product of its branches; a C x 1 x 1 branch scales each channel of the "
               "others (squeeze-and-excitation)")
    example = "mul(id | gap -> conv k=4 f=1 -> relu -> conv k=16 f=1 -> sigmoid)"
    is_merge = True

    def infer(self, p, inputs):
        full = max(inputs, key=lambda s: (len(s), s[1] * s[2] if len(s) == 3 else 0))
        for shape in inputs:
            if shape != full and shape != (full[0], 1, 1):
                raise LayerError(
                    f"mul needs branches of one shape, or a {full[0]}x1x1 per-channel scale "
                    f"({_branches(inputs)})",
                    f"give every branch the shape {describe_shape(full)}, or end the scale branch with "
                    f"{full[0]} channels on a 1x1 map (gap -> ... -> conv k={full[0]} f=1)",
                )
        return Inferred(shape=full)


class Identity(LayerKind):
    name = "id"
    aliases = ("identity",)
    family = "merge"
    summary = "passes its input on unchanged: the identity branch of a residual sum"
    example = "add(conv k=64 f=3 p=1 | id)"
    passthrough = True

    def infer(self, p, inputs):
        return Inferred(shape=inputs[0])


class Shortcut(LayerKind):
    name = "shortcut"
    aliases = ("pad_shortcut",)
    family = "merge"
    summary = "parameter-free ResNet shortcut (option A): keep every s-th pixel, zero-pad channels to k"
    example = "add(conv k=32 f=3 s=2 p=1 -> bn -> relu -> conv k=32 f=3 p=1 -> bn | shortcut k=32 s=2)"
    params = (
        Param("k", "int", REQUIRED, "output channels (the extra ones are zeros, split evenly front and back)",
              positional=True, minimum=1),
        Param("s", "int", 1, "subsampling stride", positional=True, minimum=1),
    )

    def infer(self, p, inputs):
        c, h, w = need_map("shortcut", inputs[0])
        if p["k"] < c:
            raise LayerError(f"shortcut k={p['k']} is fewer than the {c} input channels",
                             f"use k={c} or more; to reduce channels use a projection (conv f=1)")
        s = p["s"]
        return Inferred(shape=(p["k"], -(-h // s), -(-w // s)), rf_stride=(s, s))


KINDS = (Add, Concat, Multiply, Identity, Shortcut)
