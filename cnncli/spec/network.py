"""The checked network: its nodes in execution order, the branch tree for display, and its totals
(parameters, buffers, MACs, activations) counted as PyTorch counts them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError
from ..layers.activation import Softmax
from ..layers.base import Shape
from . import memory
from . import summary as summary_json
from . import train as train_section
from .blocks import Block
from .chain import suggest
from .graph import INPUT, Node, TreeItem


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
    train: train_section.TrainSettings
    blocks: dict[str, Block]
    source: str = field(repr=False, default="")
    description: str | None = None

    # -- totals, in PyTorch's counting convention

    @property
    def total_params(self) -> int:
        return sum(n.info.params for n in self.nodes)

    @property
    def trainable_params(self) -> int:
        """Parameters the optimizer changes: all but those of layers under `train.freeze`."""
        return self.total_params - self.frozen_params(self.frozen_layers())

    def frozen_params(self, layers: list[str]) -> int:
        frozen = set(layers)
        return sum(n.info.params for n in self.nodes if n.name in frozen)

    def frozen_layers(self, settings: train_section.TrainSettings | None = None) -> list[str]:
        """Layer names matched by the `freeze` patterns of settings (default: the spec's own)."""
        settings = settings or self.train
        return train_section.frozen_layers(settings.freeze, [n.name for n in self.nodes], settings.where.get("freeze"))

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

    @property
    def logits_node(self) -> int:
        """The node whose output a classification loss takes: a final softmax is folded into the
        loss (fused log-sum-exp), as Keras does with from_logits."""
        last = self.nodes[self.output_node] if self.output_node != INPUT else None
        if last is not None and last.kind is Softmax:
            return last.inputs[0]
        return self.output_node

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        close = suggest(name, [n.name for n in self.nodes])
        raise UserError(f"no layer named '{name}'", f"did you mean {close}?" if close else "see cnn shapes for the names")

    def memory(self, batch: int, workers: int | None = None) -> dict[str, int]:
        """Estimated bytes of one float32 training step with `workers` threads (default: the engine's
        default), see spec/memory.py."""
        return memory.train_step_bytes(self, batch, workers)

    def summary(self, batch: int = 1) -> dict[str, Any]:
        """The machine-readable description printed by `cnn shapes --json` (see spec/summary.py)."""
        return summary_json.summary(self, batch)
