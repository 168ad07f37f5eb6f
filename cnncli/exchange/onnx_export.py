"""`cnn export ... OUT.onnx`: the network as an ONNX graph, built with the onnx package's own helpers.

The graph takes `input`, float32 [N, C, H, W] with a dynamic batch, pixels scaled to [0, 1] as
`cnn predict` reads images; the stored normalisation ((x - mean) / std per channel) is its first
step. It gives `logits` and `probabilities` for a classifier, `output` otherwise. Tensors are named
after the layers of `cnn shapes` (`conv1`, `stage1.basic2.bn1`), weights as in the checkpoint
(`conv1.weight`, `bn1.running_mean`). Feature maps are NCHW, flat vectors [N, F].
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..spec.graph import INPUT, Node
from .common import Source, need, write_bytes

OPSET = 20  # LpPool's ceil_mode needs 18, Gelu 20; onnxruntime runs every operator used here at 20
PRODUCER = "cnncli"


def window(node: Node) -> tuple[list[int], list[int], list[int], list[int]]:
    """kernel, strides, ONNX pads [top, left, bottom, right] and dilations of a conv or pooling node,
    from the geometry shape inference resolved on the node."""
    w = node.info.window
    return list(w.kernel), list(w.stride), [w.pad_h[0], w.pad_w[0], w.pad_h[1], w.pad_w[1]], list(w.dilation)


class GraphBuilder:
    """Collects nodes and initialisers; one method per layer kind emits that layer's operators."""

    def __init__(self, model):
        self.onnx = need("onnx", "ONNX export")
        self.model = model
        self.nodes: list = []
        self.initializers: list = []
        self.tensor: dict[int, str] = {}
        self.fixed_bn: list[str] = []  # bn affine=false layers, so that cnn import restores them

    # -- building blocks

    def const(self, name: str, value, dtype=np.float32) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.array(value, dtype=dtype), name))
        return name

    def weight(self, node: Node, key: str) -> str:
        return self.const(f"{node.name}.{key}", self.model.param(f"{node.name}.{key}"))

    def op(self, op_type: str, inputs: list[str], output: str, name: str | None = None, **attrs) -> str:
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [output], name=name or output, **attrs))
        return output

    # -- layers

    def emit(self, node: Node) -> None:
        emitter = getattr(self, "layer_" + node.kind.name, None)
        if emitter is None:
            raise UserError(f"{node.kind.name} has no ONNX form in this cnncli, so the network cannot be exported",
                            "remove or replace the layer before exporting", node.where, node.text, node.name)
        xs = [self.tensor[i] for i in node.inputs]
        self.tensor[node.index] = emitter(node, xs, node.name)

    def layer_conv(self, node, xs, out):
        kernel, strides, pads, dilations = window(node)
        groups = node.info.groups
        inputs = [xs[0], self.weight(node, "weight")] + ([self.weight(node, "bias")] if node.params["bias"] else [])
        return self.op("Conv", inputs, out, kernel_shape=kernel, strides=strides, pads=pads, dilations=dilations,
                       group=groups)

    def _pool(self, op_type, node, xs, out, **extra):
        kernel, strides, pads, _ = window(node)
        return self.op(op_type, xs, out, kernel_shape=kernel, strides=strides, pads=pads,
                       ceil_mode=int(bool(node.params["ceil"])), **extra)

    def layer_pool(self, node, xs, out):
        return self._pool("MaxPool", node, xs, out)

    def layer_avgpool(self, node, xs, out):
        return self._pool("AveragePool", node, xs, out, count_include_pad=1)

    def layer_l2pool(self, node, xs, out):
        return self._pool("LpPool", node, xs, out, p=2)

    def layer_gap(self, node, xs, out):
        return self.op("GlobalAveragePool", xs, out)

    def layer_gmp(self, node, xs, out):
        return self.op("GlobalMaxPool", xs, out)

    def layer_bn(self, node, xs, out):
        c = node.shape[0]
        if node.params["affine"]:
            scale, shift = self.weight(node, "weight"), self.weight(node, "bias")
        else:  # no learned scale and shift: ONNX still needs them, as constants (named in the metadata)
            self.fixed_bn.append(node.name)
            scale, shift = self.const(f"{node.name}.ones", np.ones(c)), self.const(f"{node.name}.zeros", np.zeros(c))
        inputs = [xs[0], scale, shift, self.weight(node, "running_mean"), self.weight(node, "running_var")]
        return self.op("BatchNormalization", inputs, out, epsilon=float(node.params["eps"]),
                       momentum=1.0 - float(node.params["momentum"]))

    def layer_lrn(self, node, xs, out):
        p = node.params
        size = p["size"]
        if size % 2:
            return self.op("LRN", xs, out, size=size, alpha=float(p["alpha"]), beta=float(p["beta"]),
                           bias=float(p["k"]))
        # ONNX's LRN centres an even window one channel later than PyTorch (and cnncli) do, so an even
        # window is written out: the sum of squares over [c - size/2, c + size/2 - 1] as a 1x1 conv.
        c = node.shape[0]
        band = np.zeros((c, c, 1, 1))
        for i in range(c):
            band[i, max(i - size // 2, 0): min(i + (size - 1) // 2, c - 1) + 1] = 1
        square = self.op("Mul", [xs[0], xs[0]], f"{out}/square")
        total = self.op("Conv", [square, self.const(f"{out}/window", band)], f"{out}/window_sum", kernel_shape=[1, 1])
        scaled = self.op("Mul", [total, self.const(f"{out}/alpha", p["alpha"] / size)], f"{out}/scaled")
        shifted = self.op("Add", [scaled, self.const(f"{out}/k", p["k"])], f"{out}/shifted")
        power = self.op("Pow", [shifted, self.const(f"{out}/beta", p["beta"])], f"{out}/power")
        return self.op("Div", [xs[0], power], out)

    def layer_relu(self, node, xs, out):
        return self.op("Relu", xs, out)

    def layer_relu6(self, node, xs, out):
        low, high = self.const(f"{out}/min", 0.0), self.const(f"{out}/max", 6.0)
        return self.op("Clip", [xs[0], low, high], out)

    def layer_lrelu(self, node, xs, out):
        return self.op("LeakyRelu", xs, out, alpha=float(node.params["slope"]))

    def layer_elu(self, node, xs, out):
        return self.op("Elu", xs, out, alpha=float(node.params["alpha"]))

    def layer_sigmoid(self, node, xs, out):
        return self.op("Sigmoid", xs, out)

    def layer_tanh(self, node, xs, out):
        return self.op("Tanh", xs, out)

    def layer_silu(self, node, xs, out):
        return self.op("Mul", [xs[0], self.op("Sigmoid", xs, f"{out}/sigmoid")], out)

    def layer_hardsigmoid(self, node, xs, out):
        return self.op("HardSigmoid", xs, out, alpha=1 / 6, beta=0.5)

    def layer_hardswish(self, node, xs, out):
        return self.op("HardSwish", xs, out)

    def layer_gelu(self, node, xs, out):
        return self.op("Gelu", xs, out, approximate="none")

    def layer_softmax(self, node, xs, out):
        return self.op("Softmax", xs, out, axis=1)

    def layer_dropout(self, node, xs, out):
        # Without training_mode ONNX's Dropout is the identity, as cnncli's is in evaluation.
        return self.op("Dropout", [xs[0], self.const(f"{out}/ratio", node.params["rate"])], out)

    def layer_flatten(self, node, xs, out):
        return self.op("Flatten", xs, out, axis=1)

    def layer_fc(self, node, xs, out):
        x = xs[0]
        if len(node.in_shapes[0]) == 3:
            x = self.op("Flatten", [x], f"{out}/flatten", axis=1)
        inputs = [x, self.weight(node, "weight")] + ([self.weight(node, "bias")] if node.params["bias"] else [])
        return self.op("Gemm", inputs, out, transB=1)

    def layer_add(self, node, xs, out):
        return self.op("Add" if len(xs) == 2 else "Sum", xs, out)

    def layer_mul(self, node, xs, out):
        """Broadcasting does the per-channel scale: [N, C, 1, 1] times [N, C, H, W]."""
        y = xs[0]
        for i, x in enumerate(xs[1:], 1):
            y = self.op("Mul", [y, x], out if i == len(xs) - 1 else f"{out}/{i}")
        return y

    def layer_cat(self, node, xs, out):
        return self.op("Concat", xs, out, axis=1)

    def layer_shortcut(self, node, xs, out):
        """Option A: every s-th pixel (a strided Slice), the channels zero-padded front and back."""
        x = xs[0]
        s = node.params["s"]
        c_in, c_out = node.in_shapes[0][0], node.shape[0]
        front = (c_out - c_in) // 2
        if s > 1:
            x = self.op("Slice", [x, self.const(f"{out}/starts", [0, 0], np.int64),
                                  self.const(f"{out}/ends", [np.iinfo(np.int64).max] * 2, np.int64),
                                  self.const(f"{out}/axes", [2, 3], np.int64),
                                  self.const(f"{out}/steps", [s, s], np.int64)],
                        out if c_out == c_in else f"{out}/subsample")
        if c_out == c_in:
            return x if s > 1 else self.op("Identity", [x], out)
        pads = [0, front, 0, 0, 0, c_out - c_in - front, 0, 0]
        return self.op("Pad", [x, self.const(f"{out}/pads", pads, np.int64)], out, mode="constant")


def _needed(spec, outputs: list[int]) -> set[int]:
    """The nodes the wanted outputs depend on (a final softmax folded into `probabilities` is not)."""
    seen, stack = set(), [i for i in outputs if i != INPUT]
    while stack:
        i = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        stack += [j for j in spec.nodes[i].inputs if j != INPUT]
    return seen


def build(source: Source):
    """The ONNX ModelProto for a model (checked with the onnx checker's full check)."""
    onnx = need("onnx", "ONNX export")
    helper, TensorProto = onnx.helper, onnx.TensorProto
    model = source.model
    spec = model.spec
    g = GraphBuilder(model)
    c, h, w = spec.input
    x = "input"
    if source.normalisation is not None:
        mean = np.asarray(source.normalisation["mean"], np.float64).reshape(1, c, 1, 1)
        std = np.asarray(source.normalisation["std"], np.float64).reshape(1, c, 1, 1)
        x = g.op("Sub", [x, g.const("normalisation.mean", mean)], "input/centred")
        x = g.op("Div", [x, g.const("normalisation.std", std)], "input/normalised")
    g.tensor[INPUT] = x
    classifier = bool(spec.classes)
    last = model.logits_node if classifier else spec.output_node
    for node in spec.nodes:
        if node.index in _needed(spec, [last]):
            g.emit(node)
    result = g.tensor[last]
    shape = spec.input if last == INPUT else spec.nodes[last].shape
    if len(shape) == 3 and shape[1:] == (1, 1):  # the model gives (N, C) for a Cx1x1 map, as cnncli's does
        shape = (shape[0],)
        result = g.op("Flatten", [result], "logits" if classifier else "output", axis=1)
    outputs = []
    name = "logits" if classifier else "output"
    if result != name:
        _rename(g.nodes, result, name)
    outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", *shape]))
    if classifier:
        g.op("Softmax", ["logits"], "probabilities", axis=1)
        outputs.append(helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", *shape]))
    graph = helper.make_graph(g.nodes, spec.name, [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                  ["N", c, h, w])],
                              outputs, g.initializers)
    proto = helper.make_model(graph, producer_name=PRODUCER, opset_imports=[helper.make_opsetid("", OPSET)])
    proto.ir_version = min(proto.ir_version, 10)  # readable by onnxruntime releases of the last years
    task = "classification" if classifier else "regression" if spec.output else "none"
    props = {"cnncli.name": spec.name, "cnncli.origin": source.origin, "cnncli.task": task}
    if g.fixed_bn:
        props["cnncli.fixed_bn"] = json.dumps(g.fixed_bn)
    if source.class_names:
        props["cnncli.class_names"] = json.dumps(source.class_names)
    helper.set_model_props(proto, props)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _rename(nodes, old: str, new: str) -> None:
    for n in nodes:
        for seq in (n.input, n.output):
            for i, value in enumerate(seq):
                if value == old:
                    seq[i] = new


def write_onnx(source: Source, out: Path) -> str:
    proto = build(source)
    data = proto.SerializeToString()
    write_bytes(out, data)
    spec = source.model.spec
    outputs = ", ".join(o.name for o in proto.graph.output)
    return (f"wrote {out}: {spec.name}, {len(proto.graph.node)} ONNX nodes (opset {OPSET}), "
            f"{spec.total_params:,} parameters, {len(data) / 2**20:.1f} MiB; input 'input' "
            f"[N, {', '.join(map(str, spec.input))}], outputs {outputs}")


__all__ = ["build", "write_onnx", "window"]
