"""What a compiled layer is: parameters, buffers, forward and backward over CHWN tensors.

Inside the engine every tensor is 4-D (C, H, W, N): channels outermost, the batch innermost (the
layout of cuda-convnet). A flat vector of F values per sample is (F, 1, 1, N). With the batch
innermost, im2col copies whole runs of W*N values, pooling and activations vectorise over the batch,
flattening for fc is free, and each channel stays contiguous for batch norm and concatenation.
The Model converts to and from NCHW at its edges.

Dimension letters, used the same way in every kernel:

    N               samples in the batch (innermost in memory)
    C, H, W         a layer's input: channels, height, width
    K, ho, wo       a layer's output: channels (conv filters), height, width
    F               values per sample of a flat vector (fc's fan-in is F = C*H*W)
    P               output positions ho * wo
    M               the values of one channel over the batch, H*W*N (kernels on a (C, M) view)
    G               conv groups; cg = C // G and kg = K // G channels per group
    fh, fw          kernel (window) height and width
    sh, sw          stride
    pt, pb, pl, pr  padding: top, bottom, left, right
    dil_h, dil_w    dilation
    lo, hi          the range (of channels or values) one worker thread computes
    x, y            a layer's input and output; dx, dy their gradients
    gw, gb          gradients of the weight and the bias ("dw" is never used: it reads as
                    dilation width, or as depthwise, the spec's g=dw)
"""

from __future__ import annotations

from math import prod
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..spec.graph import Node

if TYPE_CHECKING:
    from ..layers.base import LayerKind


class Workspace:
    """Arrays that live only during one op's forward or backward call (im2col columns, transformed
    tiles, per-worker partial sums), shared by all ops of a model: each name holds one buffer as large
    as the largest request, so a model's temporaries cost what its largest op needs, not the sum over
    ops. An op must not keep a workspace array past the call that asked for it."""

    def __init__(self):
        self._buffers: dict[str, np.ndarray] = {}

    def get(self, key: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """An uninitialised array of `shape` on the buffer named `key` (grown when too small)."""
        dtype = np.dtype(dtype)
        size = prod(shape) * dtype.itemsize
        buf = self._buffers.get(key)
        if buf is None or buf.size < size:
            buf = self._buffers[key] = np.empty(size, np.uint8)
        return buf[:size].view(dtype).reshape(shape)

    def reserve(self, sizes: dict[str, int]) -> None:
        """Grow buffers to the given bytes per name now, so that no buffer is reallocated (old and new
        alive at once) while the first step asks for ever larger ones."""
        for key, size in sizes.items():
            buf = self._buffers.get(key)
            if buf is None or buf.size < size:
                self._buffers[key] = np.empty(size, np.uint8)

    @property
    def nbytes(self) -> int:
        return sum(buf.nbytes for buf in self._buffers.values())

    def sizes(self) -> dict[str, int]:
        """Bytes per buffer name, as the memory estimate counts them (cnncli/spec/memory.py)."""
        return {key: buf.nbytes for key, buf in self._buffers.items()}


class Op:
    """One node of the network, compiled. Subclasses name the layer kinds they run (`kinds`, the
    declarations themselves) and implement forward and backward."""

    kinds: ClassVar[tuple[type[LayerKind], ...]] = ()

    def __init__(self, node: Node, dtype: np.dtype):
        self.node = node
        self.p = node.params
        self.dtype = np.dtype(dtype)
        self.params: dict[str, np.ndarray] = {}  # views into the model's flat parameter vector
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self._scratch: dict[str, np.ndarray] = {}
        self.workspace = Workspace()  # the Model gives all its ops one shared workspace
        self.gradients: Workspace | None = None  # the Model's gradient slots (spec/backward.py)
        self.gradient_slots: dict[int, int] = {}  # input position -> the slot its gradient goes into

    # -- declared by subclasses

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {}

    def buffer_shapes(self) -> dict[str, tuple[int, ...]]:
        return {}

    def init(self, rng: np.random.Generator) -> None:
        """Fill self.params (and self.buffers) with their initial values."""

    def forward(self, xs: list[np.ndarray], train: bool, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def infer(self, xs: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
        """Eval-mode forward that no backward follows (Model.infer_internal); ops may skip work there."""
        return self.forward(xs, False, rng)

    def backward(self, dy: np.ndarray, need: list[bool]) -> list[np.ndarray | None]:
        """Fill self.grads (overwriting) and return the gradient for each input that needs one."""
        raise NotImplementedError

    # -- helpers

    def scratch(self, key: str, shape: tuple[int, ...], dtype: Any = None) -> np.ndarray:
        """An array kept between calls (an output, a saved mask, a gradient): allocated once per shape,
        never zeroed here."""
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        arr = self._scratch.get(key)
        if arr is None or arr.shape != shape or arr.dtype != dtype:
            arr = np.empty(shape, dtype)
            self._scratch[key] = arr
        return arr

    def temp(self, key: str, shape: tuple[int, ...], dtype: Any = None) -> np.ndarray:
        """An array for the current forward or backward call only, on the shared workspace; never zeroed."""
        return self.workspace.get(key, shape, self.dtype if dtype is None else dtype)

    def gradient(self, shape: tuple[int, ...], position: int = 0) -> np.ndarray:
        """The array for the gradient of input `position`: the slot the Model planned for it (shared
        with gradients that are not needed at the same time), else one of the op's own."""
        slot = self.gradient_slots.get(position)
        if slot is None or self.gradients is None:
            return self.scratch("dx" if position == 0 else f"dx{position}", shape)
        return self.gradients.get(f"slot{slot}", shape, self.dtype)

    def out_shape(self, batch: int) -> tuple[int, int, int, int]:
        shape = self.node.shape
        if len(shape) == 1:
            return (shape[0], 1, 1, batch)
        return (shape[0], shape[1], shape[2], batch)

    def scalar(self, value: float):
        """A constant in the op's dtype, so float32 kernels stay float32."""
        return self.dtype.type(value)


class Fused(Op):
    """A layer whose work the previous op does in the same pass (e.g. the relu after a bn).
    It keeps its place, name and shape in the graph and passes values and gradients through."""

    def __init__(self, node: Node, dtype: np.dtype, into: Op):
        super().__init__(node, dtype)
        self.into = into

    def forward(self, xs, train, rng):
        return xs[0]

    def backward(self, dy, need):
        return [dy]
