"""What export and import share: optional imports, atomic writes, and loading what `cnn export`
exports."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError

EXTRAS = {"onnx": "onnx", "safetensors": "safetensors"}


def need(module: str, what: str):
    """Import an optional library, or fail with the one line that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"{what} needs the '{module}' package, which is not installed",
                        f"pip install 'cnncli[{EXTRAS[module]}]'") from None


@dataclass
class Source:
    """What `cnn export` exports: a model with its weights, and how its inputs are normalised."""

    model: Any
    normalisation: dict[str, list[float]] | None
    class_names: list[str] | None
    origin: str


def load_source(source: Path, seed: int = 0, input_shape: str | None = None) -> Source:
    """A run directory (its best checkpoint), a checkpoint .npz, or a spec initialised with `seed`
    exactly as Model.from_spec(spec, seed=seed) does. `input_shape` replaces the spec's input."""
    from .. import checkpoint
    from .. import spec as specs
    from ..model import Model
    from ..spec import shipped

    if source.suffix.lower() in (".yaml", ".yml") or (not source.exists() and shipped.find(source)):
        spec = specs.load(source, input_shape=input_shape)
        return Source(Model(spec, np.float32, seed, fuse=False), None, None, f"{source} (initial weights, seed {seed})")
    ck = checkpoint.load(source)
    spec = ck.spec if input_shape is None else ck.spec_with_input(input_shape)
    model = Model(spec, np.float32, fuse=False)  # unfused: each layer's own output, for checks
    try:
        ck.restore(model)
    except UserError as exc:
        if input_shape is not None:
            exc.hint = f"--input {input_shape} changes the size of a weight; export without --input"
        raise
    names = ck.meta.get("class_names")
    classes = ck.meta.get("classes") or 0
    return Source(model, ck.meta.get("normalisation"), names if names and len(names) == classes else None,
                  str(ck.path))


def write_bytes(path: Path, data: bytes) -> None:
    """Write atomically; an unwritable place becomes one clear error."""
    from ..checkpoint import write_atomic

    try:
        write_atomic(path, lambda f: f.write(data))
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}",
                        "choose a directory you can write to") from None
