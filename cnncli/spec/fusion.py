"""Which layers the engine runs in one pass: the Model fuses them, the memory estimate counts them
so. Pure Python over the checked nodes, so `cnn shapes` knows it without loading the engine."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..layers.activation import ReLU, ReLU6
from ..layers.conv import Conv
from ..layers.merge import Add
from ..layers.norm import BatchNorm
from ..layers.pool import MaxPool
from .graph import Node


@dataclass
class Fusion:
    act: dict[int, int] = field(default_factory=dict)  # bn or add node -> the relu/relu6 node it applies
    pool: dict[int, int] = field(default_factory=dict)  # bn node -> the max pool after that activation it applies
    fold: dict[int, int] = field(default_factory=dict)  # conv node -> the bn node it applies in inference

    @property
    def absorbed(self) -> set[int]:
        """Nodes whose work another op does: they compute and keep nothing of their own."""
        return set(self.act.values()) | set(self.pool.values())


def plan(nodes: list[Node]) -> Fusion:
    """bn -> relu (or relu6) [-> max pool] and add -> relu (or relu6) become one pass over memory when
    each layer is the only reader of the one before; a conv whose only reader is a bn (not one fused
    with a pool) applies that bn (folded into its filters) in inference."""
    readers: dict[int, list[int]] = {}
    for node in nodes:
        for i in node.inputs:
            readers.setdefault(i, []).append(node.index)

    def sole_reader(node: Node) -> Node | None:
        after = readers.get(node.index, [])
        if len(after) == 1 and nodes[after[0]].inputs == [node.index]:
            return nodes[after[0]]
        return None

    fusion = Fusion()
    for node in nodes:
        if node.kind not in (BatchNorm, Add):
            continue
        act = sole_reader(node)
        if act is None or act.kind not in (ReLU, ReLU6):
            continue
        fusion.act[node.index] = act.index
        pool = sole_reader(act)
        if node.kind is BatchNorm and pool is not None and pool.kind is MaxPool:
            fusion.pool[node.index] = pool.index
    for node in nodes:
        after = sole_reader(node) if node.kind is Conv else None
        if after is not None and after.kind is BatchNorm and after.index not in fusion.pool:
            fusion.fold[node.index] = after.index
    return fusion
