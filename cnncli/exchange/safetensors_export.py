"""`cnn export ... OUT.safetensors`: the weights alone, for PyTorch, JAX and friends.

Every parameter and buffer under its stable name (`conv1.weight`, `bn1.running_mean`), in PyTorch's
layouts, which cnncli keeps for its parameters: conv weights [K, C/groups, FH, FW], fc weights
[out, in] (inputs in C, H, W order, as nn.Flatten gives them), so `model.load_state_dict` of a
PyTorch network with the same layer names takes them as they are.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .common import need, write_bytes


def tensors(model) -> dict[str, np.ndarray]:
    return {name: np.ascontiguousarray(value, np.float32) for name, value in {**model.params(), **model.buffers()}.items()}


def write_safetensors(model, out: Path) -> str:
    st = need("safetensors", "safetensors export")
    import safetensors.numpy  # noqa: F401  (the numpy front end is a submodule)

    values = tensors(model)
    spec = model.spec
    meta = {"format": "pt", "cnncli.name": spec.name, "cnncli.input": json.dumps(list(spec.input))}
    data = st.numpy.save(values, metadata=meta)
    write_bytes(out, data)
    return f"wrote {out}: {len(values)} tensors, {sum(v.size for v in values.values()):,} values, " \
           f"{len(data) / 2**20:.1f} MiB"
