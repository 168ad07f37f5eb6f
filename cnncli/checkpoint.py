"""Checkpoints: one .npz file, readable with plain numpy and no pickle.

    np.load("last.npz", allow_pickle=False)
      "meta"            uint8 array: UTF-8 JSON (see below)
      "param/<name>"    each parameter, e.g. "param/conv1.weight", PyTorch's layout
      "buffer/<name>"   each buffer, e.g. "buffer/bn1.running_mean"
      "optim/<slot>"    the optimizer's state over the flat parameter vector (e.g. "optim/exp_avg")

The JSON holds: format ("cnncli-checkpoint"), version, cnncli and numpy versions, the spec text and
name, input shape, classes and class names, the input normalisation (per-channel mean and std), the
position in training (epoch, step, global step), optimizer, schedule and early-stopping state, seed,
the metrics of the epoch in progress, and what the run was trained on. Files are written to a
temporary name and renamed, so a crash never leaves half a checkpoint.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import UserError

FORMAT = "cnncli-checkpoint"
VERSION = 1


def save(path: Path, model, meta: dict[str, Any], optimizer=None) -> None:
    arrays: dict[str, np.ndarray] = {}
    arrays.update({f"param/{k}": v for k, v in model.params().items()})
    arrays.update({f"buffer/{k}": v for k, v in model.buffers().items()})
    if optimizer is not None:
        arrays.update({f"optim/{k}": v for k, v in optimizer.state.items()})
    meta = {"format": FORMAT, "version": VERSION, "cnncli": __version__, "numpy": np.__version__, **meta}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8)
    write_atomic(path, lambda f: np.savez(f, **arrays))


def write_atomic(path: Path, write) -> None:
    """Write through a temporary file in the same directory, then rename over the target."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda f: f.write(text.encode("utf-8")))


class Checkpoint:
    def __init__(self, path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]):
        self.path, self.meta, self.arrays = path, meta, arrays

    def spec(self, input_shape: str | None = None):
        """The network the checkpoint was trained with, parsed again (`input_shape` replaces its
        input); a spec that no longer parses (saved by another cnncli version, or edited) is reported
        as the checkpoint's problem."""
        from .spec import loads

        try:
            return loads(self.meta["spec"], self.meta.get("spec_file", str(self.path)), input_shape=input_shape)
        except UserError as exc:
            if input_shape is not None:
                raise  # most likely the new input does not fit the network: that error says so
            saved = self.meta.get("cnncli")
            place = f"{exc.where}: " if exc.where else ""
            raise UserError(f"{self.path}: the network stored in this checkpoint no longer parses"
                            + (f" (saved by cnncli {saved}, this is {__version__})" if saved != __version__ else "")
                            + f": {place}{exc.message}",
                            "evaluate or resume it with the cnncli version that saved it, or fix the spec and train "
                            "again (the spec is also in the run directory as spec.yaml)") from None
        except KeyError:
            raise UserError(f"{self.path}: the checkpoint's metadata has no spec", None) from None

    def restore(self, model, optimizer=None) -> None:
        """Load weights and buffers (and optimizer state) into a model built from the same spec."""
        wanted = {**{f"param/{k}": v for k, v in model.params().items()},
                  **{f"buffer/{k}": v for k, v in model.buffers().items()}}
        missing = [k for k in wanted if k not in self.arrays]
        extra = [k for k in self.arrays if k.startswith(("param/", "buffer/")) and k not in wanted]
        if missing or extra:
            raise UserError(
                f"{self.path} does not fit this network: "
                + (f"missing {', '.join(m.split('/', 1)[1] for m in missing[:4])}" if missing else "")
                + ("; " if missing and extra else "")
                + (f"unexpected {', '.join(e.split('/', 1)[1] for e in extra[:4])}" if extra else ""),
                "load it with the spec it was trained with (stored in the checkpoint and the run directory)",
            )
        for key, target in wanted.items():
            value = self.arrays[key]
            if value.shape != target.shape:
                raise UserError(f"{self.path}: {key.split('/', 1)[1]} has shape {value.shape}, the network "
                                f"needs {target.shape}", "the checkpoint comes from a different spec")
            target[...] = value
        if optimizer is not None:
            for slot, target in optimizer.state.items():
                if f"optim/{slot}" not in self.arrays:
                    raise UserError(f"{self.path} has no optimizer state '{slot}'",
                                    "it was saved with another optimizer; resume with the same settings")
                target[...] = self.arrays[f"optim/{slot}"]


def load(path: str | Path) -> Checkpoint:
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "checkpoints" / "best.npz", path / "checkpoints" / "last.npz", path / "last.npz"):
            if candidate.exists():
                path = candidate
                break
        else:
            raise UserError(f"{path} holds no checkpoint", "give a run directory (runs/...) or a .npz checkpoint")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise UserError(f"no such checkpoint: {path}", None) from None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable checkpoint ({exc})",
                        "the file is truncated or not a cnncli checkpoint; use checkpoints/best.npz or last.npz "
                        "of a finished run") from None
    if "meta" not in arrays:
        raise UserError(f"{path} is not a cnncli checkpoint (no metadata)", None)
    try:
        meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UserError(f"{path}: the checkpoint's metadata is damaged", None) from None
    if meta.get("format") != FORMAT:
        raise UserError(f"{path} is not a cnncli checkpoint", None)
    if meta.get("version", 0) > VERSION:
        raise UserError(f"{path} has checkpoint format version {meta['version']}; this cnncli reads up to {VERSION}",
                        "upgrade cnncli (pip install -U cnncli)")
    return Checkpoint(path, meta, arrays)
