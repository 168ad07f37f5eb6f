"""What a compiled layer is: parameters, buffers, forward and backward over CNHW tensors.

Inside the engine every tensor is 4-D (C, N, H, W), channel-major: a flat vector of F values per
sample is (F, N, 1, 1). Channel-major lets a whole batch's convolution be one large GEMM and keeps
each channel contiguous for batch norm and concatenation. The Model converts to and from NCHW.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..spec.graph import Node


class Op:
    """One node of the network, compiled. Subclasses implement forward and backward."""

    def __init__(self, node: Node, dtype: np.dtype):
        self.node = node
        self.p = node.params
        self.dtype = np.dtype(dtype)
        self.params: dict[str, np.ndarray] = {}  # views into the model's flat parameter vector
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self._scratch: dict[str, np.ndarray] = {}

    # -- declared by subclasses

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {}

    def buffer_shapes(self) -> dict[str, tuple[int, ...]]:
        return {}

    def init(self, rng: np.random.Generator) -> None:
        """Fill self.params (and self.buffers) with their initial values."""

    def forward(self, xs: list[np.ndarray], train: bool, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray, need: list[bool]) -> list[np.ndarray | None]:
        """Fill self.grads (overwriting) and return the gradient for each input that needs one."""
        raise NotImplementedError

    # -- helpers

    def scratch(self, key: str, shape: tuple[int, ...], dtype: Any = None) -> np.ndarray:
        """An array kept between steps: allocated once per shape, never zeroed here."""
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        arr = self._scratch.get(key)
        if arr is None or arr.shape != shape or arr.dtype != dtype:
            arr = np.empty(shape, dtype)
            self._scratch[key] = arr
        return arr

    def out_shape(self, batch: int) -> tuple[int, int, int, int]:
        shape = self.node.shape
        if len(shape) == 1:
            return (shape[0], batch, 1, 1)
        return (shape[0], batch, shape[1], shape[2])

    def scalar(self, value: float):
        """A constant in the op's dtype, so float32 kernels stay float32."""
        return self.dtype.type(value)
