"""The training-memory estimate `cnn shapes` prints is what the engine allocates: layer by layer for
every layer kind (exactly), and in total under tracemalloc for ResNet-20 at batch 64 (issue 14: within 10%)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from cnncli import model as model_module
from cnncli.bench import random_training
from cnncli.model import Model
from cnncli.ops import threads
from cnncli.spec import backward, load, loads, memory, workspace
from tests.helpers import ARCHITECTURES


def train(spec, batch: int, steps: int = 2):
    model, step, x, target = random_training(spec, batch)
    for _ in range(steps):
        step(x, target)
    return model, step


# Together these use every layer kind, each fusion, every conv path (im2col, 1x1, grouped, direct with
# and without padding, Winograd F(2x2) and F(4x4) with whole and cut tiles), a final softmax, a regression loss and layers that
# read the network's input (no input gradient).
NETWORKS = [
    "input: 3x9x9\nclasses: 4\nnet: conv k=4 f=3 p=1 -> bn -> relu -> conv k=6 f=3 s=2 p=1 -> bn -> relu6 -> "
    "pool 2 -> conv k=5 f=1 -> bn affine=false -> lrelu -> conv k=5 f=3 g=5 p=1 -> gap -> dropout 0.5 -> fc 4 -> softmax\n",
    "input: 2x8x8\nclasses: 3\nnet: conv k=4 f=3 p=1 -> bn -> relu -> pool 2 -> add(conv k=4 f=3 p=1 -> bn | id) -> relu "
    "-> cat(conv k=2 f=1 -> sigmoid | avgpool 3 s=1 p=1 | l2pool 3 s=1 p=1) -> lrn 3 -> "
    "mul(id | gap -> conv k=10 f=1 -> hardsigmoid) -> shortcut k=12 s=2 -> gmp -> fc 3\n",
    "input: 3x10x7\noutput: 6\nnet: conv k=3 f=3 -> bn -> tanh -> conv k=4 f=3 p=1 -> silu -> conv k=2 f=2 d=2 "
    "-> dropout 0 -> flatten -> fc 6\n",
    "input: 3x12x12\nclasses: 2\nnet: conv k=8 f=3 p=1 -> relu -> add(conv k=8 f=3 p=1 -> elu | id) -> gelu -> "
    "conv k=4 f=3 -> hardswish -> conv k=2 f=3 g=2 s=2 -> relu -> fc 2\n",
]


@pytest.mark.parametrize("grouped", [False, True])  # True: runs of one tile, the weight gradient summed per group of runs
@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("text", NETWORKS)
def test_every_layer_holds_what_the_estimate_counts(monkeypatch, text, workers, grouped):
    monkeypatch.setattr(threads, "_threads", workers)
    if grouped:
        monkeypatch.setattr(workspace, "WINOGRAD_CHUNK_VALUES", 1)
        monkeypatch.setattr(workspace, "WINOGRAD_SUM_VALUES", 1)
    spec = loads(text)
    model, step = train(spec, 5)
    per_layer = memory.layers(spec, 5, workers)
    for op, counted in zip(model.ops, per_layer):
        held = sum(a.nbytes for a in op._scratch.values())
        assert held == counted.kept, (op.node.name, {k: a.nbytes for k, a in op._scratch.items()})
    assert model.workspace.sizes() == memory.shared_workspace(per_layer)
    assert list(model.gradient_space.sizes().values()) == memory.gradient_slots(spec, 5)
    estimate = spec.memory(5, workers)
    held = (model.flat_params.nbytes + model.flat_grads.nbytes + sum(v.nbytes for v in step.optimizer.state.values())
            + sum(a.nbytes for a in model.buffers().values()) + sum(a.nbytes for op in model.ops for a in op._scratch.values())
            + model.workspace.nbytes + model.gradient_space.nbytes + step.loss._grad.nbytes)
    assert held == estimate["total"]


def test_workspace_and_gradients_are_shared_not_summed_over_layers(monkeypatch):
    """Four equal convs need one conv's temporaries and, in a chain, two gradient slots taking turns."""
    monkeypatch.setattr(threads, "_threads", 2)
    conv = "conv k=40 f=3 d=2 p=2"  # dilated (not Winograd), 40 filters on 40 channels (not direct): im2col
    one = loads(f"input: 40x6x6\nclasses: 2\nnet: {conv} -> {conv} -> fc 2\n")
    three = loads(f"input: 40x6x6\nclasses: 2\nnet: {conv} -> {conv} -> {conv} -> {conv} -> fc 2\n")
    small, _ = train(one, 8)
    big, _ = train(three, 8)
    assert big.workspace.sizes() == small.workspace.sizes() == memory.shared_workspace(memory.layers(three, 8, 2))
    assert {"cols0", "cols1", "dcols0", "dcols1", "dx1"} <= small.workspace.sizes().keys()
    assert all(op._scratch.keys() == {"out"} for op in big.ops)  # gradients live in the model's slots
    grown = three.memory(8, 2)["total"] - one.memory(8, 2)["total"]
    params = 40 * 40 * 9 + 40
    # two more convs: weights, gradients and Adam's two moments, and an output each; nothing else grows
    assert grown == 2 * (4 * params * 4 + 40 * 36 * 8 * 4)
    assert big.gradient_space.sizes() == small.gradient_space.sizes() == {"slot0": 40 * 36 * 8 * 4, "slot1": 40 * 36 * 8 * 4}


def test_estimate_is_within_ten_percent_of_what_resnet20_allocates_at_batch_64():
    spec = load(ARCHITECTURES / "resnet-20-cifar.yaml")
    train(spec, 2, 1)  # loads the kernels first: their bookkeeping is not the network's memory
    tracemalloc.start()
    try:
        train(spec, 64)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    estimate = spec.memory(64, threads.workers())["total"]
    assert abs(peak / estimate - 1) <= 0.10, (peak, estimate)


def test_gradient_slots_of_a_residual_block_counted_by_hand():
    spec = loads("input: 2x4x4\nclasses: 3\n"
                 "net: conv k=2 f=3 p=1 -> relu -> add(conv k=2 f=3 p=1 | id) -> relu -> fc 3\n")
    plan = backward.plan(spec, memory.loss_node(spec))
    # fc1 writes relu2's gradient (slot 0); add1, which applies relu2, masks it into slot 1 and passes
    # that to both its inputs; conv2 writes relu1's into slot 0 (free again), which the model sums
    # with add1's into slot 2 (the others are busy); relu1 writes conv1's into the then free slot 1.
    assert plan.slots == {5: {0: 0}, 3: {0: 1}, 2: {0: 0}, 1: {0: 1}}
    assert plan.sums == {1: 2}
    assert plan.sizes == [32, 32, 32]  # five gradients, three arrays


def _one_slot_each(spec, start, input_grad=False, fused=True):
    """The plan with every gradient in a slot of its own: nothing shared."""
    shared = backward.plan(spec, start, input_grad, fused)
    fresh = backward.GradientPlan()
    for node, positions in shared.slots.items():
        fresh.slots[node] = {position: len(fresh.sizes) + k for k, position in enumerate(positions)}
        fresh.sizes += [0] * len(positions)
    for node in shared.sums:
        fresh.sums[node] = len(fresh.sizes)
        fresh.sizes.append(0)
    return fresh


BRANCHY = ("input: 4x6x6\nclasses: 3\nnet: conv k=8 f=3 p=1 -> bn -> relu -> "
           "add(conv k=8 f=3 p=1 -> bn | id | conv k=8 f=1) -> relu -> "
           "cat(conv k=4 f=3 p=1 -> relu -> dropout 0.5 | avgpool 3 s=1 p=1 -> dropout 0) -> "
           "mul(id | gap -> conv k=12 f=1 -> sigmoid) -> shortcut k=24 s=2 -> add(id | relu) -> flatten -> fc 3\n")
CHAIN = "input: 4x6x6\nclasses: 3\nnet: conv k=4 f=3 p=1 -> conv k=4 f=3 p=1 -> dropout 0.5 -> fc 3\n"


@pytest.mark.parametrize("text, fuse, train", [(BRANCHY, True, True), (BRANCHY, False, True), (BRANCHY, True, False),
                                               (CHAIN, True, False)])
def test_shared_gradient_slots_change_no_gradient(monkeypatch, text, fuse, train):
    """Also in evaluation mode, where dropout is the identity (and must still write its own slot:
    passing its incoming one on would let the conv before it write its input gradient over its dy)."""
    spec = loads(text)
    x = np.random.default_rng(0).normal(size=(5, 4, 6, 6))
    dy = np.random.default_rng(1).normal(size=(5, 3))
    results = []
    for planner in (backward.plan, _one_slot_each):
        monkeypatch.setattr(model_module, "backward_plan", planner)
        model = Model(spec, np.float64, seed=1, fuse=fuse)
        model.forward(x, train=train)
        dx = model.backward(dy, input_grad=True)
        results.append((dx, model.flat_grads.copy(), len(model.gradient_space.sizes())))
    (dx, grads, shared), (dx_alone, grads_alone, alone) = results
    np.testing.assert_array_equal(dx, dx_alone)
    np.testing.assert_array_equal(grads, grads_alone)
    assert shared < alone


def test_split_extent_and_runs_are_the_plan_without_listing_it():
    for n in range(0, 40):
        for chunk in (1, 2, 3, 7, 50):
            for workers in (1, 2, 3, 4):
                plan = workspace.split_work(n, chunk, workers)
                longest = max((b - a for runs in plan for a, b in runs), default=0)
                assert workspace.split_extent(n, chunk, workers) == (len(plan), longest), (n, chunk, workers)
                assert workspace.split_runs(n, chunk, workers) == sum(map(len, plan)), (n, chunk, workers)
    assert workspace.split_extent(10**12, 3, 2) == (2, 3)  # a network far too big to run is still counted
