"""`cnn zoo`: the networks shipped with cnncli (see spec/shipped.py), with their sizes."""

from __future__ import annotations

from . import spec as specs
from .spec import shipped


def catalogue() -> list[dict]:
    """Every shipped network with its input, size and one-line description, as `cnn zoo` prints it."""
    out = []
    for name in shipped.names():
        net = specs.load(shipped.directory() / f"{name}.yaml")
        out.append({"name": name, "input": list(net.input), "classes": net.classes, "output": net.output,
                    "params": net.total_params, "macs": net.total_macs, "description": net.description or "",
                    "file": net.file})
    return out
