"""The machine-readable description of a checked network, printed by `cnn shapes --json`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .graph import INPUT, Fork, Node, TreeItem
from .memory import BYTES_PER_VALUE

if TYPE_CHECKING:
    from .network import Spec


def summary(spec: Spec, batch: int = 1) -> dict[str, Any]:
    names = {n.index: n.name for n in spec.nodes}
    names[INPUT] = "input"
    branch_of = branch_labels(spec.tree)
    return {
        "name": spec.name,
        "description": spec.description,
        "file": spec.file,
        "input": list(spec.input),
        "output": list(spec.output_shape),
        "classes": spec.classes,
        "total_params": spec.total_params,
        "trainable_params": spec.trainable_params,
        "non_trainable_params": spec.total_params - spec.trainable_params,
        "buffers": spec.buffers,
        "total_macs": spec.total_macs,
        "total_flops": 2 * spec.total_macs,
        "activations_per_sample": spec.activations_per_sample,
        "activation_bytes_per_sample": spec.activations_per_sample * BYTES_PER_VALUE,
        "train_step_bytes": spec.memory(batch),
        "warnings": [str(w) for w in spec.warnings],
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
            for n in spec.nodes
        ],
    }


def branch_labels(tree: list[TreeItem], label: str | None = None, out: dict | None = None) -> dict[int, str]:
    """node index -> 'add1/2' (the merge and branch it lies on, innermost)."""
    out = {} if out is None else out
    for item in tree:
        if isinstance(item, Fork):
            if label:
                out[item.node.index] = label
            for i, branch in enumerate(item.branches):
                branch_labels(branch, f"{item.node.name}/{i + 1}", out)
        elif isinstance(item, Node) and label:
            out[item.index] = label
    return out
