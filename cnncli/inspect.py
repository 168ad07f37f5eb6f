"""`cnn inspect`: what a network learned. Training history, parameter statistics, activation
statistics on real data (e.g. the share of dead ReLUs), the first convolution's filters and a
layer's feature maps for one input. Works on a trained run or on a bare spec (initial weights)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import memory
from .errors import UserError


@dataclass
class Inspection:
    spec: Any
    meta: dict[str, Any] | None
    params: list[dict[str, Any]] = field(default_factory=list)
    activations: list[dict[str, Any]] = field(default_factory=list)
    data_source: str | None = None
    filters: np.ndarray | None = None  # (K, h, w) or (K, 3, h, w)
    filters_layer: str | None = None
    maps: np.ndarray | None = None  # (C, H, W)
    maps_layer: str | None = None
    maps_input: str | None = None
    maps_image: np.ndarray | None = None  # (C, H, W): the input the maps are of, as stored


def _stats(values: np.ndarray) -> dict[str, float]:
    v = values.astype(np.float64).ravel()
    return {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()), "max": float(v.max()),
            "zeros": float(np.mean(v == 0))}


def inspect(target: Path, data: str | None = None, layer: str | None = None, sample: int = 0,
            image: Path | None = None, batch: int = 256) -> Inspection:
    from . import data as datasets
    from . import spec as specs
    from .model import Model
    from .spec import shipped
    from .train import stored_data

    if target.suffix.lower() in (".yaml", ".yml") or (not target.exists() and shipped.find(target)):
        spec, meta = specs.load(target), None
        model = Model(spec, np.float32, seed=0, fuse=False)
    else:
        model = Model.from_checkpoint(target, fuse=False)  # every layer's own output, for statistics
        spec, meta = model.spec, model.checkpoint.meta
    result = Inspection(spec, meta)
    for name, value in model.params().items():
        result.params.append({"name": name, "shape": list(value.shape), **_stats(value)})

    first_conv = next((n for n in spec.nodes if n.kind.name == "conv"), None)
    if first_conv is not None:
        w = model.param(f"{first_conv.name}.weight")
        result.filters = w if w.shape[1] == 3 else w[:, 0]
        result.filters_layer = first_conv.name

    source = data or (stored_data(meta) if meta else None)
    images = None
    if source:
        ds = datasets.resolve(source)
        ds.check_fits(spec)
        images = ds.x_test if ds.x_test is not None else ds.x_train
        result.data_source = ds.source
    norm = (meta or {}).get("normalisation")
    if images is not None and norm is None:
        from .data.augment import channel_stats

        mean, std = channel_stats(images[:batch])
        norm = {"mean": mean.tolist(), "std": std.tolist()}
    if images is not None:
        from .data.augment import Batcher

        memory.require_for(spec, min(batch, len(images)), f"inspecting {target}", training=False)
        batcher = Batcher(images, norm["mean"], norm["std"], [], 0)
        model.forward_internal(batcher(np.arange(min(batch, len(images)))), train=False)
        for node in spec.nodes:
            out = model.output_of(node.index)  # (C, H, W, N)
            row = {"name": node.name, "type": node.kind.name, **_stats(out)}
            if node.kind.name in ("relu", "relu6"):
                units = out.reshape(-1, out.shape[-1])
                row["dead"] = float(np.mean((units == 0).all(axis=1)))  # zero for every sample in the batch
            result.activations.append(row)

    chosen = None
    if image is not None:
        from .evaluate import read_image

        picture, notes = read_image(image, tuple(spec.input))
        chosen, result.maps_input = picture[None], f"{image}" + (f" ({'; '.join(notes)})" if notes else "")
    elif images is not None:
        if not 0 <= sample < len(images):
            raise UserError(f"--sample {sample} is outside the {len(images):,} samples", None)
        chosen, result.maps_input = images[sample : sample + 1], f"sample {sample} of {result.data_source}"
    if chosen is not None:
        if norm is None:
            norm = {"mean": [0.0] * spec.input[0], "std": [1.0] * spec.input[0]}
        from .data.augment import Batcher

        target_node = spec.node(layer) if layer else (first_conv or spec.nodes[0])
        if len(target_node.shape) != 3:
            raise UserError(f"layer {target_node.name} gives a flat vector of {target_node.shape[0]}, not maps",
                            "choose a conv, pool, bn or activation layer before fc")
        model.forward_internal(Batcher(chosen, norm["mean"], norm["std"], [], 0)(np.array([0])), train=False)
        result.maps = model.output_of(target_node.index)[..., 0]
        result.maps_image = chosen[0]
        result.maps_layer = target_node.name
    return result
