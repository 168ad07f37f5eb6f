"""A validated spec compiled into a runnable model: forward and backward over the layer DAG.

    model = Model.from_spec("architectures/fashion-tutorial.yaml", seed=0)
    y = model.forward(x_nchw, train=True)          # (N, 10)
    dx = model.backward(dy, input_grad=True)       # (N, 1, 28, 28); parameter gradients in model.grads()
    model.param("conv1.weight")                    # a numpy view, PyTorch's layout

All parameters live in one flat vector (and their gradients in another), so an optimizer step is one
pass over memory; `param()` and `grad()` are views into them. Parameters of frozen layers come
first, so the trainable ones are one contiguous slice (`flat_trainable`) for the optimizer.
"""

from __future__ import annotations

from math import prod
from pathlib import Path

import numpy as np

from . import checkpoint, memory
from .errors import UserError
from .layers.activation import ReLU, ReLU6
from .ops.base import Fused, Op, Workspace
from .ops.norm import RELU, RELU6, BatchNormActPoolOp
from .ops.merge import add_arrays
from .ops.registry import op_for
from .ops.threads import workers
from .spec import Spec, load, loads
from .spec import memory as memory_estimate
from .spec.backward import GradientPlan
from .spec.backward import plan as backward_plan
from .spec.fusion import plan as fusion_plan
from .spec.graph import INPUT


class Model:
    def __init__(self, spec: Spec, dtype=np.float32, seed: int = 0, fuse: bool = True, frozen=()):
        """frozen: names of layers whose parameters stay fixed and whose batch norm keeps its
        running statistics (runs in evaluation mode) while training."""
        self.spec = spec
        self.frozen = frozenset(frozen)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise UserError(f"dtype {self.dtype} is not supported", "use float32 (default) or float64")
        memory.require(memory.model_bytes(spec, self.dtype.itemsize),
                       f"the network {spec.file} ({spec.total_params:,} parameters)",
                       f"cnn shapes {spec.file} shows its size; use a smaller network")
        self.checkpoint = None  # set by from_checkpoint
        self.ops: list[Op] = [op_for(node.kind)(node, self.dtype) for node in spec.nodes]
        self.fused = fuse
        if fuse:
            self._fuse()
        self.workspace = Workspace()  # one for all ops: their temporaries take turns on it
        for op in self.ops:
            op.workspace = self.workspace
        layout = [(op, name, shape) for op in self.ops for name, shape in op.param_shapes().items()]
        layout.sort(key=lambda item: item[0].node.name not in self.frozen)  # stable: frozen first
        total = sum(prod(shape) for _, _, shape in layout)
        self.flat_params = np.zeros(total, self.dtype)
        self.flat_grads = np.zeros(total, self.dtype)
        self.param_names: list[str] = []
        offset = 0
        for op, name, shape in layout:
            size = prod(shape)
            op.params[name] = self.flat_params[offset : offset + size].reshape(shape)
            op.grads[name] = self.flat_grads[offset : offset + size].reshape(shape)
            self.param_names.append(f"{op.node.name}.{name}")
            offset += size
        n_frozen = sum(prod(shape) for op, _, shape in layout if op.node.name in self.frozen)
        self.flat_trainable = self.flat_params[n_frozen:]
        self.flat_trainable_grads = self.flat_grads[n_frozen:]
        for op in self.ops:
            for name, shape in op.buffer_shapes().items():
                op.buffers[name] = np.zeros(shape, self.dtype)
        init_seq, run_seq = np.random.SeedSequence(seed).spawn(2)
        init_rng = np.random.default_rng(init_seq)
        for op in self.ops:
            op.init(init_rng)
        self.rng = np.random.default_rng(run_seq)  # dropout masks
        self._by_name = {op.node.name: op for op in self.ops}
        self._outputs: list[np.ndarray] = []
        self._inferred = False  # the last pass was infer_internal: no saved inputs for a backward
        self.gradient_space = Workspace()  # backward's gradients, in the slots spec/backward.py plans
        self._gradient_plans: dict[tuple[int, bool], GradientPlan] = {}
        self._planned: GradientPlan | None = None  # the plan the ops' gradient_slots follow now
        self._reserved_batch = 0  # the batch the workspace was last sized for
        self.timer = None  # set by `cnn bench`: called as timer(op, phase, seconds)

    def _fuse(self) -> None:
        """Run the fusions spec/fusion.py plans: bn -> relu (or relu6) [-> max pool] and add -> relu (or
        relu6) as one op (same results; `cnn gradcheck` checks both forms), and a conv applying the bn
        after it in infer_internal."""
        fusion = fusion_plan(self.spec.nodes)
        for index, act_index in fusion.act.items():
            op = self.ops[index]
            act = {ReLU: RELU, ReLU6: RELU6}[self.ops[act_index].node.kind]
            pool_index = fusion.pool.get(index)
            if pool_index is not None:
                fused = BatchNormActPoolOp(op.node, self.dtype, act, self.ops[pool_index])
                self.ops[index] = fused
                self.ops[pool_index] = Fused(self.ops[pool_index].node, self.dtype, fused)
            else:
                op.act = act
                fused = op
            self.ops[act_index] = Fused(self.ops[act_index].node, self.dtype, fused)
        for index, bn_index in fusion.fold.items():
            self.ops[index].fold = self.ops[bn_index]
            self.ops[bn_index].folded = True

    @classmethod
    def from_spec(cls, source: str | Path | Spec, dtype=np.float32, seed: int = 0) -> "Model":
        """Build from a Spec, a path to a spec file, or spec text (anything containing a newline)."""
        if isinstance(source, Spec):
            spec = source
        elif isinstance(source, str) and "\n" in source:
            spec = loads(source)
        else:
            spec = load(source)
        return cls(spec, dtype, seed)

    @classmethod
    def from_checkpoint(cls, source, fuse: bool = True, frozen=()) -> "Model":
        """A trained model from a checkpoint (.npz), a run directory (its best checkpoint) or a
        Checkpoint already loaded. The file is checked before anything large is read (see
        cnncli.checkpoint.load); its metadata and optimizer state stay on `model.checkpoint`.

            model = Model.from_checkpoint("runs/fashion-tutorial-20261122-101500")
            model.checkpoint.meta["history"]
        """
        ck = source if isinstance(source, checkpoint.Checkpoint) else checkpoint.load(source)
        model = cls(ck.spec, np.float32, fuse=fuse, frozen=frozen)
        ck.restore(model)
        model.checkpoint = ck
        return model

    # -- parameters and buffers by the stable names of `cnn shapes`

    def _find(self, qualified: str) -> tuple[Op, str]:
        layer, _, name = qualified.rpartition(".")
        op = self._by_name.get(layer)
        if op is None or (name not in op.params and name not in op.buffers):
            known = ", ".join(self.param_names[:6] + self.buffer_names()[:2])
            raise UserError(f"no parameter or buffer '{qualified}'", f"names look like: {known}, ...")
        return op, name

    def param(self, name: str) -> np.ndarray:
        op, key = self._find(name)
        return op.params[key] if key in op.params else op.buffers[key]

    def set_param(self, name: str, value) -> None:
        target = self.param(name)
        value = np.asarray(value)
        if value.shape != target.shape:
            raise UserError(f"{name} has shape {target.shape}, the value {value.shape}", None)
        target[...] = value

    def grad(self, name: str) -> np.ndarray:
        op, key = self._find(name)
        return op.grads[key]

    def params(self) -> dict[str, np.ndarray]:
        return {f"{op.node.name}.{k}": v for op in self.ops for k, v in op.params.items()}

    def grads(self) -> dict[str, np.ndarray]:
        return {f"{op.node.name}.{k}": v for op in self.ops for k, v in op.grads.items()}

    def buffers(self) -> dict[str, np.ndarray]:
        return {f"{op.node.name}.{k}": v for op in self.ops for k, v in op.buffers.items()}

    def buffer_names(self) -> list[str]:
        return list(self.buffers())

    # -- running

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """x: (N, C, H, W) batch. Returns (N, outputs) or (N, C, H, W) for a map-shaped output."""
        x = np.asarray(x)
        expected = self.spec.input
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise UserError(f"the model takes batches of shape (N, {', '.join(map(str, expected))}), "
                            f"got {tuple(x.shape)}", None)
        return self.to_user(self.forward_internal(self.to_internal(x), train))

    def to_internal(self, x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) -> the engine's (C, H, W, N), in the model's dtype."""
        return np.ascontiguousarray(np.asarray(x).transpose(1, 2, 3, 0), dtype=self.dtype)

    def forward_internal(self, x: np.ndarray, train: bool, tap=None) -> np.ndarray:
        """x and the result in the engine's (C, H, W, N) layout. `tap(index, y)`, when given, sees
        each node's output and returns what the next layers get (`cnn gradcheck` nudges values)."""
        def forward(op, xs):
            mode = train and not (op.buffers and op.node.name in self.frozen)  # frozen BN: running statistics
            return op.forward(xs, mode, self.rng)

        if train and self.fused and x.shape[3] > self._reserved_batch:
            # the workspace a training step needs, as the memory estimate counts it (spec/memory.py)
            per_layer = memory_estimate.layers(self.spec, x.shape[3], workers())
            scale = self.dtype.itemsize / memory_estimate.BYTES_PER_VALUE
            self.workspace.reserve({k: int(v * scale) for k, v in memory_estimate.shared_workspace(per_layer).items()})
            self._reserved_batch = x.shape[3]
        return self._run(x, forward, inferred=False, tap=tap)

    def infer_internal(self, x: np.ndarray) -> np.ndarray:
        """forward_internal(x, train=False) for a pass that no backward follows (evaluation,
        prediction, benchmarks): each conv applies the batch norm after it (folded into its filters)
        and that norm's activation, so the norm's pass over memory is saved. The folded layers'
        own outputs are not computed, so a backward after this is refused."""
        return self._run(x, lambda op, xs: op.infer(xs, self.rng), inferred=True)

    def _run(self, x: np.ndarray, call, inferred: bool, tap=None) -> np.ndarray:
        outputs = self._outputs = []
        timer = self.timer
        self._inferred = inferred
        for op in self.ops:
            xs = [x if i == INPUT else outputs[i] for i in op.node.inputs]
            y = call(op, xs) if timer is None else timer(op, "forward", lambda: call(op, xs))
            outputs.append(y if tap is None else tap(op.node.index, y))
        return outputs[self.spec.output_node]

    def backward(self, dy: np.ndarray, input_grad: bool = False) -> np.ndarray | None:
        """dy: the gradient of the loss for forward's result (same shape). Fills grads();
        returns the input gradient (N, C, H, W) when input_grad is set."""
        dy = np.asarray(dy, dtype=self.dtype)
        out = self._outputs[self.spec.output_node]
        internal = np.ascontiguousarray(self.from_user(dy, out.shape))
        dx = self.backward_internal(internal, input_grad)
        return None if dx is None else np.ascontiguousarray(dx.transpose(3, 0, 1, 2))

    def backward_internal(self, dy: np.ndarray, input_grad: bool = False, start: int | None = None,
                          seen: dict[int, np.ndarray] | None = None) -> np.ndarray | None:
        """Backward from node `start` (default: the output node), whose output gradient is dy.
        `seen`, when given, receives a copy of the gradient arriving at each node's output."""
        if self._inferred:
            raise RuntimeError("backward after infer_internal: run forward_internal for a pass with a backward")
        start = self.spec.output_node if start is None else start
        plan = self._gradient_plan(start, input_grad)
        self.gradient_space.reserve({f"slot{i}": size * dy.shape[-1] * self.dtype.itemsize
                                     for i, size in enumerate(plan.sizes)})
        grads: dict[int, np.ndarray] = {start: dy}
        owned: set[int] = set()
        timer = self.timer
        for op in reversed(self.ops):
            index = op.node.index
            g = grads.pop(index, None)
            if g is None:  # this node does not reach the output
                for v in op.grads.values():
                    v[...] = 0
                continue
            if seen is not None:
                seen[index] = g.copy()
            need = [i != INPUT or input_grad for i in op.node.inputs]
            if timer is None:
                dxs = op.backward(g, need)
            else:
                dxs = timer(op, "backward", lambda: op.backward(g, need))
            for i, dx in zip(op.node.inputs, dxs):
                if dx is None:
                    continue
                if i not in grads:
                    grads[i] = dx
                elif i in owned:
                    add_arrays(grads[i], dx, grads[i])
                else:  # a second consumer: sum into a slot of our own, never into an op's array
                    acc = self.gradient_space.get(f"slot{plan.sums[i]}", dx.shape, self.dtype)
                    add_arrays(grads[i], dx, acc)
                    grads[i] = acc
                    owned.add(i)
        return grads.get(INPUT)

    def _gradient_plan(self, start: int, input_grad: bool) -> GradientPlan:
        """The slots of a backward from `start` (planned once per start), handed to the ops."""
        key = (start, input_grad)
        plan = self._gradient_plans.get(key)
        if plan is None:
            plan = self._gradient_plans[key] = backward_plan(self.spec, start, input_grad, self.fused)
        if plan is not self._planned:
            for op in self.ops:
                op.gradients = self.gradient_space
                op.gradient_slots = plan.slots.get(op.node.index, {})
            self._planned = plan
        return plan

    @property
    def logits_node(self) -> int:
        """The node whose output a classification loss takes: a final softmax is folded into the
        loss (fused log-sum-exp), as Keras does with from_logits."""
        return self.spec.logits_node

    def output_of(self, index: int) -> np.ndarray:
        return self._outputs[index]

    def to_user(self, y: np.ndarray) -> np.ndarray:
        """(C, H, W, N) -> (N, C), or (N, C, H, W) for a network that ends in a feature map."""
        c, h, w, n = y.shape
        if h == 1 and w == 1:
            return np.ascontiguousarray(y.reshape(c, n).T)
        return np.ascontiguousarray(y.transpose(3, 0, 1, 2))

    def from_user(self, dy: np.ndarray, internal_shape) -> np.ndarray:
        c, h, w, n = internal_shape
        if dy.ndim == 2:
            return dy.T.reshape(c, 1, 1, n)
        return dy.transpose(1, 2, 3, 0)
