"""Evaluate and use a trained model: `cnn eval` and `cnn predict`.

Metrics are computed from the confusion matrix with the usual definitions (scikit-learn's):
precision = TP / (TP + FP), recall = TP / (TP + FN), F1 their harmonic mean (0 where undefined),
macro = unweighted mean over classes, weighted = mean weighted by support.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import checkpoint, memory
from .errors import UserError
from .files import check_regular, image_error


@dataclass
class Trained:
    model: Any
    meta: dict[str, Any]
    path: Path

    @property
    def class_names(self) -> list[str]:
        names = self.meta.get("class_names")
        classes = self.meta.get("classes") or 0
        return names if names and len(names) == classes else [str(i) for i in range(classes)]

    def batches(self, images: np.ndarray, batch: int = 256):
        from .data.augment import Batcher

        memory.require_for(self.model.spec, min(batch, len(images)), f"running {self.path}", training=False)
        norm = self.meta["normalisation"]
        batcher = Batcher(images, norm["mean"], norm["std"], [], 0)
        for start in range(0, len(images), batch):
            index = np.arange(start, min(start + batch, len(images)))
            yield index, batcher(index)

    def outputs(self, images: np.ndarray) -> np.ndarray:
        """The network's outputs for NCHW images (uint8 or float): (N, outputs); probabilities for a
        classifier (softmax of the logits, whether or not the spec ends in softmax)."""
        out = []
        m = self.model
        for _, x in self.batches(images):
            m.infer_internal(x)
            y = m.output_of(m.logits_node)
            out.append(y.reshape(y.shape[0], -1).T.astype(np.float64))
        y = np.concatenate(out)
        if self.meta.get("classes"):
            y = np.exp(y - y.max(axis=1, keepdims=True))
            y /= y.sum(axis=1, keepdims=True)
        return y


def load_trained(path: str | Path) -> Trained:
    from .model import Model

    model = Model.from_checkpoint(path)
    return Trained(model, model.checkpoint.meta, model.checkpoint.path)


def classification_metrics(probs: np.ndarray, labels: np.ndarray, classes: int, top_k: int = 5) -> dict[str, Any]:
    predicted = probs.argmax(axis=1)
    confusion = np.zeros((classes, classes), np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    tp = np.diag(confusion).astype(float)
    support = confusion.sum(axis=1)
    predicted_count = confusion.sum(axis=0)
    precision = np.divide(tp, predicted_count, out=np.zeros(classes), where=predicted_count > 0)
    recall = np.divide(tp, support, out=np.zeros(classes), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(classes), where=denom > 0)
    k = min(top_k, classes)
    top = np.argsort(-probs, axis=1)[:, :k]
    weights = support / max(support.sum(), 1)
    eps = 1e-12
    return {
        "samples": int(len(labels)),
        "loss": float(-np.mean(np.log(probs[np.arange(len(labels)), labels] + eps))),
        "accuracy": float(tp.sum() / max(len(labels), 1)),
        f"top{k}_accuracy": float(np.mean((top == labels[:, None]).any(axis=1))),
        "per_class": {"precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist(),
                      "support": support.tolist()},
        "macro": {"precision": float(precision.mean()), "recall": float(recall.mean()), "f1": float(f1.mean())},
        "weighted": {"precision": float(precision @ weights), "recall": float(recall @ weights),
                     "f1": float(f1 @ weights)},
        "confusion": confusion.tolist(),
    }


def regression_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, Any]:
    target = target.reshape(pred.shape).astype(np.float64)
    residual = pred - target
    total = ((target - target.mean(axis=0)) ** 2).sum()
    return {"samples": int(len(pred)), "mse": float(np.mean(residual ** 2)), "mae": float(np.mean(np.abs(residual))),
            "r2": float(1 - (residual ** 2).sum() / total) if total > 0 else 0.0}


def evaluate(trained: Trained, data: str | None, top_k: int = 5) -> dict[str, Any]:
    from . import data as datasets
    from .train import stored_data

    name = data or stored_data(trained.meta)
    if not name:
        raise UserError("no data to evaluate on", "give --data NAME_OR_PATH")
    dataset = datasets.resolve(name)
    spec = trained.model.spec
    dataset.check_fits(spec)
    if dataset.x_test is not None:
        images, targets, split = dataset.x_test, dataset.y_test, "test"
    else:
        images, targets, split = dataset.x_train, dataset.y_train, "all (the data has no test split)"
    out = trained.outputs(images)
    result: dict[str, Any] = {"checkpoint": str(trained.path), "data": dataset.source, "split": split}
    if trained.meta.get("classes"):
        result.update(classification_metrics(out, targets, trained.meta["classes"], top_k))
        result["class_names"] = trained.class_names
    else:
        result.update(regression_metrics(out, targets))
    return result


def confusion_png(result: dict[str, Any], name: str, path: Path) -> None:
    """The confusion matrix as a titled PNG (rows: true class, columns: predicted)."""
    from .report import plots

    split = "test split" if result["split"] == "test" else "all samples"
    title = f"{name}: confusion matrix on the {split}, accuracy {result['accuracy']:.2%}"
    plots.confusion_matrix(np.asarray(result["confusion"]), result["class_names"], title, path)


def read_image(path: Path, shape: tuple[int, int, int]) -> tuple[np.ndarray, list[str]]:
    """An image file as a (C, H, W) uint8 array of the model's input shape, and notes on conversions."""
    try:
        from PIL import Image
    except ImportError:
        raise UserError("reading image files needs Pillow", "pip install 'cnncli[images]'") from None
    c, h, w = shape
    notes = []
    check_regular(path, "image file")
    try:
        with Image.open(path) as img:
            mode = "L" if c == 1 else "RGB"
            if img.mode != mode:
                notes.append(f"converted {img.mode} to {mode}")
                img = img.convert(mode)
            if img.size != (w, h):
                notes.append(f"resized {img.size[0]}x{img.size[1]} to {w}x{h}")
                img = img.resize((w, h), Image.Resampling.BILINEAR)
            arr = np.asarray(img)
    except FileNotFoundError:
        raise UserError(f"no such file: {path}", None) from None
    except (OSError, Image.DecompressionBombError) as exc:
        raise image_error(path, exc) from None
    if c not in (1, 3):
        raise UserError(f"the model takes {c} channels; image files have 1 (grey) or 3 (RGB)", "use --data")
    return (arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)), notes


def predict(trained: Trained, files: list[Path], data: str | None, index: str | None, top: int) -> list[dict]:
    """For image files, or samples `index` ("0,5,9") of a dataset: the `top` most likely classes, or
    a regression model's predicted values."""
    shape = tuple(trained.meta["input"])
    items = []  # (what, image CHW, notes, true label)
    if data is not None:
        from . import data as datasets

        ds = datasets.resolve(data)
        ds.check_fits(trained.model.spec)
        images, labels = (ds.x_test, ds.y_test) if ds.x_test is not None else (ds.x_train, ds.y_train)
        try:
            picks = [int(i) for i in (index or "0").split(",")]
        except ValueError:
            raise UserError(f"--index {index}: expected whole numbers separated by commas", None) from None
        for i in picks:
            if not 0 <= i < len(images):
                raise UserError(f"--index {i} is outside the {len(images):,} samples", None)
            items.append((f"{data}[{i}]", images[i], [], labels[i]))
    elif files:
        for path in files:
            image, notes = read_image(path, shape)
            items.append((str(path), image, notes, None))
    else:
        raise UserError("nothing to predict", "give image files, or --data NAME --index 0,1,2")
    batch = np.stack([item[1] for item in items])
    if tuple(batch.shape[1:]) != shape:
        raise UserError(f"the inputs are {'x'.join(map(str, batch.shape[1:]))}, the model takes "
                        f"{'x'.join(map(str, shape))}", None)
    outputs = trained.outputs(batch)
    if not trained.meta.get("classes"):
        return [{"input": what, "notes": notes, "values": y.tolist(),
                 "target": None if truth is None else np.atleast_1d(truth).astype(float).tolist()}
                for (what, _, notes, truth), y in zip(items, outputs)]
    names = trained.class_names
    results = []
    for (what, _, notes, truth), p in zip(items, outputs):
        order = np.argsort(-p)[:top]
        results.append({"input": what, "notes": notes, "label": names[int(truth)] if truth is not None else None,
                        "top": [{"class": names[k], "index": int(k), "probability": float(p[k])} for k in order]})
    return results
