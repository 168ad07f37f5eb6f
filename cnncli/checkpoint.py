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
import math
import os
import tempfile
from math import prod
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, memory
from .archive import damaged, open_npz
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
    """Write through a temporary file in the same directory, then rename over the target. The file
    gets the mode any new file gets (0666 less the umask), not mkstemp's private 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda f: f.write(text.encode("utf-8")))


class Checkpoint:
    """A checkpoint file read and checked by `load`: its metadata, its spec (parsed) and its arrays."""

    def __init__(self, path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray], spec=None):
        self.path, self.meta, self.arrays, self.spec = path, meta, arrays, spec

    def spec_with_input(self, input_shape: str):
        """The stored network with its input replaced (e.g. "3x64x64"), for exports at another size."""
        from .spec import loads

        return loads(self.meta["spec"], self.spec.file, input_shape=input_shape)

    def restore(self, model) -> None:
        """Load weights and buffers into a model built from the same spec."""
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

    def restore_optimizer(self, optimizer) -> None:
        """Load the optimizer's state (its slots, see the optimizer's declaration) for resuming."""
        for slot, target in optimizer.state.items():
            value = self.arrays.get(f"optim/{slot}")
            if value is None:
                raise UserError(f"{self.path} has no optimizer state '{slot}'",
                                "it was saved with another optimizer; resume with the same settings")
            if value.shape != target.shape:
                raise UserError(f"{self.path}: optimizer state '{slot}' has shape {value.shape}, the network "
                                f"needs {target.shape}", "the checkpoint is damaged")
            target[...] = value


META_LIMIT = 64 << 20  # bytes of JSON metadata; real ones are a few KB plus the history


def load(path: str | Path) -> Checkpoint:
    """Read a checkpoint (or a run directory's best, else last) and check it before anything large
    is decompressed: a zip of numeric arrays, metadata with a spec that loads, array sizes that are
    the ones the spec implies, and memory for them and the network."""
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "checkpoints" / "best.npz", path / "checkpoints" / "last.npz", path / "last.npz"):
            if candidate.exists():
                path = candidate
                break
        else:
            raise UserError(f"{path} holds no checkpoint", "give a run directory (runs/...) or a .npz checkpoint")
    if path.suffix.lower() in (".yaml", ".yml"):
        raise UserError(f"{path} is a spec, not a trained run",
                        f"train it first (cnn train {path}), then give the run directory or its checkpoints/best.npz")
    if not path.exists():
        raise UserError(f"no such checkpoint: {path}", "give a run directory (runs/...) or a .npz checkpoint")
    with open_npz(path, "cnncli checkpoint", "a checkpoint is checkpoints/best.npz or last.npz of a run") as archive:
        meta = _meta(archive)
        spec = _spec(path, meta)
        memory.require(archive.nbytes + memory.model_bytes(spec), f"{path}: the network stored in it "
                       f"({spec.total_params:,} parameters) with the checkpoint's arrays",
                       f"cnn shapes shows the network's figures; use a machine with more memory")
        _check_sizes(archive, spec)
        arrays = {name: archive.read(name) for name in archive.entries if name != "meta"}
    return Checkpoint(path, meta, arrays, spec)


def _spec(path: Path, meta: dict[str, Any]):
    """The network the checkpoint was trained with, parsed again; a spec that no longer parses
    (saved by another cnncli version, or edited) is reported as the checkpoint's problem."""
    from .spec import loads

    try:
        return loads(meta["spec"], meta["spec_file"] if isinstance(meta.get("spec_file"), str) else str(path))
    except UserError as exc:
        saved = meta.get("cnncli")
        place = f"{exc.where}: " if exc.where else ""
        raise UserError(f"{path}: the network stored in this checkpoint no longer parses"
                        + (f" (saved by cnncli {saved}, this is {__version__})" if saved != __version__ else "")
                        + f": {place}{exc.message}",
                        "evaluate or resume it with the cnncli version that saved it, or fix the spec and train "
                        "again (the spec is also in the run directory as spec.yaml)") from None


def _meta(archive) -> dict[str, Any]:
    path = archive.path
    entry = archive.entries.get("meta")
    if entry is None:
        raise UserError(f"{path} is not a cnncli checkpoint (it has no metadata)",
                        "a checkpoint is checkpoints/best.npz or last.npz of a run")
    if entry.dtype != np.uint8 or len(entry.shape) != 1 or entry.nbytes > META_LIMIT:
        raise damaged(path, "cnncli checkpoint", f"its metadata is {entry.dtype.str} of shape {entry.shape}, "
                      "not UTF-8 JSON text")
    try:
        meta = json.loads(archive.read("meta").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise damaged(path, "cnncli checkpoint", "its metadata is not JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{path} is not a cnncli checkpoint (its metadata says no format '{FORMAT}')", None)
    version = meta.get("version", 0)
    if not isinstance(version, int) or version > VERSION:
        raise UserError(f"{path} has checkpoint format version {version}; this cnncli reads up to {VERSION}",
                        "upgrade cnncli (pip install -U cnncli)")
    for key, kind in (("spec", str), ("input", list), ("normalisation", dict), ("train", dict)):
        if not isinstance(meta.get(key), kind):
            raise damaged(path, "cnncli checkpoint", f"its metadata has no '{key}'" if key not in meta
                          else f"its metadata's '{key}' is no {kind.__name__}")
    norm = meta["normalisation"]
    channels = meta["input"][0] if meta["input"] else 0
    for key in ("mean", "std"):
        values = norm.get(key)
        if (not isinstance(values, list) or len(values) != channels
                or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
                or (key == "std" and not all(v > 0 for v in values))):
            raise damaged(path, "cnncli checkpoint", f"its normalisation '{key}' is not {channels} finite number(s)"
                          + (" above 0" if key == "std" else ""))
    return meta


def _check_sizes(archive, spec) -> None:
    """Each group of arrays must hold the values the spec implies, checked from the headers alone."""
    expected = {"param": spec.total_params, "buffer": spec.buffers}
    found = {"param": 0, "buffer": 0}
    for name, entry in archive.entries.items():
        group = name.split("/", 1)[0]
        if name == "meta":
            continue
        if group not in ("param", "buffer", "optim"):
            raise damaged(archive.path, "cnncli checkpoint", f"it holds an unknown array '{name}'")
        if entry.dtype.kind != "f":
            raise damaged(archive.path, "cnncli checkpoint", f"array '{name}' has dtype {entry.dtype.str}, "
                          "not floating point")
        count = prod(entry.shape)
        if group == "optim" and count > spec.total_params:  # fewer when layers were frozen
            raise damaged(archive.path, "cnncli checkpoint", f"optimizer state '{name}' holds {count:,} values, the "
                          f"network has {spec.total_params:,} parameters")
        if group in found:
            found[group] += count
    for group, want in expected.items():
        if found[group] != want:
            raise damaged(archive.path, "cnncli checkpoint", f"its {group} arrays hold {found[group]:,} values, the "
                          f"spec stored in it implies {want:,}")
