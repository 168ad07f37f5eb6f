"""Moving networks between cnncli and other tools: ONNX export and import, safetensors export.

The formats are written and read only through their own libraries (`onnx`, `safetensors`), which are
optional extras; a command that needs a missing one says which `pip install` to run.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .common import load_source, need


def export(source: Path, out: Path, seed: int = 0, input_shape: str | None = None) -> str:
    """`cnn export`: write `out` in the format its suffix names; returns a line saying what was written."""
    suffix = out.suffix.lower()
    if suffix not in (".onnx", ".safetensors"):
        raise UserError(f"cannot tell the format of {out}: it ends neither in .onnx nor in .safetensors",
                        "name the output e.g. model.onnx (the network) or model.safetensors (the weights alone)")
    need("onnx" if suffix == ".onnx" else "safetensors", f"export to {suffix}")
    loaded = load_source(source, seed, input_shape)
    if suffix == ".onnx":
        from .onnx_export import write_onnx

        return write_onnx(loaded, out)
    from .safetensors_export import write_safetensors

    return write_safetensors(loaded.model, out)
