"""The memory estimate of one float32 training step, as `cnn shapes` shows it and as cnncli checks
against the available memory before it allocates.

The estimate counts what the engine allocates: per layer its op's output and what it saves for
backward (arg-max indices, dropout masks, batch statistics); the gradient slots backward's layers
share (planned by spec/backward.py, which the Model follows); and the workspace of temporaries that
all ops share (sized by the formulas of spec/workspace.py, which the ops use too). Layers the engine
fuses (spec/fusion.py) keep nothing of their own. tests/test_train_memory.py checks every layer
kind's figure against the arrays its op really holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import TYPE_CHECKING

from ..layers.activation import Dropout
from ..layers.conv import Conv
from ..layers.dense import Flatten
from ..layers.merge import Multiply
from ..layers.norm import BatchNorm, LocalResponseNorm
from ..layers.pool import GlobalAvgPool, GlobalMaxPool, MaxPool
from . import workspace as ws
from .backward import plan as backward_plan
from .fusion import plan as fusion_plan
from .graph import INPUT

if TYPE_CHECKING:
    from .graph import Node
    from .network import Spec

BYTES_PER_VALUE = 4  # float32
INDEX_BYTES = 4  # int32 arg-max positions
STAT_BYTES = 8  # batch norm's per-channel mean and 1/std, float64


def optimizer_slots(train) -> int:
    """Arrays of the parameters' size the spec's optimizer keeps: its declared state (Adam: 2, plain SGD: 0)."""
    from .train import OPTIMIZERS

    opt = train.optimizer or {"name": "adam"}
    return len(OPTIMIZERS[opt["name"]].state(opt))


@dataclass
class LayerMemory:
    """Bytes one layer's op holds after a training step."""

    kept: int = 0  # its output, what forward saves for backward, and arrays of its own backward keeps
    workspace: dict[str, int] = field(default_factory=dict)  # temporaries, by name on the shared workspace

    def need(self, key: str, values: int, value_bytes: int = BYTES_PER_VALUE) -> None:
        self.workspace[key] = max(self.workspace.get(key, 0), values * value_bytes)


@dataclass
class Context:
    """What a layer's arrays depend on beyond its own shapes."""

    batch: int
    workers: int
    backward: bool  # the layer's backward runs (it lies between the input and the loss)
    pool: Node | None  # for a bn: the max pool it applies after its relu, if it does


def _values(shape, batch: int) -> int:
    return prod(shape) * batch


def _conv(node: Node, ctx: Context) -> LayerMemory:
    n, m = ctx.batch, LayerMemory()
    c, h, w = node.in_shapes[0]
    k, ho, wo = node.shape
    window, groups = node.info.window, node.info.groups
    x_values = c * h * w * n
    m.kept = k * ho * wo * n * BYTES_PER_VALUE
    input_grad = ctx.backward and node.inputs[0] != INPUT
    if groups > 1:
        return m
    if ws.uses_winograd(window, groups, c):
        return _winograd_conv(m, c, h, w, k, ho, wo, window.kernel[0], ctx, input_grad)
    if ws.uses_direct(window, groups, c, k):
        rows, cols, _, _ = ws.direct_padding(h, w, window)
        if (rows, cols) != (h, w):  # the zero-padded input, and in backward the padded input gradient
            m.need("direct_x", c * rows * cols * n)
            if input_grad:
                m.need("direct_dx", c * rows * cols * n)
        return m
    fh, fw = window.kernel
    rows = c * fh * fw
    pointwise = ws.is_pointwise(window)
    count, chunk = ws.split_extent(ho * wo, ws.im2col_chunk(rows, n), ctx.workers)
    for worker in range(count if not pointwise else 0):
        m.need(f"cols{worker}", rows * chunk * n)
    if not ctx.backward:
        return m
    m.need("gw_partial", count * rows * k)
    m.need("gw_product", count * rows * k)
    if input_grad and not pointwise:
        for worker in range(count):
            m.need(f"dcols{worker}", rows * chunk * n)
            if worker:
                m.need(f"dx{worker}", x_values)
    return m


def _winograd_conv(m: LayerMemory, c, h, w, k, ho, wo, r, ctx: Context, input_grad: bool) -> LayerMemory:
    """F(m x m, r x r) (cnncli/ops/winograd.py): per pass the transformed filters and each worker's
    input and product tiles; the weight gradient adds a sum per group of runs of tiles (and dy cut to whole tiles)."""
    n = ctx.batch
    size = ws.winograd_tile_size(ho, wo, r)
    points = ws.winograd_points(size, r)

    def convolve(cin, kout, rows, cols):  # a pass from cin channels into a kout x rows x cols output
        th, tw = ws.winograd_tiles(rows, cols, size)
        chunk = ws.winograd_chunk(points, cin + kout, n)
        count, most = ws.split_extent(th * tw, chunk, ctx.workers)
        m.need("wino_u", points * kout * cin)
        for worker in range(count):
            m.need(f"wino_v{worker}", points * cin * most * n)
            m.need(f"wino_m{worker}", points * kout * most * n)
        return th, tw, ws.split_runs(th * tw, chunk, ctx.workers)

    th, tw, runs = convolve(c, k, ho, wo)
    if ctx.backward:
        if (ho, wo) != (size * th, size * tw):
            m.need("wino_dy_even", k * size * th * size * tw * n)
        sums = ws.winograd_sums(runs, points * k * c, ctx.workers)
        m.need("wino_du", sums * points * k * c)
        if sums < runs:  # a group of several runs: each thread's GEMM result before it is added
            m.need("wino_du_product", ctx.workers * points * k * c)
    if input_grad:
        m.need("wino_flipped", k * c * r * r)  # the filters flipped and transposed
        convolve(k, c, h, w)
    return m


def _batch_norm(node: Node, ctx: Context) -> LayerMemory:
    n, m = ctx.batch, LayerMemory()
    channels = node.shape[0]
    out = ctx.pool.shape if ctx.pool is not None else node.shape
    m.kept = _values(out, n) * BYTES_PER_VALUE + 2 * channels * STAT_BYTES
    if ctx.pool is not None:
        m.kept += _values(out, n) * INDEX_BYTES
    if not node.params["affine"]:
        m.kept += 2 * channels * BYTES_PER_VALUE  # gamma = 1, beta = 0
        if ctx.backward:
            m.kept += 2 * channels * BYTES_PER_VALUE  # their unused gradients
    return m


def _pool_with_indices(node: Node, ctx: Context) -> LayerMemory:
    """Max pooling and the global pools: output and arg-max positions."""
    m = _output_only(node, ctx)
    m.kept += _values(node.shape, ctx.batch) * INDEX_BYTES
    return m


def _dropout(node: Node, ctx: Context) -> LayerMemory:
    if node.params["rate"] == 0:
        return LayerMemory()
    values = _values(node.shape, ctx.batch)
    return LayerMemory(kept=values * (2 * BYTES_PER_VALUE + 1))  # output, scaled mask, kept flags


def _lrn(node: Node, ctx: Context) -> LayerMemory:
    values = _values(node.shape, ctx.batch)
    m = LayerMemory(kept=2 * values * BYTES_PER_VALUE)  # output, the per-value scale
    if ctx.backward:
        m.need("t", values)
    return m


def _multiply(node: Node, ctx: Context) -> LayerMemory:
    """The output, and the input gradients mul's backward keeps in arrays of its own."""
    values = _values(node.shape, ctx.batch)
    m = LayerMemory(kept=values * BYTES_PER_VALUE)
    if not ctx.backward:
        return m
    full = prod(node.shape)
    for position, (i, shape) in enumerate(zip(node.inputs, node.in_shapes)):
        others = [prod(s) for j, s in enumerate(node.in_shapes) if j != position]
        if i == INPUT:
            continue
        if prod(shape) != full and others == [full]:  # a squeeze-and-excitation scale: its own shape
            m.kept += _values(shape, ctx.batch) * BYTES_PER_VALUE
        else:
            m.kept += values * BYTES_PER_VALUE
    return m


def _output_only(node: Node, ctx: Context) -> LayerMemory:
    return LayerMemory(kept=_values(node.shape, ctx.batch) * BYTES_PER_VALUE)


_RULES = {
    Conv: _conv, BatchNorm: _batch_norm, Dropout: _dropout, LocalResponseNorm: _lrn, Multiply: _multiply,
    Flatten: lambda node, ctx: LayerMemory(),
    MaxPool: _pool_with_indices, GlobalMaxPool: _pool_with_indices, GlobalAvgPool: _pool_with_indices,
}  # every other kind (fc, activations, softmax, average and L2 pooling, add, cat, shortcut): _output_only


def layers(spec: Spec, batch: int, workers: int | None = None) -> list[LayerMemory]:
    """What each layer's op holds after a training step at `batch`, in node order (besides the
    gradient slots and the workspace). Fused-away layers hold nothing."""
    workers = ws.default_threads() if workers is None else workers
    fusion = fusion_plan(spec.nodes)
    absorbed = fusion.absorbed
    reached = _reaching(spec, loss_node(spec))
    out = []
    for node in spec.nodes:
        if node.index in absorbed:
            out.append(LayerMemory())
            continue
        pool = fusion.pool.get(node.index)
        ctx = Context(batch, workers, node.index in reached, spec.nodes[pool] if pool is not None else None)
        out.append(_RULES.get(node.kind, _output_only)(node, ctx))
    return out


def loss_node(spec: Spec) -> int:
    """The node whose output the training loss takes (a final softmax is folded into cross-entropy)."""
    return spec.logits_node if spec.train.loss_setting(spec.classes)["name"] == "cross_entropy" else spec.output_node


def _reaching(spec: Spec, start: int) -> set[int]:
    """The nodes the loss's gradient reaches: `start` and everything it reads."""
    seen, todo = set(), [start]
    while todo:
        i = todo.pop()
        if i != INPUT and i not in seen:
            seen.add(i)
            todo.extend(spec.nodes[i].inputs)
    return seen


def shared_workspace(per_layer: list[LayerMemory]) -> dict[str, int]:
    """Bytes per workspace name: the largest any layer asks for (the ops take turns on one workspace)."""
    out: dict[str, int] = {}
    for layer in per_layer:
        for key, size in layer.workspace.items():
            out[key] = max(out.get(key, 0), size)
    return out


def gradient_slots(spec: Spec, batch: int) -> list[int]:
    """Bytes of each of the Model's gradient slots in a training step (spec/backward.py)."""
    return [size * batch * BYTES_PER_VALUE for size in backward_plan(spec, loss_node(spec)).sizes]


def train_step_bytes(spec: Spec, batch: int, workers: int | None = None) -> dict[str, int]:
    """Weights, their gradients, optimizer state, BN buffers; per layer its output and saved arrays
    (activations); the gradient slots and the loss's gradient; the shared workspace."""
    params = spec.total_params
    per_layer = layers(spec, batch, workers)
    start = loss_node(spec)
    loss_gradient = _values(spec.nodes[start].shape, batch) * BYTES_PER_VALUE if start != INPUT else 0
    out = {
        "batch": batch,
        "weights": params * BYTES_PER_VALUE,
        "gradients": params * BYTES_PER_VALUE,
        "optimizer_state": optimizer_slots(spec.train) * spec.trainable_params * BYTES_PER_VALUE,
        "buffers": spec.buffers * BYTES_PER_VALUE,
        "activations": sum(layer.kept for layer in per_layer),
        "activation_gradients": sum(gradient_slots(spec, batch)) + loss_gradient,
        "workspace": sum(shared_workspace(per_layer).values()),
    }
    out["total"] = sum(v for k, v in out.items() if k != "batch")
    return out
