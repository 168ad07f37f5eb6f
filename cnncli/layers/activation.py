"""Element-wise activations, softmax and dropout: shape-preserving, parameter-free."""

from __future__ import annotations

from .base import Inferred, LayerKind, Param


class _ShapeKeeping(LayerKind):
    family = "activation"

    def infer(self, p, inputs):
        return Inferred(shape=inputs[0])


class ReLU(_ShapeKeeping):
    name, summary, example = "relu", "max(0, x)", "relu"


class ReLU6(_ShapeKeeping):
    name, summary, example = "relu6", "min(max(0, x), 6), as in MobileNet v2", "relu6"


class LeakyReLU(_ShapeKeeping):
    name, summary, example = "lrelu", "x if x > 0 else slope * x", "lrelu 0.1"
    aliases = ("leakyrelu", "leaky_relu")
    params = (Param("slope", "float", 0.01, "slope for negative inputs", positional=True),)


class ELU(_ShapeKeeping):
    name, summary, example = "elu", "x if x > 0 else alpha * (exp(x) - 1)", "elu alpha=1.0"
    params = (Param("alpha", "float", 1.0, "saturation value for negative inputs", positional=True),)


class Sigmoid(_ShapeKeeping):
    name, summary, example = "sigmoid", "1 / (1 + exp(-x))", "sigmoid"


class Tanh(_ShapeKeeping):
    name, summary, example = "tanh", "hyperbolic tangent", "tanh"


class SiLU(_ShapeKeeping):
    name, summary, example = "silu", "x * sigmoid(x), also called swish (EfficientNet)", "silu"
    aliases = ("swish",)


class HardSigmoid(_ShapeKeeping):
    name, summary, example = "hardsigmoid", "relu6(x + 3) / 6, a piecewise-linear sigmoid (MobileNet v3)", "hardsigmoid"
    aliases = ("hsigmoid",)


class HardSwish(_ShapeKeeping):
    name, summary, example = "hardswish", "x * relu6(x + 3) / 6 (MobileNet v3)", "hardswish"
    aliases = ("hswish",)


class GELU(_ShapeKeeping):
    name, summary, example = "gelu", "x * Phi(x), Phi the standard normal CDF (exact, with erf)", "gelu"


class Softmax(_ShapeKeeping):
    name, summary, example = "softmax", "exp(x) / sum(exp(x)) over channels; before a loss it is folded into it", "softmax"


class Dropout(_ShapeKeeping):
    name, summary, example = "dropout", "zeroes a fraction of activations in training, scaling the rest (inverted)", "dropout 0.5"
    params = (Param("rate", "float", 0.5, "fraction of activations dropped", positional=True,
                    minimum=0.0, maximum=0.999),)


KINDS = (ReLU, ReLU6, LeakyReLU, ELU, Sigmoid, Tanh, SiLU, HardSigmoid, HardSwish, GELU, Softmax, Dropout)
