"""Load a YAML spec, validate it and infer every layer's shape, size and cost. Never imports numba.

    >>> from cnncli.spec import loads
    >>> spec = loads("input: 1x28x28\\nclasses: 10\\nnet: conv k=16 f=5 p=2 -> relu -> pool 2 -> fc 10")
    >>> [(n.name, n.shape) for n in spec.nodes]
    [('conv1', (16, 28, 28)), ('relu1', (16, 28, 28)), ('pool1', (16, 14, 14)), ('fc1', (10,))]
    >>> spec.total_params
    31786
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LayerError, UserError, Where
from ..layers import KINDS, lookup
from ..layers.base import Shape, describe_shape
from . import train as train_section
from . import yamlsrc
from .blocks import Block, parse_signature
from .chain import suggest
from .graph import INPUT, Expander, Fork, Identity, Node, TreeItem, infer
from .yamlsrc import Text, type_name

TOP_LEVEL = {
    "name": "a name for the network",
    "description": "free text",
    "input": "the input shape C x H x W, e.g. 1x28x28 or [3, 32, 32]",
    "classes": "number of classes; the network must end with that many outputs",
    "output": "number of regression outputs (instead of classes)",
    "net": "the layers: a chain 'conv k=16 f=5 -> relu -> ...' or a list of chains",
    "blocks": "parameterised blocks, e.g. 'vgg(k, n): (conv k=$k f=3 p=1 -> relu) x$n -> pool 2'",
    "defaults": "per-kind parameter defaults, e.g. {conv: {bias: false}, bn: {eps: 0.001}}",
    "train": "defaults for cnn train (epochs, batch, optimizer, ...)",
}

BYTES_PER_VALUE = 4  # float32
OPTIMIZER_SLOTS = {"sgd": lambda o: 1 if o.get("momentum") else 0, "adam": lambda o: 2, "adamw": lambda o: 2,
                   "rmsprop": lambda o: 1 + (1 if o.get("momentum") else 0)}


@dataclass
class Spec:
    name: str
    file: str
    input: Shape
    classes: int | None
    output: int | None
    nodes: list[Node]
    tree: list[TreeItem]
    output_node: int
    warnings: list[UserError]
    train: dict[str, Any]
    blocks: dict[str, Block]
    source: str = field(repr=False, default="")
    description: str | None = None

    # -- totals, in PyTorch's counting convention

    @property
    def total_params(self) -> int:
        return sum(n.info.params for n in self.nodes)

    @property
    def trainable_params(self) -> int:
        # Every parameter cnncli creates is learned; frozen layers would be subtracted here.
        return sum(n.info.params for n in self.nodes)

    @property
    def buffers(self) -> int:
        return sum(n.info.buffers for n in self.nodes)

    @property
    def total_macs(self) -> int:
        return sum(n.info.macs for n in self.nodes)

    @property
    def output_shape(self) -> Shape:
        return self.input if self.output_node == INPUT else self.nodes[self.output_node].shape

    @property
    def activations_per_sample(self) -> int:
        """Values produced by all layers for one sample (what a forward pass keeps for backward)."""
        total = 0
        for node in self.nodes:
            size = 1
            for d in node.shape:
                size *= d
            total += size
        return total

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        close = suggest(name, [n.name for n in self.nodes])
        raise UserError(f"no layer named '{name}'", f"did you mean {close}?" if close else "see cnn shapes for the names")

    def optimizer_slots(self) -> int:
        opt = self.train.get("optimizer") or {"name": "adam"}
        return OPTIMIZER_SLOTS[opt["name"]](opt)

    def memory(self, batch: int) -> dict[str, int]:
        """Estimated bytes of one float32 training step: weights, their gradients, optimizer state,
        BN buffers, and per sample every layer's output plus its gradient."""
        params = self.total_params
        out = {
            "batch": batch,
            "weights": params * BYTES_PER_VALUE,
            "gradients": params * BYTES_PER_VALUE,
            "optimizer_state": self.optimizer_slots() * params * BYTES_PER_VALUE,
            "buffers": self.buffers * BYTES_PER_VALUE,
            "activations": 2 * batch * self.activations_per_sample * BYTES_PER_VALUE,
        }
        out["total"] = sum(v for k, v in out.items() if k != "batch")
        return out

    def summary(self, batch: int = 1) -> dict[str, Any]:
        """The machine-readable description printed by `cnn shapes --json`."""
        names = {n.index: n.name for n in self.nodes}
        names[INPUT] = "input"
        branch_of = _branch_labels(self.tree)
        return {
            "name": self.name,
            "description": self.description,
            "file": self.file,
            "input": list(self.input),
            "output": list(self.output_shape),
            "classes": self.classes,
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.total_params - self.trainable_params,
            "buffers": self.buffers,
            "total_macs": self.total_macs,
            "total_flops": 2 * self.total_macs,
            "activations_per_sample": self.activations_per_sample,
            "activation_bytes_per_sample": self.activations_per_sample * BYTES_PER_VALUE,
            "train_step_bytes": self.memory(batch),
            "warnings": [str(w) for w in self.warnings],
            "layers": [
                {
                    "name": n.name,
                    "type": n.kind.name,
                    "spec": n.text,
                    "inputs": [names[i] for i in n.inputs],
                    "branch": branch_of.get(n.index),
                    "input": [list(s) for s in n.in_shapes],
                    "output": list(n.shape),
                    "params": n.info.params,
                    "buffers": n.info.buffers,
                    "macs": n.info.macs,
                    "rf": {"size": max(n.rf), "jump": max(n.jump), "size_hw": list(n.rf), "jump_hw": list(n.jump)},
                    "line": n.where.line,
                    "column": n.where.column,
                }
                for n in self.nodes
            ],
        }


def _branch_labels(tree: list[TreeItem], label: str | None = None, out: dict | None = None) -> dict[int, str]:
    """node index -> 'add1/2' (the merge and branch it lies on, innermost), for the JSON output."""
    out = {} if out is None else out
    for item in tree:
        if isinstance(item, Fork):
            if label:
                out[item.node.index] = label
            for i, branch in enumerate(item.branches):
                _branch_labels(branch, f"{item.node.name}/{i + 1}", out)
        elif isinstance(item, Node) and label:
            out[item.index] = label
    return out


# ----------------------------------------------------------------------------- loading


def load(path: str | Path, strict: bool = False, input_shape: str | None = None) -> Spec:
    """Load a spec file, or a shipped network by name (`resnet-50`; a path that exists wins)."""
    from ..zoo import resolve

    path = resolve(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"no such file: {path}", "check the path") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a directory, not a spec file", "name a .yaml file") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text (byte {exc.start})", "a spec is a YAML text file") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}", None) from None
    return loads(text, str(path), strict=strict, input_shape=input_shape)


def loads(text: str, file: str = "<spec>", strict: bool = False, input_shape: str | None = None) -> Spec:
    """Parse and check spec text. `input_shape` (e.g. "3x32x32") replaces the spec's input."""
    root = yamlsrc.load(text, file)
    if not isinstance(root.value, dict):
        raise UserError(f"a spec is a mapping of settings, not {type_name(root.value)}",
                        "start with e.g. `input: 1x28x28` and `net: conv k=16 f=5 -> ...`", root.where)
    doc = root.value
    for key, node in doc.items():
        if key not in TOP_LEVEL:
            close = suggest(key, TOP_LEVEL)
            raise UserError(f"unknown setting '{key}'",
                            (f"did you mean '{close}'? " if close else "") + "a spec may have: " + ", ".join(TOP_LEVEL),
                            node.where)
    for key in ("input", "net"):
        if key not in doc:
            raise UserError(f"the spec has no `{key}:`", f"add `{key}:` - {TOP_LEVEL[key]}", Where(file, 1, 1))
    name = _name(doc.get("name"), file)
    given = doc["input"] if input_shape is None else yamlsrc.Node(input_shape, Where("--input"))
    input_shape = _input(given)
    classes = _count(doc.get("classes"), "classes")
    output = _count(doc.get("output"), "output")
    if classes is not None and output is not None:
        raise UserError("give either classes (classification) or output (regression), not both", None,
                        doc["output"].where)
    defaults = _defaults(doc.get("defaults"))
    blocks = _blocks(doc.get("blocks"))
    train = train_section.validate(doc["train"]) if "train" in doc else {}
    nodes, tree, last = Expander(blocks, defaults).expand(_chain_texts(doc["net"], "net"))
    if not nodes:
        raise UserError("the network has no layers (only id)", "add layers to net:", doc["net"].where)
    warnings = infer(nodes, input_shape)
    spec = Spec(name, file, input_shape, classes, output, nodes, tree, last, warnings, train, blocks, text,
                _description(doc.get("description")))
    _check_output(spec)
    if strict and warnings:
        first = warnings[0]
        first.hint = "--strict makes dropped input an error: pad so that (size - kernel + 2*padding) divides by the stride"
        raise first
    return spec


def _name(node, file: str) -> str:
    if node is None:
        return Path(file).stem if not file.startswith("<") else "network"
    if not isinstance(node.value, (str, int)) or isinstance(node.value, bool):
        raise UserError(f"name must be text, not {type_name(node.value)}", None, node.where)
    return str(node.value)


def _description(node) -> str | None:
    if node is None:
        return None
    if not isinstance(node.value, str):
        raise UserError(f"description must be text, not {type_name(node.value)}", None, node.where)
    return " ".join(node.value.split())


_SHAPE = re.compile(r"^\s*(\d+)\s*[x×,*]\s*(\d+)\s*[x×,*]\s*(\d+)\s*$")


def _input(node) -> Shape:
    value = node.value
    dims = None
    if isinstance(value, str):
        m = _SHAPE.match(value)
        dims = tuple(int(g) for g in m.groups()) if m else None
    elif isinstance(value, list) and len(value) == 3 and all(
        isinstance(v.value, int) and not isinstance(v.value, bool) for v in value
    ):
        dims = tuple(v.value for v in value)
    if dims is None:
        hint = "write channels x height x width, e.g. 1x28x28 (grey) or 3x32x32 (colour), or [1, 28, 28]"
        if isinstance(value, str) and re.match(r"^\s*\d+\s*x\s*\d+\s*$", value):
            hint = f"add the channels in front: 1x{value.strip()} (grey) or 3x{value.strip()} (colour)"
        raise UserError(f"input must be C x H x W, not {type_name(value)}", hint, node.where)
    if min(dims) < 1:
        raise UserError(f"input {describe_shape(dims)} has a zero size", "every dimension must be at least 1", node.where)
    return dims


def _count(node, key: str) -> int | None:
    if node is None:
        return None
    value = node.value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (key == "classes" and value < 2):
        need = "a whole number of at least 2" if key == "classes" else "a whole number of at least 1"
        raise UserError(f"{key} must be {need}, not {type_name(value)}",
                        "for a single output use output: 1 (regression)" if key == "classes" else None, node.where)
    return value


def _chain_texts(node, what: str) -> list[Text]:
    """A chain string, or a list of chain strings (one stage per line)."""
    items = node.value if isinstance(node.value, list) else [node]
    texts = []
    for item in items:
        if not isinstance(item.value, str) or not item.value.strip():
            raise UserError(
                f"each item of {what} must be a chain of layers as text, not {type_name(item.value)}",
                "e.g. conv k=16 f=5 p=2 -> relu (quote it if it contains ': ' or starts with '[')", item.where,
            )
        texts.append(item.text)
    if not texts:
        raise UserError(f"{what} is empty", "list at least one layer", node.where)
    return texts


def _blocks(node) -> dict[str, Block]:
    if node is None:
        return {}
    if not isinstance(node.value, dict):
        raise UserError(f"blocks: must be a mapping of 'name(params): body', not {type_name(node.value)}",
                        "e.g. blocks: {'vgg(k, n)': '(conv k=$k f=3 p=1 -> relu) x$n -> pool 2'}", node.where)
    blocks: dict[str, Block] = {}
    for key, body in node.value.items():
        name, params, defaults = parse_signature(key, body.where, lambda n: lookup(n) is not None)
        if name in blocks:
            raise UserError(f"block {name} is defined twice", "give each block its own name", body.where)
        blocks[name] = Block(name, params, defaults, _chain_texts(body, f"block {name}"), body.where)
    return blocks


def _defaults(node) -> dict[str, dict[str, Any]]:
    if node is None:
        return {}
    if not isinstance(node.value, dict):
        raise UserError(f"defaults: must map layer kinds to settings, not {type_name(node.value)}",
                        "e.g. defaults: {conv: {bias: false}, bn: {eps: 0.001}}", node.where)
    out: dict[str, dict[str, Any]] = {}
    for kind_name, settings in node.value.items():
        kind = lookup(kind_name)
        if kind is None or kind.passthrough:
            close = suggest(kind_name, KINDS)
            raise UserError(f"defaults for unknown layer kind '{kind_name}'",
                            (f"did you mean '{close}'? " if close else "") + "layer kinds: " + ", ".join(KINDS),
                            settings.where)
        if not isinstance(settings.value, dict):
            raise UserError(f"defaults.{kind_name} must map parameters to values, not {type_name(settings.value)}",
                            "e.g. conv: {bias: false}", settings.where)
        parsed = out.setdefault(kind.name, {})
        for param_name, value in settings.value.items():
            param = kind.param(param_name)
            if param is None or param.name == "name":
                close = suggest(param_name, [p.name for p in kind.params])
                raise UserError(f"{kind.name} has no parameter '{param_name}' to default",
                                (f"did you mean {close}? " if close else "")
                                + f"{kind.name} takes: {', '.join(p.name for p in kind.params) or 'nothing'}",
                                value.where)
            try:
                parsed[param.name] = param.parse(value.value)
            except LayerError as exc:
                raise UserError(exc.message, exc.hint, value.where) from None
    return out


def _check_output(spec: Spec) -> None:
    want = spec.classes or spec.output
    if want is None:
        return
    shape = spec.output_shape
    size = 1
    for d in shape:
        size *= d
    ok = shape == (want,) or (len(shape) == 3 and shape[1:] == (1, 1) and shape[0] == want)
    if ok:
        return
    last = spec.nodes[spec.output_node] if spec.output_node != INPUT else spec.nodes[-1]
    what = f"classes: {spec.classes}" if spec.classes else f"output: {spec.output}"
    raise UserError(
        f"the network ends with {describe_shape(shape)} ({size} values), but {what} needs {want}",
        f"end the net with fc {want}" + (" (fc flattens a feature map by itself)" if len(shape) == 3 else ""),
        last.where, last.text, last.name, list(last.calls),
    )


__all__ = ["Spec", "Node", "Fork", "Identity", "load", "loads", "UserError"]
