"""The Dataset every reader returns: NCHW images and labels (or regression targets), train and test."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Dataset:
    name: str
    source: str  # where it came from, shown to the user
    x_train: np.ndarray  # (N, C, H, W), uint8 or float32
    y_train: np.ndarray  # (N,) int64 labels, or (N, K) float32 targets
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    class_names: list[str] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def classes(self) -> int:
        labels = [self.y_train] + ([self.y_test] if self.y_test is not None else [])
        return int(max(int(y.max()) for y in labels)) + 1
