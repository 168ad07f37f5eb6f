"""Where backward's gradients live. A layer's input gradient is needed only from the moment the op
after it writes it until the layer's own backward has read it, so the Model keeps gradients in a few
shared slots instead of one array per layer. This module plans them (which op writes into which slot,
how large each slot is), in pure Python so that the memory estimate of `cnn shapes` counts the same
slots the Model allocates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import TYPE_CHECKING

from ..layers.activation import Dropout
from ..layers.conv import Conv
from ..layers.dense import Dense, Flatten
from ..layers.merge import Add, Concat, Multiply
from .fusion import Fusion
from .fusion import plan as fusion_plan
from .graph import INPUT

if TYPE_CHECKING:
    from .network import Spec

NEW, PASS, OWN = "new", "pass", "own"  # a slot written by the op; its incoming gradient passed on; the op's own array
MASKED = "masked"  # one slot the op writes (its incoming gradient masked by a fused relu), passed to every input
NEEDY = (Conv, Dense, Multiply, Add, Concat)  # ops that return no gradient for an input that needs none


def outputs(node, fusion: Fusion, input_grad: bool) -> list[str | None]:
    """What the op of `node` returns for each of its inputs in backward: NEW (an array the op writes,
    planned into a slot), MASKED (one such array for all inputs), PASS (its incoming gradient or a
    view of it), OWN (an array the op keeps itself), or None (no gradient: the network's input when
    its gradient is not asked for)."""
    out: list[str | None] = []
    for i in node.inputs:
        if i == INPUT and not input_grad and node.kind in NEEDY:
            out.append(None)
        elif node.kind is Add and node.index in fusion.act:
            out.append(MASKED)
        elif node.index in fusion.absorbed or node.kind in (Add, Concat, Flatten) \
                or (node.kind is Dropout and node.params["rate"] == 0):
            out.append(PASS)
        elif node.kind is Multiply:
            out.append(OWN)
        else:
            out.append(NEW)
    return out


@dataclass
class GradientPlan:
    """slots[node][position]: the slot the op of `node` writes its gradient for that input into;
    sums[node]: the slot the Model sums that node's gradients into when two or more readers send one;
    sizes[slot]: values per sample the slot must hold (the largest gradient it takes)."""

    slots: dict[int, dict[int, int]] = field(default_factory=dict)
    sums: dict[int, int] = field(default_factory=dict)
    sizes: list[int] = field(default_factory=list)


class _Slots:
    """Slots handed out and returned, each grown to the largest gradient it takes."""

    def __init__(self, sizes: list[int]):
        self.sizes = sizes
        self.free: list[int] = []

    def take(self, size: int) -> int:
        fits = [s for s in self.free if self.sizes[s] >= size]
        if fits:
            slot = min(fits, key=lambda s: self.sizes[s])
        elif self.free:  # grow the largest free slot rather than add one
            slot = max(self.free, key=lambda s: self.sizes[s])
            self.sizes[slot] = size
        else:
            self.sizes.append(size)
            return len(self.sizes) - 1
        self.free.remove(slot)
        return slot

    def give_back(self, slot: int) -> None:
        self.free.append(slot)


def plan(spec: Spec, start: int, input_grad: bool = False, fused: bool = True) -> GradientPlan:
    """Replay Model.backward_internal from node `start` (whose gradient comes from outside) for a
    model with (or, fused=False, without) its fusions: every gradient is a reference to a slot, or to
    the incoming one; a slot is free again once no pending gradient refers to it, and never before
    the op that reads it has run."""
    fusion = fusion_plan(spec.nodes) if fused else Fusion()
    result = GradientPlan()
    slots = _Slots(result.sizes)
    outside = -1  # the gradient from the loss, or an op's own array: not a slot
    pending: dict[int, int] = {start: outside}  # node -> the slot holding its gradient
    refs: dict[int, int] = {}
    owned: set[int] = set()

    def per_sample(index: int) -> int:
        return prod(spec.nodes[index].shape) if index != INPUT else prod(spec.input)

    def release(slot: int) -> None:
        if slot != outside:
            refs[slot] -= 1
            if refs[slot] == 0:
                slots.give_back(slot)

    def hold(slot: int) -> None:
        if slot != outside:
            refs[slot] = refs.get(slot, 0) + 1

    for node in reversed(spec.nodes):
        incoming = pending.pop(node.index, None)
        if incoming is None:
            continue
        written: list[tuple[int, int]] = []
        masked = outside
        if node.kind is Add and node.index in fusion.act:  # written whether or not an input needs it
            masked = slots.take(prod(node.shape))
            result.slots[node.index] = {0: masked}
            hold(masked)
        for position, (i, kind) in enumerate(zip(node.inputs, outputs(node, fusion, input_grad))):
            if kind == MASKED:
                hold(masked)
                written.append((i, masked))
            elif kind == NEW:
                slot = slots.take(per_sample(i))
                result.slots.setdefault(node.index, {})[position] = slot
                hold(slot)
                written.append((i, slot))
            elif kind == PASS:
                hold(incoming)
                written.append((i, incoming))
            elif kind == OWN:
                written.append((i, outside))
        release(incoming)  # the op has run
        release(masked)
        for i, slot in written:
            if i not in pending:
                pending[i] = slot
            elif i in owned:  # added into the sum
                release(slot)
            else:  # a second reader: the Model sums both into a slot of its own
                total = slots.take(per_sample(i))
                result.sums[i] = total
                hold(total)
                release(pending[i])
                release(slot)
                pending[i] = total
                owned.add(i)
    return result
