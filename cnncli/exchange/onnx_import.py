"""`cnn import MODEL.onnx OUT.yaml`: an ONNX CNN as a readable spec and a checkpoint beside it.

The graph is read with the onnx package (no external data files, every tensor's size checked against
the bytes it really has, so a damaged or hostile file ends in one error with bounded memory). Each
ONNX operator becomes the spec layer of the same meaning; a Pad before a Conv or AveragePool becomes
its padding, Flatten/Reshape before Gemm/MatMul disappears into `fc` (which flattens by itself), a bias
added after MatMul becomes the fc's bias, and `(x - mean) / std` on the input becomes the checkpoint's
normalisation. Branches are written as `add(...)` and `cat(...)`: a merge's branches start at the
tensor that dominates them. What has no equal in the spec language is refused, naming the node.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import UserError, printable
from ..layers.window import same_padding
from .common import need

MAX_BYTES = 2**31  # protobuf's own limit for one message
MAX_NODES = 100_000
FLOAT_TYPES = {1: np.float32, 10: np.float16, 11: np.float64}
INT_TYPES = {6: np.int32, 7: np.int64}
PLAIN = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "HardSwish": "hardswish", "GlobalAveragePool": "gap",
         "GlobalMaxPool": "gmp"}  # operators that are one parameter-free layer
POSITIONAL = {("fc", "units"), ("dropout", "rate"), ("pool", "f"), ("avgpool", "f"), ("l2pool", "f"), ("lrelu", "slope"),
              ("lrn", "size")}  # values written without their names, as people do


@dataclass(eq=False)
class Tensor:
    """A value flowing through the converted network: its shape (C, H, W) or (F,) per sample and the
    layer that makes it (None: the network input)."""

    shape: tuple[int, ...]
    layer: "Layer | None" = None
    pads: tuple[int, int, int, int] | None = None  # a zero Pad not yet merged into the next layer: t, l, b, r
    source: "Tensor | None" = None  # what a pending Pad pads


@dataclass(eq=False)
class Layer:
    kind: str
    args: dict[str, str]
    inputs: list[Tensor]
    weights: dict[str, np.ndarray]
    node: str  # the ONNX node it came from, for messages
    output: Tensor | None = None

    def text(self) -> str:
        """As a person writes it: `fc 10`, `dropout 0.3`, `conv k=64 f=3 p=1`."""
        return " ".join([self.kind] + [v if (self.kind, k) in POSITIONAL else f"{k}={v}" for k, v in self.args.items()])


@dataclass
class Merge:
    layer: Layer
    branches: list[list[Any]]


def _fmt(value: float) -> str:
    """The shortest text that reads back as the same float32: 0.1, not 0.10000000149011612."""
    return np.format_float_positional(np.float32(value), unique=True, trim="-")


def _pair(a: int, b: int) -> str:
    return str(a) if a == b else f"{a}x{b}"


class Converter:
    def __init__(self, proto, file: Path):
        self.onnx = need("onnx", "ONNX import")
        self.proto = proto
        self.graph = proto.graph
        self.file = file
        self.consts: dict[str, np.ndarray] = {}
        self.values: dict[str, Tensor] = {}
        self.layers: list[Layer] = []
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        props = {p.key: p.value for p in proto.metadata_props}
        try:
            fixed = json.loads(props.get("cnncli.fixed_bn", "[]"))
        except json.JSONDecodeError:
            fixed = []
        self.fixed_bn = set(fixed) if isinstance(fixed, list) and all(isinstance(n, str) for n in fixed) else set()
        opsets = {o.domain: o.version for o in proto.opset_import}
        self.opset = opsets.get("", opsets.get("ai.onnx", 1))

    # -- errors and reading tensors

    def fail(self, node, message: str, hint: str | None = None) -> UserError:
        where = f"{self.file}: node '{printable(node.name or '(unnamed)')}' ({printable(node.op_type)})"
        return UserError(f"{where}: {message}", hint)

    def array(self, tensor, what: str) -> np.ndarray:
        """A TensorProto as numpy, refusing external data and sizes the file does not back."""
        name = printable(tensor.name or what)
        if tensor.data_location == 1 or tensor.external_data:
            raise UserError(f"{self.file}: tensor '{name}' is stored in an external file, which cnn import does "
                            "not read", "save the model with its weights inside the .onnx file")
        dtype = FLOAT_TYPES.get(tensor.data_type) or INT_TYPES.get(tensor.data_type)
        if dtype is None:
            raise UserError(f"{self.file}: tensor '{name}' has data type {tensor.data_type}, not a float or integer "
                            "type cnn import reads", None)
        count = 1
        for d in tensor.dims:
            if d < 0:
                raise UserError(f"{self.file}: tensor '{name}' has a negative dimension {d}", None)
            count *= d
        if tensor.raw_data:
            have = len(tensor.raw_data) // np.dtype(dtype).itemsize
        else:
            have = {1: len(tensor.float_data), 11: len(tensor.double_data), 7: len(tensor.int64_data)}.get(
                tensor.data_type, len(tensor.int32_data))
        if have != count:
            raise UserError(f"{self.file}: tensor '{name}' claims {count:,} values but holds {have:,}",
                            "the file is damaged or truncated")
        from onnx import numpy_helper

        return numpy_helper.to_array(tensor)

    # -- reading the graph

    def run(self) -> Tensor:
        graph = self.graph
        if len(graph.node) > MAX_NODES:
            raise UserError(f"{self.file}: {len(graph.node):,} nodes is more than cnn import takes ({MAX_NODES:,})", None)
        for init in graph.initializer:
            self.consts[init.name] = self.array(init, "initializer")
        inputs = [i for i in graph.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise UserError(f"{self.file}: the graph has {len(inputs)} inputs; cnn import takes a network with one "
                            "image input", None)
        self.input_name = inputs[0].name
        self.values[self.input_name] = Tensor(self._input_shape(inputs[0]))
        self.output_name, self.task = self._choose_output()
        order = self._order()
        self.readers = self._readers(order)
        for node in order:
            handler = self.handler(node.op_type)
            if node.domain not in ("", "ai.onnx") or handler is None:
                raise self.fail(node, f"operator {printable(node.op_type)} has no counterpart in cnncli's spec language",
                                "supported: Conv, BatchNormalization, Relu, LeakyRelu, Elu, Sigmoid, Tanh, Clip, "
                                "HardSigmoid, HardSwish, Gelu, Mul, "
                                "MaxPool, AveragePool, LpPool, GlobalAveragePool, GlobalMaxPool, LRN, Add, Sum, "
                                "Concat, Flatten, Reshape, Gemm, MatMul, Dropout, Softmax, Pad, Identity")
            handler(node)
        out = self.values.get(self.output_name)
        if out is None or out.pads is not None:
            raise UserError(f"{self.file}: the output '{printable(self.output_name)}' is not computed by a layer", None)
        return out

    def handler(self, op_type: str):
        if op_type in PLAIN:
            return lambda node: self._activation(node, PLAIN[op_type])
        if op_type in ("Sub", "Div"):
            return lambda node: self._normalise(node, op_type)
        return getattr(self, "op_" + op_type, None)

    def _input_shape(self, value) -> tuple[int, int, int]:
        dims = value.type.tensor_type.shape.dim
        fixed = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        if len(fixed) != 4 or None in fixed[1:] or min(fixed[1:]) < 1:
            shown = ", ".join("?" if d is None else str(d) for d in fixed)
            raise UserError(f"{self.file}: the input '{printable(value.name)}' is [{shown}]; cnn import needs images "
                            "[N, C, H, W] with fixed C, H and W", "export the model with a fixed image size")
        return tuple(fixed[1:])  # type: ignore[return-value]

    def _choose_output(self) -> tuple[str, str]:
        """The tensor the spec ends with: the logits when the graph also gives their softmax."""
        outputs = [o.name for o in self.graph.output]
        if not outputs:
            raise UserError(f"{self.file}: the graph has no outputs", None)
        producers = {o: n for n in self.graph.node for o in n.output}
        props = {p.key: p.value for p in self.proto.metadata_props}
        task = props.get("cnncli.task", "classification")
        for name in outputs:
            node = producers.get(name)
            if node is not None and node.op_type == "Softmax" and node.input[0] in outputs:
                return node.input[0], "classification"
        return outputs[0], task

    def _order(self) -> list:
        """The nodes the output depends on, in an order where every input is ready (Kahn's algorithm,
        in file order where free), so a cycle or a missing input is found, not followed."""
        import heapq

        nodes = list(self.graph.node)
        producer: dict[str, int] = {}
        for i, node in enumerate(nodes):
            for o in node.output:
                if o:
                    producer[o] = i
        needed: set[int] = set()
        stack = [self.output_name]
        while stack:
            name = stack.pop()
            i = producer.get(name)
            if i is None:
                if name and name not in self.consts and name != self.input_name:
                    raise UserError(f"{self.file}: tensor '{printable(name)}' is used but nothing computes it",
                                    "the file is damaged")
            elif i not in needed:
                needed.add(i)
                stack += list(nodes[i].input)
        waiting = {i: {producer[x] for x in nodes[i].input if x in producer} for i in needed}
        readers: dict[int, list[int]] = {}
        for i, deps in waiting.items():
            for d in deps:
                readers.setdefault(d, []).append(i)
        ready = [i for i, deps in waiting.items() if not deps]
        heapq.heapify(ready)
        order = []
        while ready:
            i = heapq.heappop(ready)
            order.append(nodes[i])
            for r in readers.get(i, []):
                waiting[r].discard(i)
                if not waiting[r]:
                    heapq.heappush(ready, r)
        if len(order) != len(needed):
            stuck = nodes[min(i for i, deps in waiting.items() if deps)]
            raise self.fail(stuck, "is part of a cycle: the graph feeds an output back into itself",
                            "an ONNX graph must be acyclic; the file is damaged")
        return order

    def _readers(self, order) -> dict[str, int]:
        count: dict[str, int] = {}
        for node in order:
            for i in node.input:
                count[i] = count.get(i, 0) + 1
        count[self.output_name] = count.get(self.output_name, 0) + 1
        return count

    # -- helpers for the handlers

    def attrs(self, node) -> dict[str, Any]:
        from onnx import helper

        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def tensor(self, node, index: int = 0) -> Tensor:
        name = node.input[index] if index < len(node.input) else ""
        value = self.values.get(name)
        if value is None:
            raise self.fail(node, f"input {index + 1} must be a feature map, not a constant")
        if value.pads is not None and node.op_type not in ("Conv", "AveragePool"):
            raise self.fail(node, "follows a Pad; cnncli pads only inside a conv or average pooling",
                            "only Pad -> Conv and Pad -> AveragePool can be imported")
        return value

    def const(self, node, index: int, what: str, required: bool = True) -> np.ndarray | None:
        name = node.input[index] if index < len(node.input) else ""
        if not name:
            if required:
                raise self.fail(node, f"has no {what}")
            return None
        if name not in self.consts:
            raise self.fail(node, f"its {what} must be a constant (an initializer), but is computed")
        return self.consts[name]

    def add(self, node, kind: str, args: dict[str, str], inputs: list[Tensor], weights=None) -> Tensor:
        """A spec layer for `node`; its output shape by the layer's own shape rules."""
        from ..errors import LayerError
        from ..layers import lookup

        layer = Layer(kind, args, inputs, weights or {}, node.name or node.op_type)
        spec_kind = lookup(kind)
        params = {}
        for p in spec_kind.all_params():
            raw = args.get(p.name, p.default)
            params[p.name] = None if raw is None or p.name == "name" else p.parse(raw)
        try:
            shape = spec_kind().infer(params, [t.shape for t in inputs]).shape
        except LayerError as exc:
            raise self.fail(node, exc.message, exc.hint) from None
        layer.output = Tensor(tuple(shape), layer)
        self.layers.append(layer)
        self.values[node.output[0]] = layer.output
        return layer.output

    # -- operators

    def op_Identity(self, node):
        name = node.input[0]
        if name in self.values:
            self.values[node.output[0]] = self.values[name]
        elif name in self.consts:
            self.consts[node.output[0]] = self.consts[name]
        else:
            raise self.fail(node, "reads a tensor nothing computes")

    def op_Constant(self, node):
        a = {attr.name: attr for attr in node.attribute}
        if "value" not in a:
            raise self.fail(node, "only Constant nodes with a tensor value are read")
        self.consts[node.output[0]] = self.array(a["value"].t, node.output[0])

    def _normalise(self, node, op: str):
        """(input - mean) / std (or * 1/std) on the network input is the checkpoint's normalisation."""
        x = self.values.get(node.input[0])
        c = self.values[self.input_name].shape[0]
        value = self.consts.get(node.input[1]) if len(node.input) > 1 else None
        if x is None or x.layer is not None or x.pads is not None or value is None or value.size not in (1, c) \
                or (op == "Sub" and self.std is not None) or self.readers.get(node.input[0], 0) != 1:
            raise self.fail(node, f"{op} is read only as the input's normalisation, (input - mean) / std with "
                            "constant per-channel mean and std", None)
        v = np.broadcast_to(np.asarray(value, np.float64).reshape(-1), (c,)).copy()
        mean = self.mean if self.mean is not None else np.zeros(c)
        std = self.std if self.std is not None else np.ones(c)
        if op == "Sub":
            mean = mean + v * std
        elif op == "Div":
            std = std * v
        else:
            std = std / v
        if not np.all(np.isfinite(std)) or np.any(std <= 0):
            raise self.fail(node, "scales the input by zero, a negative or a non-finite number", None)
        self.mean, self.std = mean, std
        self.values[node.output[0]] = Tensor(x.shape)

    def op_Pad(self, node):
        a = self.attrs(node)
        mode = a.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        pads = a.get("pads") if self.opset < 11 else self.const(node, 1, "pads")
        value = a.get("value", 0.0) if self.opset < 11 else self.const(node, 2, "constant value", required=False)
        if len(node.input) > 3 and node.input[3]:
            raise self.fail(node, "Pad with axes is not read")
        x = self.tensor(node)
        pads = [int(p) for p in np.asarray(pads).reshape(-1)]
        if mode != "constant" or (value is not None and np.any(np.asarray(value) != 0)):
            raise self.fail(node, f"pads with {mode} {'' if value is None else np.asarray(value).reshape(-1)[:1]}; "
                            "cnncli pads with zeros", None)
        if len(x.shape) == 3 and len(pads) == 8 and pads[1] + pads[5] > 0 and pads[:1] + pads[2:5] + pads[6:] == [0] * 6:
            return self._channel_pad(node, x, pads[1], pads[5])
        if len(x.shape) != 3 or len(pads) != 8 or any(pads[i] != 0 for i in (0, 1, 4, 5)) or min(pads) < 0:
            raise self.fail(node, "pads something other than the height and width of a feature map", None)
        t, l, b, r = pads[2], pads[3], pads[6], pads[7]
        c, h, w = x.shape
        self.values[node.output[0]] = Tensor((c, h + t + b, w + l + r), None, (t, l, b, r), x)

    def _channel_pad(self, node, x: Tensor, front: int, back: int):
        """Zero channels front and back: the channel half of option A's `shortcut k=... s=...`."""
        if front != (front + back) // 2 or min(front, back) < 0:
            raise self.fail(node, f"pads {front} channels in front and {back} behind; cnncli's shortcut puts the "
                            "odd one behind", None)
        k = x.shape[0] + front + back
        layer = x.layer
        if layer is not None and layer.kind == "shortcut" and layer.args["k"] == str(x.shape[0]) \
                and self.readers.get(node.input[0], 0) == 1:
            layer.args["k"] = str(k)
            layer.output.shape = (k, *x.shape[1:])
            self.values[node.output[0]] = layer.output
            return
        self.add(node, "shortcut", {"k": str(k)}, [x])

    def op_Slice(self, node):
        """x[:, :, ::s, ::s], the subsampling of option A's shortcut."""
        x = self.tensor(node)
        if self.opset < 10:
            raise self.fail(node, "Slice before opset 10 has no steps; it cannot be a shortcut")
        starts, ends = (np.asarray(self.const(node, i, what)).reshape(-1) for i, what in ((1, "starts"), (2, "ends")))
        axes = self.const(node, 3, "axes", required=False)
        steps = self.const(node, 4, "steps", required=False)
        axes = list(range(len(starts))) if axes is None else [int(a) % 4 for a in np.asarray(axes).reshape(-1)]
        steps = [1] * len(starts) if steps is None else [int(v) for v in np.asarray(steps).reshape(-1)]
        dims = {1: None, 2: x.shape[1] if len(x.shape) == 3 else 0, 3: x.shape[2] if len(x.shape) == 3 else 0}
        ok = len(x.shape) == 3 and sorted(axes) == [2, 3] and len(set(steps)) == 1 and steps[0] >= 1 and \
            all(int(b) == 0 and int(e) >= dims[a] for a, b, e in zip(axes, starts, ends))
        if not ok:
            raise self.fail(node, "slices something other than every s-th row and column (a ResNet shortcut)", None)
        self.add(node, "shortcut", {"k": str(x.shape[0]), "s": str(steps[0])}, [x])

    def _window_args(self, node, x: Tensor, kernel, allow_dilation: bool) -> tuple[dict[str, str], Tensor]:
        """f, s, p (and d) from an ONNX window, merging a pending Pad; asymmetric padding must be 'same'."""
        a = self.attrs(node)
        if len(kernel) != 2:
            raise self.fail(node, f"has a {len(kernel)}-D window; cnncli's layers are 2-D")
        strides = list(a.get("strides", [1, 1]))
        dil = list(a.get("dilations", [1, 1]))
        if len(strides) != 2 or len(dil) != 2 or min(strides + dil + list(kernel)) < 1:
            raise self.fail(node, f"has a window of kernel {list(kernel)}, strides {strides}, dilations {dil}; "
                            "each must be two numbers of at least 1")
        if not allow_dilation and dil != [1, 1]:
            raise self.fail(node, f"pools with dilation {dil}; cnncli's pooling has none")
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        source = x.source if x.pads is not None else x
        extra = x.pads or (0, 0, 0, 0)
        c, h, w = source.shape
        eff = [d * (k - 1) + 1 for d, k in zip(dil, kernel)]
        same = [*zip(*[same_padding(n, k, s) for n, k, s in zip((h, w), eff, strides)])]  # ((t, l), (b, r))
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            pads = [*same[0], *same[1]] if auto == "SAME_UPPER" else [*same[1], *same[0]]
        elif auto == "VALID":
            pads = [0, 0, 0, 0]
        else:
            pads = list(a.get("pads", [0, 0, 0, 0]))
        pads = [p + e for p, e in zip(pads, extra)]
        top, left, bottom, right = pads
        args = {"f": _pair(*kernel)}
        if strides != kernel or node.op_type == "Conv":
            if strides != [1, 1] or node.op_type != "Conv":
                args["s"] = _pair(*strides)
        if top == bottom and left == right:
            if top or left:
                args["p"] = _pair(top, left)
        elif pads == [*same[0], *same[1]]:
            args["p"] = "same"
        else:
            raise self.fail(node, f"pads asymmetrically (top {top}, left {left}, bottom {bottom}, right {right}), "
                            "which is neither symmetric nor TensorFlow's 'same'", None)
        if dil != [1, 1]:
            args["d"] = _pair(*dil)
        return args, source

    def op_Conv(self, node):
        x = self.tensor(node)
        weight = self.const(node, 1, "weight")
        bias = self.const(node, 2, "bias", required=False)
        a = self.attrs(node)
        if weight.ndim != 4:
            raise self.fail(node, f"has a {weight.ndim - 2}-D kernel; cnncli's conv is 2-D")
        k, cg, fh, fw = weight.shape
        kernel = list(a.get("kernel_shape", [fh, fw]))
        if kernel != [fh, fw]:
            raise self.fail(node, f"kernel_shape {kernel} does not match its weight {list(weight.shape)}")
        args, source = self._window_args(node, x, kernel, True)
        args = {"k": str(k), **args}
        groups = int(a.get("group", 1))
        c = source.shape[0]
        if cg * groups != c:
            raise self.fail(node, f"its weight {list(weight.shape)} with group={groups} does not fit {c} input channels")
        if groups != 1:
            args["g"] = "dw" if groups == c and k == c else str(groups)
            if args["g"] == "dw":
                del args["k"]
                args = {"k": str(k), **args}
        weights = {"weight": weight}
        if bias is not None:
            if bias.size != k:
                raise self.fail(node, f"has {bias.size} biases for {k} filters")
            weights["bias"] = bias.reshape(k)
        else:
            args["bias"] = "false"
        self.add(node, "conv", args, [source], weights)

    def _pool(self, node, kind: str, **checks):
        x = self.tensor(node)
        a = self.attrs(node)
        if len(node.output) > 1 and node.output[1]:
            raise self.fail(node, "also gives the arg-max indices, which cnncli does not")
        kernel = list(a.get("kernel_shape", []))
        args, source = self._window_args(node, x, kernel, False)
        if x.pads is not None and kind != "avgpool":
            raise self.fail(node, "follows a Pad; only a conv or average pooling takes one", None)
        if a.get("ceil_mode", 0):
            args["ceil"] = "true"
        self.add(node, kind, args, [source])

    def op_MaxPool(self, node):
        if self.attrs(node).get("storage_order", 0):
            raise self.fail(node, "uses storage_order=1")
        self._pool(node, "pool")

    def op_AveragePool(self, node):
        a = self.attrs(node)
        if not a.get("count_include_pad", 0) and any(a.get("pads", [])):
            raise self.fail(node, "averages padded windows without counting the padding (count_include_pad=0); "
                            "cnncli's avgpool counts it, as PyTorch's default does", None)
        self._pool(node, "avgpool")

    def op_LpPool(self, node):
        if self.attrs(node).get("p", 2) != 2:
            raise self.fail(node, f"is an L{self.attrs(node).get('p')} pool; cnncli has L2 pooling (p=2)")
        self._pool(node, "l2pool")

    def op_BatchNormalization(self, node):
        x = self.tensor(node)
        a = self.attrs(node)
        if a.get("training_mode", 0) or (len(node.output) > 1 and any(node.output[1:])):
            raise self.fail(node, "is in training mode; export the model for inference")
        c = x.shape[0]
        arrays = [self.const(node, i, what) for i, what in
                  ((1, "scale"), (2, "bias"), (3, "running mean"), (4, "running variance"))]
        if any(v.size != c for v in arrays):
            raise self.fail(node, f"has statistics of the wrong size for {c} channels")
        args = {}
        eps = float(a.get("epsilon", 1e-5))
        if abs(eps - 1e-5) > 1e-12:
            args["eps"] = _fmt(eps)
        momentum = round(1.0 - float(a.get("momentum", 0.9)), 6)
        if momentum != 0.1 and 0 <= momentum <= 1:
            args["momentum"] = _fmt(momentum)
        weights = dict(zip(("weight", "bias", "running_mean", "running_var"), (v.reshape(c) for v in arrays)))
        if node.name in self.fixed_bn and np.all(arrays[0] == 1) and np.all(arrays[1] == 0):
            args["affine"] = "false"  # written by cnn export from a bn without learned scale and shift
            del weights["weight"], weights["bias"]
        self.add(node, "bn", args, [x], weights)

    def op_LRN(self, node):
        a = self.attrs(node)
        size = int(a["size"])
        if size % 2 == 0:
            raise self.fail(node, f"has an even window (size {size}), which ONNX centres differently from cnncli "
                            "(and PyTorch)", None)
        args = {"size": str(size)}
        for key, onnx_key, default in (("alpha", "alpha", 1e-4), ("beta", "beta", 0.75), ("k", "bias", 1.0)):
            value = float(a.get(onnx_key, default))
            if abs(value - default) > 1e-9 * max(1, abs(default)):
                args[key] = _fmt(value)
        self.add(node, "lrn", args, [self.tensor(node)])

    def _activation(self, node, kind, args=None):
        self.add(node, kind, args or {}, [self.tensor(node)])

    def op_LeakyRelu(self, node):
        self._activation(node, "lrelu", {"slope": _fmt(self.attrs(node).get("alpha", 0.01))})

    def op_Elu(self, node):
        alpha = float(self.attrs(node).get("alpha", 1.0))
        self._activation(node, "elu", {"alpha": _fmt(alpha)} if alpha != 1.0 else {})

    def op_Clip(self, node):
        a = self.attrs(node)
        if self.opset < 11:
            low, high = a.get("min", -np.inf), a.get("max", np.inf)
        else:
            low = self.const(node, 1, "minimum", required=False)
            high = self.const(node, 2, "maximum", required=False)
            low = -np.inf if low is None else float(np.asarray(low).reshape(-1)[0])
            high = np.inf if high is None else float(np.asarray(high).reshape(-1)[0])
        if low == 0 and high == 6:
            self._activation(node, "relu6")
        elif low == 0 and high == np.inf:
            self._activation(node, "relu")
        else:
            raise self.fail(node, f"clips to [{low}, {high}]; cnncli has relu (0, inf) and relu6 (0, 6)", None)

    def op_Softmax(self, node):
        x = self.tensor(node)
        axis = int(self.attrs(node).get("axis", 1 if self.opset < 13 else -1))
        rank = len(x.shape) + 1
        axis = axis + rank if axis < 0 else axis
        over_channels = axis == 1 and (self.opset >= 13 or len(x.shape) == 1 or x.shape[1:] == (1, 1))
        if not over_channels:
            raise self.fail(node, f"takes the softmax over axis {axis}; cnncli's softmax is over the channels (axis 1)")
        self._activation(node, "softmax")

    def op_Dropout(self, node):
        a = self.attrs(node)
        ratio = a.get("ratio", 0.5) if self.opset < 12 else self.const(node, 1, "ratio", required=False)
        ratio = 0.5 if ratio is None else float(np.asarray(ratio).reshape(-1)[0])
        if len(node.input) > 2 and node.input[2]:
            mode = self.const(node, 2, "training mode")
            if bool(np.asarray(mode).reshape(-1)[0]):
                raise self.fail(node, "is in training mode; export the model for inference")
        self._activation(node, "dropout", {"rate": _fmt(ratio)} if ratio != 0.5 else {})

    def op_Flatten(self, node):
        x = self.tensor(node)
        axis = int(self.attrs(node).get("axis", 1))
        if axis not in (1, -len(x.shape)):
            raise self.fail(node, f"flattens from axis {axis}; cnncli flattens each sample (axis 1)")
        self._flatten(node, x)

    def _flatten(self, node, x: Tensor):
        if len(x.shape) == 1:
            self.values[node.output[0]] = x
        else:
            self.add(node, "flatten", {}, [x])

    def op_Reshape(self, node):
        x = self.tensor(node)
        shape = [int(v) for v in np.asarray(self.const(node, 1, "target shape")).reshape(-1)]
        size = int(np.prod(x.shape))
        if len(shape) != 2 or shape[1] not in (-1, size) or shape[0] not in (-1, 0, 1) or \
                (shape[0] == -1 and shape[1] == -1):
            raise self.fail(node, f"reshapes to {shape}; only a flatten of each sample (to [N, {size}]) is read",
                            "Reshape with a constant shape such as [-1, C*H*W] or [0, -1]")
        self._flatten(node, x)

    def _fc(self, node, x: Tensor, weight: np.ndarray, bias: np.ndarray | None):
        """`weight` as [out, in]; a Flatten right before is dropped, since fc flattens by itself."""
        if x.layer is not None and x.layer.kind == "flatten" and self.readers.get(self._name_of(x), 0) == 1:
            self.layers.remove(x.layer)
            x = x.layer.inputs[0]
        fan_in = int(np.prod(x.shape))
        if weight.ndim != 2 or weight.shape[1] != fan_in:
            raise self.fail(node, f"has a weight {list(weight.shape)} for {fan_in} inputs")
        units = weight.shape[0]
        weights = {"weight": weight}
        args = {"units": str(units)}
        if bias is not None:
            if bias.size != units:
                raise self.fail(node, f"has {bias.size} biases for {units} outputs")
            weights["bias"] = bias.reshape(units)
        else:
            args["bias"] = "false"
        return self.add(node, "fc", args, [x], weights)

    def _name_of(self, t: Tensor) -> str:
        return next(name for name, value in self.values.items() if value is t)

    def op_Gemm(self, node):
        a = self.attrs(node)
        x = self.tensor(node)
        if a.get("transA", 0):
            raise self.fail(node, "transposes its input (transA=1)")
        weight = self.const(node, 1, "weight")
        bias = self.const(node, 2, "bias", required=False)
        weight = weight if a.get("transB", 0) else weight.T
        if a.get("alpha", 1.0) != 1.0:
            weight = weight * np.float32(a["alpha"])
        if bias is not None:
            bias = bias.reshape(-1) * np.float32(a.get("beta", 1.0))
            if bias.size == 1 and weight.shape[0] > 1:
                bias = np.full(weight.shape[0], bias[0])
        self._need_flat(node, x)
        self._fc(node, x, weight, bias)

    def _need_flat(self, node, x: Tensor):
        if len(x.shape) != 1 and not (x.layer is not None and x.layer.kind == "flatten"):
            raise self.fail(node, f"multiplies a {'x'.join(map(str, x.shape))} feature map; a Flatten or Reshape "
                            "to [N, C*H*W] must come first", None)

    def op_MatMul(self, node):
        x = self.tensor(node)
        weight = self.const(node, 1, "weight")
        self._need_flat(node, x)
        self._fc(node, x, weight.T, None)

    def op_Add(self, node):
        a, b = node.input[0], node.input[1]
        if a in self.consts or b in self.consts:
            return self._bias_add(node, b if a in self.consts else a, self.consts[a if a in self.consts else b])
        self._merge(node, "add")

    def op_Mul(self, node):
        """x * sigmoid(x) is silu; a product of feature maps is `mul` (squeeze-and-excitation); a
        constant factor on the input is part of its normalisation."""
        if any(name in self.consts for name in node.input):
            return self._normalise(node, "Mul")
        a, b = (self.tensor(node, i) for i in range(2))
        for x, gate in ((a, b), (b, a)):
            layer = gate.layer
            if layer is not None and layer.kind == "sigmoid" and layer.inputs[0] is x and \
                    self.readers.get(self._name_of(gate), 0) == 1:
                self.layers.remove(layer)
                return self.add(node, "silu", {}, [x])
        self._merge(node, "mul")

    def op_HardSigmoid(self, node):
        a = self.attrs(node)
        if abs(a.get("alpha", 0.2) - 1 / 6) > 1e-6 or abs(a.get("beta", 0.5) - 0.5) > 1e-6:
            raise self.fail(node, f"is max(0, min(1, {a.get('alpha', 0.2):g} x + {a.get('beta', 0.5):g})); "
                            "cnncli's hardsigmoid is relu6(x + 3) / 6 (alpha 1/6, beta 0.5)", None)
        self._activation(node, "hardsigmoid")

    def op_Gelu(self, node):
        approximate = self.attrs(node).get("approximate", b"none")
        if (approximate.decode() if isinstance(approximate, bytes) else approximate) != "none":
            raise self.fail(node, "is the tanh approximation of GELU; cnncli's gelu is the exact one", None)
        self._activation(node, "gelu")

    def op_Sum(self, node):
        if len(node.input) == 1:
            return self.op_Identity(node)
        self._merge(node, "add")

    def _bias_add(self, node, name: str, value: np.ndarray):
        """MatMul -> Add(bias): the bias of the fc (or of a conv without one) the sum follows."""
        x = self.values.get(name)
        layer = x.layer if x is not None else None
        if layer is None or layer.kind not in ("fc", "conv") or "bias" in layer.weights or \
                self.readers.get(name, 0) != 1:
            raise self.fail(node, "adds a constant to something other than an fc or conv without bias", None)
        units = x.shape[0]
        if value.size != units:
            raise self.fail(node, f"adds {value.size} values to {units} outputs")
        layer.weights["bias"] = value.reshape(units)
        layer.args.pop("bias", None)
        self.values[node.output[0]] = x

    def _merge(self, node, kind: str):
        self.add(node, kind, {}, [self.tensor(node, i) for i in range(len(node.input))])

    def op_Concat(self, node):
        xs = [self.tensor(node, i) for i in range(len(node.input))]
        axis = int(self.attrs(node).get("axis", 1))
        rank = len(xs[0].shape) + 1
        if (axis + rank if axis < 0 else axis) != 1:
            raise self.fail(node, f"concatenates along axis {axis}; cnncli's cat joins channels (axis 1)")
        self._merge(node, "cat")


# ----------------------------------------------------------------------------- writing the spec


class Writer:
    """The converted layers as spec text: chains, add(...) and cat(...), one top-level stage per line."""

    def __init__(self, layers: list[Layer], start: Tensor, file: Path):
        self.layers = layers
        self.start = start
        self.file = file
        self.order = {id(start): 0}
        self.idom: dict[int, Tensor] = {}
        self.tensors = {id(start): start}
        for i, layer in enumerate(layers, 1):
            t = layer.output
            self.order[id(t)] = i
            self.tensors[id(t)] = t
            common = layer.inputs[0]
            for other in layer.inputs[1:]:
                common = self._meet(common, other)
            self.idom[id(t)] = common
        self.emitted: list[Layer] = []

    def _meet(self, a: Tensor, b: Tensor) -> Tensor:
        while a is not b:
            if self.order[id(a)] > self.order[id(b)]:
                a = self.idom[id(a)]
            else:
                b = self.idom[id(b)]
        return a

    def chain(self, start: Tensor, end: Tensor) -> list[Any]:
        items: list[Any] = []
        t = end
        while t is not start:
            layer = t.layer
            if layer is None:
                last = items[-1] if items else None
                near = (last.layer if isinstance(last, Merge) else last).node if last else "the output"
                raise UserError(f"{self.file}: the graph is not made of chains and branches that cnncli's spec "
                                f"language can write (near node '{printable(near)}')", None)
            if len(layer.inputs) > 1:
                fork = self.idom[id(t)]
                items.append(Merge(layer, [self.chain(fork, x) for x in layer.inputs]))
                t = fork
            else:
                items.append(layer)
                t = layer.inputs[0]
        return items[::-1]

    def render(self, items: list[Any]) -> str:
        parts = []
        for item in items:
            if isinstance(item, Merge):
                branches = [self.render(b) or "id" for b in item.branches]
                parts.append(f"{item.layer.kind}({' | '.join(branches)})")
            else:
                parts.append(item.text())
        return " -> ".join(parts)

    def flatten(self, items: list[Any]) -> None:
        """The layers in the order the spec lists them: a merge's branches, then the merge."""
        for item in items:
            if isinstance(item, Merge):
                for branch in item.branches:
                    self.flatten(branch)
                self.emitted.append(item.layer)
            else:
                self.emitted.append(item)

    def lines(self, end: Tensor) -> list[str]:
        items = self.chain(self.start, end)
        self.flatten(items)
        if len(self.emitted) != len(self.layers) or len({id(x) for x in self.emitted}) != len(self.layers):
            twice = next((x for x in self.emitted if sum(y is x for y in self.emitted) > 1), None)
            raise UserError(f"{self.file}: the graph is not made of chains and branches that cnncli's spec language "
                            "can write" + (f" (node '{printable(twice.node)}' would be needed on two branches)"
                                           if twice else ""), None)
        lines, current = [], []
        for item in items:
            current.append(item)
            text = self.render(current)
            if isinstance(item, Merge) or (isinstance(item, Layer) and item.kind in ("pool", "avgpool", "l2pool")) \
                    or len(text) > 90:
                lines.append(text)
                current = []
        if current:
            lines.append(self.render(current))
        return lines


def _name(proto, file: Path) -> str:
    name = "".join(c for c in (proto.graph.name or file.stem) if c.isalnum() or c in "-_.")[:60]
    return name or file.stem


def read(path: Path):
    """The ModelProto of an ONNX file; damaged or oversized files end in one clear error."""
    onnx = need("onnx", "ONNX import")
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise UserError(f"{path} is {size / 2**30:.1f} GiB; an ONNX file holds at most 2 GiB", None)
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"no such file: {path}", None) from None
    except IsADirectoryError:
        raise UserError(f"{path} is a directory, not an ONNX file", None) from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}", None) from None
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception:  # protobuf's DecodeError, or its C++ runtime's RuntimeError
        raise UserError(f"{path} is not a readable ONNX model (damaged or truncated)",
                        "give a .onnx file as written by an exporter (torch.onnx, tf2onnx, cnn export)") from None
    if not proto.HasField("graph") or not proto.graph.node:
        raise UserError(f"{path} is not an ONNX model: it holds no graph", None)
    return proto


def import_onnx(path: Path, out: Path) -> str:
    from .. import checkpoint
    from ..spec import loads

    if out.suffix.lower() not in (".yaml", ".yml"):
        raise UserError(f"{out}: the spec to write must end in .yaml", "e.g. cnn import model.onnx model.yaml")
    proto = read(path)
    conv = Converter(proto, path)
    end = conv.run()
    start = conv.values[conv.input_name]
    # The layers between the (normalised) input and the output, as chains and branches.
    inputs = {id(t) for layer in conv.layers for t in layer.inputs if t.layer is None}
    if len(inputs) > 1:
        raise UserError(f"{path}: the network reads its input both before and after normalising it", None)
    if inputs:
        start = next(t for layer in conv.layers for t in layer.inputs if t.layer is None)
    if end.layer is None:
        raise UserError(f"{path}: the graph computes nothing cnncli can import (no layers)", None)
    # A final flatten of a Cx1x1 map adds nothing: cnncli gives (N, C) for it.
    if end.layer.kind == "flatten" and end.layer.inputs[0].shape[1:] == (1, 1):
        conv.layers.remove(end.layer)
        end = end.layer.inputs[0]
    used = _reaching(end)
    layers = [layer for layer in conv.layers if id(layer) in used]
    defaults = _bias_default(layers)
    writer = Writer(layers, start, path)
    try:
        lines = writer.lines(end)
    except RecursionError:
        raise UserError(f"{path}: branches are nested too deeply to write as a spec", None) from None
    c, h, w = conv.values[conv.input_name].shape
    props = {p.key: p.value for p in proto.metadata_props}
    outputs = int(np.prod(end.shape))
    flat_output = len(end.shape) == 1 or end.shape[1:] == (1, 1)
    classes = outputs if flat_output and conv.task == "classification" and outputs >= 2 else None
    regression = outputs if flat_output and classes is None else None
    class_names = _class_names(props.get("cnncli.class_names"), classes)
    name = _name(proto, path)
    weights_file = out.with_suffix(".npz")
    text = "\n".join([
        f"# imported from {printable(path.name)} by cnn import (cnncli {__version__}); weights: {weights_file.name}",
        f"name: {json.dumps(name)}",
        f"input: {c}x{h}x{w}",
        *([f"classes: {classes}"] if classes else []),
        *([f"output: {regression}"] if regression else []),
        *(["defaults: {conv: {bias: false}}"] if defaults else []),
        "net:",
        *[f"  - {line}" for line in lines],
    ]) + "\n"
    spec = loads(text, str(out))
    if len(spec.nodes) != len(writer.emitted):
        raise AssertionError("the written spec has other layers than were converted")
    params: dict[str, np.ndarray] = {}
    buffers: dict[str, np.ndarray] = {}
    for node, layer in zip(spec.nodes, writer.emitted):
        assert node.kind.name == layer.kind, (node.name, layer.kind)
        for key, value in layer.weights.items():
            target = buffers if key.startswith("running_") else params
            target[f"{node.name}.{key}"] = np.ascontiguousarray(value, np.float32)
    mean = conv.mean if conv.mean is not None else np.zeros(c)
    std = conv.std if conv.std is not None else np.ones(c)
    meta = {"name": spec.name, "spec": text, "spec_file": str(out), "input": [c, h, w], "classes": classes,
            "class_names": class_names, "normalisation": {"mean": mean.tolist(), "std": std.tolist()},
            "train": {}, "data": {"source": f"imported from {printable(path.name)}"}, "epoch": 0, "step": 0,
            "global_step": 0, "history": []}
    _check_shapes(spec, params, buffers, path)
    try:
        checkpoint.write_text_atomic(out, text)
        checkpoint.save(weights_file, _Weights(params, buffers), meta)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}", "choose a directory you can write to") from None
    return (f"wrote {out} ({len(spec.nodes)} layers, {spec.total_params:,} parameters) and {weights_file}; "
            f"check it with: cnn shapes {out}")


def _bias_default(layers: list[Layer]) -> bool:
    """When most convs have no bias (they feed a bn), say so once under defaults: and mark the others."""
    convs = [layer for layer in layers if layer.kind == "conv"]
    without = [layer for layer in convs if layer.args.get("bias") == "false"]
    if len(without) * 2 <= len(convs):
        return False
    for layer in convs:
        if layer.args.pop("bias", None) is None:
            layer.args["bias"] = "true"
    return True


def _reaching(end: Tensor) -> set[int]:
    seen: set[int] = set()
    stack = [end]
    while stack:
        t = stack.pop()
        if t.layer is None or id(t.layer) in seen:
            continue
        seen.add(id(t.layer))
        stack += t.layer.inputs
    return seen


def _check_shapes(spec, params, buffers, path) -> None:
    """Every weight has the shape the spec's layer needs (what Model would allocate)."""
    for node in spec.nodes:
        count = sum(v.size for k, v in params.items() if k.rsplit(".", 1)[0] == node.name)
        if count != node.info.params:
            raise AssertionError(f"{path}: {node.name} holds {count} parameters, its layer {node.info.params}")


def _class_names(text: str | None, classes: int | None) -> list[str] | None:
    if not text or not classes:
        return None
    try:
        names = json.loads(text)
    except json.JSONDecodeError:
        return None
    if isinstance(names, list) and len(names) == classes and all(isinstance(n, str) for n in names):
        return [printable(n, 60) for n in names]
    return None


class _Weights:
    """What checkpoint.save needs from a model: its parameters and buffers by name."""

    def __init__(self, params, buffers):
        self._params, self._buffers = params, buffers

    def params(self):
        return self._params

    def buffers(self):
        return self._buffers
