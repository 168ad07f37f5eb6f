"""Build the PyTorch twin of a cnncli spec, for parity tests and speed comparisons only.

PyTorch is a reference here, never a dependency of cnncli. Parameters are copied by the stable names
of `cnn shapes` (`conv1.weight`, ...), in PyTorch's own layouts, which cnncli shares.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnncli.spec import Spec
from cnncli.spec.graph import INPUT


def _padding(node):
    """(top, bottom, left, right), as resolved during shape inference."""
    window = node.info.window
    return (*window.pad_h, *window.pad_w)


def _module(node) -> nn.Module:
    p, kind = node.params, node.kind.name
    if kind == "conv":
        cin, window = node.in_shapes[0][0], node.info.window
        pt, pb, pl, pr = _padding(node)
        conv = nn.Conv2d(cin, node.shape[0], window.kernel, window.stride, 0, window.dilation, node.info.groups,
                         p["bias"])
        return nn.Sequential(nn.ZeroPad2d((pl, pr, pt, pb)), conv) if (pt, pb, pl, pr) != (0, 0, 0, 0) else conv
    if kind in ("pool", "avgpool", "l2pool"):
        pt, pb, pl, pr = _padding(node)
        assert pt == pb and pl == pr, "asymmetric pooling padding has no PyTorch twin"
        window = node.info.window
        if kind == "pool":
            return nn.MaxPool2d(window.kernel, window.stride, (pt, pl), ceil_mode=p["ceil"])
        if kind == "avgpool":
            return nn.AvgPool2d(window.kernel, window.stride, (pt, pl), ceil_mode=p["ceil"], count_include_pad=True)
        assert (pt, pl) == (0, 0), "PyTorch's LPPool2d has no padding"
        return nn.LPPool2d(2, window.kernel, window.stride, ceil_mode=p["ceil"])
    if kind == "gap":
        return nn.AdaptiveAvgPool2d(1)
    if kind == "gmp":
        return nn.AdaptiveMaxPool2d(1)
    if kind == "bn":
        cls = nn.BatchNorm2d if len(node.shape) == 3 else nn.BatchNorm1d
        return cls(node.shape[0], eps=p["eps"], momentum=p["momentum"], affine=p["affine"])
    if kind == "lrn":
        return nn.LocalResponseNorm(p["size"], p["alpha"], p["beta"], p["k"])
    simple = {"relu": nn.ReLU, "relu6": nn.ReLU6, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "silu": nn.SiLU,
              "hardsigmoid": nn.Hardsigmoid, "hardswish": nn.Hardswish, "gelu": nn.GELU}
    if kind in simple:
        return simple[kind]()
    if kind == "lrelu":
        return nn.LeakyReLU(p["slope"])
    if kind == "elu":
        return nn.ELU(p["alpha"])
    if kind == "softmax":
        return nn.Softmax(dim=1)
    if kind == "dropout":
        return nn.Dropout(p["rate"])
    if kind == "fc":
        import math

        return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(node.in_shapes[0]), p["units"], p["bias"]))
    if kind == "flatten":
        return nn.Flatten()
    return nn.Identity()  # add, mul, cat, shortcut: done in forward


class TorchNet(nn.Module):
    def __init__(self, spec: Spec):
        super().__init__()
        self.spec = spec
        self.layers = nn.ModuleList(_module(node) for node in spec.nodes)

    def forward(self, x):
        outs = []
        for node, layer in zip(self.spec.nodes, self.layers):
            xs = [x if i == INPUT else outs[i] for i in node.inputs]
            kind = node.kind.name
            if kind == "add":
                y = xs[0]
                for other in xs[1:]:
                    y = y + other
            elif kind == "mul":
                y = xs[0]
                for other in xs[1:]:
                    y = y * other
            elif kind == "cat":
                y = torch.cat(xs, dim=1)
            elif kind == "shortcut":
                s, extra = node.params["s"], node.shape[0] - xs[0].shape[1]
                y = F.pad(xs[0][:, :, ::s, ::s], (0, 0, 0, 0, extra // 2, extra - extra // 2))
            else:
                y = layer(xs[0])
            outs.append(y)
        return outs[self.spec.output_node]

    def tensor(self, qualified: str) -> torch.Tensor:
        """The PyTorch tensor behind a cnncli name such as 'conv1.weight' or 'bn1.running_mean'."""
        layer, _, name = qualified.rpartition(".")
        index = next(n.index for n in self.spec.nodes if n.name == layer)
        module = self.layers[index]
        if isinstance(module, nn.Sequential):
            module = module[-1]
        return getattr(module, name)

    @torch.no_grad()
    def load_from(self, model) -> None:
        """Copy a cnncli Model's parameters and buffers."""
        for name, value in {**model.params(), **model.buffers()}.items():
            self.tensor(name).copy_(torch.from_numpy(value.copy()))
