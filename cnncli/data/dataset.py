"""The Dataset every reader returns: NCHW images and labels (or regression targets), train and test."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError

CHUNK = 1 << 24  # values checked at a time, so that checking never doubles the memory


@dataclass
class Dataset:
    """Images and targets as the readers found them; `validate` (called by `resolve`) makes sure they
    are usable data, `check_fits` that they fit a network."""

    name: str
    source: str  # where it came from, shown to the user
    x_train: np.ndarray  # (N, C, H, W), uint8 or float32
    y_train: np.ndarray  # (N,) int64 labels, or (N,) / (N, K) float32 targets
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    class_names: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    origins: dict[str, str] = field(default_factory=dict)  # array -> "file, array 'x'" for messages

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def classes(self) -> int:
        """1 + the largest label (for integer labels)."""
        labels = [self.y_train] + ([self.y_test] if self.y_test is not None else [])
        return int(max(int(y.max()) for y in labels)) + 1

    def origin(self, array: str) -> str:
        return self.origins.get(array, f"{self.source}, {array.replace('_', ' ')}")

    def validate(self) -> "Dataset":
        """Refuse data no network can use: no samples, text, a label array that does not match the
        images, NaN or infinity, test images without labels. Converts images to uint8 or float32 and
        labels to int64 (whole numbers) or float32."""
        if (self.x_test is None) != (self.y_test is None):
            have, missing = ("x_test", "y_test") if self.y_test is None else ("y_test", "x_test")
            raise UserError(f"{self.origin(have)}: there are test {'images' if have == 'x_test' else 'labels'} but "
                            f"no test {'labels' if have == 'x_test' else 'images'}",
                            f"add {missing} to the data, or remove {have}")
        for xs, ys in (("x_train", "y_train"), ("x_test", "y_test")):
            x, y = getattr(self, xs), getattr(self, ys)
            if x is None:
                continue
            x, y = self._images(xs, x), self._targets(ys, y)
            if len(y) != len(x):
                raise UserError(f"{self.origin(xs)} has {len(x):,} images but {self.origin(ys)} has {len(y):,} "
                                "labels", "images and labels must come in pairs, in the same order")
            setattr(self, xs, x)
            setattr(self, ys, y)
        if self.x_test is not None and self.x_test.shape[1:] != self.x_train.shape[1:]:
            raise UserError(f"{self.origin('x_test')}: test images are {_dims(self.x_test.shape[1:])}, the training "
                            f"images {_dims(self.x_train.shape[1:])}", "both splits need images of one shape")
        return self

    def _images(self, array: str, x: np.ndarray) -> np.ndarray:
        _numbers(x, self.origin(array), "images")
        if x.ndim != 4:
            raise UserError(f"{self.origin(array)}: images must be N x H x W or N x C x H x W, found shape "
                            f"{tuple(x.shape)}", None)
        if len(x) == 0:
            raise UserError(f"{self.origin(array)} holds no samples (shape {tuple(x.shape)})",
                            "a dataset needs at least one image")
        if x.dtype != np.uint8:
            x = x.astype(np.float32, copy=False)
            _finite(x, self.origin(array))
        return x

    def _targets(self, array: str, y: np.ndarray) -> np.ndarray:
        _numbers(y, self.origin(array), "labels")
        if y.ndim == 0 or y.ndim > 2:
            raise UserError(f"{self.origin(array)} has shape {tuple(y.shape)}; expected one label per sample "
                            "(N,) or one row of targets per sample (N, K)", None)
        if y.dtype.kind in "iub":
            return y.astype(np.int64, copy=False)
        y = y.astype(np.float32, copy=False)
        _finite(y, self.origin(array))
        return y

    def check_fits(self, spec) -> None:
        """Refuse data that does not fit the spec: image shape, and labels of the right kind and range
        (class numbers 0..classes-1 for a classifier, K values per sample for K regression outputs).
        Whole-number float labels become int64 for a classifier."""
        for array in ("x_train", "x_test"):
            x = getattr(self, array)
            if x is not None and tuple(x.shape[1:]) != tuple(spec.input):
                shape = _dims(x.shape[1:])
                raise UserError(f"{self.origin(array)} has images of {shape}, the spec's input is {_dims(spec.input)}",
                                f"set `input: {shape}` in the spec, or use data of the spec's shape")
        for array in ("y_train", "y_test"):
            y = getattr(self, array)
            if y is not None:
                setattr(self, array, _fitting_targets(y, self.origin(array), spec))


def _dims(shape) -> str:
    return "x".join(map(str, shape))


def _numbers(a: np.ndarray, origin: str, what: str) -> None:
    if a.dtype.kind not in "biuf":
        raise UserError(f"{origin} has dtype {a.dtype.str}, not numbers", f"save the {what} as a numeric array")


def _first(bad_chunk, a: np.ndarray) -> int | None:
    """The first sample index where bad_chunk(rows) is true, checked CHUNK values at a time."""
    rows = max(1, CHUNK // max(1, a[0].size)) if len(a) else 1
    for start in range(0, len(a), rows):
        hits = np.flatnonzero(bad_chunk(a[start : start + rows]).reshape(min(rows, len(a) - start), -1).any(axis=1))
        if len(hits):
            return start + int(hits[0])
    return None


def _finite(a: np.ndarray, origin: str) -> None:
    i = _first(lambda part: ~np.isfinite(part), a)
    if i is not None:
        value = a[i].ravel()[~np.isfinite(a[i].ravel())][0]
        raise UserError(f"{origin}: sample {i} holds {value} (not a finite number)",
                        "remove or repair the samples with NaN or infinity")


def _fitting_targets(y: np.ndarray, origin: str, spec) -> np.ndarray:
    classes = spec.classes
    if classes is None:
        outputs = spec.output or 1
        width = 1 if y.ndim == 1 else y.shape[1]
        if width != outputs:
            raise UserError(f"{origin} has {width} target value(s) per sample, the spec has {outputs} output(s)",
                            f"set `output: {width}` in the spec, or use targets of {outputs} value(s) per sample")
        return y
    if y.ndim != 1:
        hint = ("they look one-hot: save y.argmax(axis=1)" if y.shape[1] == classes else
                "save one class number per sample")
        raise UserError(f"{origin} has shape {tuple(y.shape)}; a classifier needs one class number (0-{classes - 1}) "
                        "per sample", hint)
    if y.dtype.kind == "f":
        i = _first(lambda part: part != np.round(part), y)
        if i is not None:
            raise UserError(f"{origin}: sample {i} has label {y[i]:g}, not a class number", "labels of a classifier are whole "
                            f"numbers 0-{classes - 1}")
        y = y.astype(np.int64)
    i = _first(lambda part: (part < 0) | (part >= classes), y)
    if i is not None:
        raise UserError(f"{origin}: sample {i} has label {y[i]}, outside the spec's classes 0-{classes - 1} (labels "
                        f"range from {y.min()} to {y.max()})",
                        f"set `classes:` in the spec to the number of classes (and end the net with fc N), "
                        "or fix the labels")
    return y
