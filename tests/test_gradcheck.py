"""Finite-difference checks in float64 of every layer kind and option, and of whole small networks."""

from __future__ import annotations

import numpy as np
import pytest

from cnncli.gradcheck import check
from cnncli.spec import loads

TOLERANCE = 1e-5

CASES = {
    # convolution
    "conv": ("2x7x7", "conv k=3 f=3"),
    "conv stride pad": ("2x7x7", "conv k=3 f=3 s=2 p=1"),
    "conv dilation": ("2x9x9", "conv k=2 f=3 d=2 p=1"),
    "conv rectangular": ("2x7x8", "conv k=3 f=3x2 s=2x1 p=1x0"),
    "conv same stride 2": ("2x7x7", "conv k=2 f=4 s=2 p=same"),
    "conv no bias": ("2x5x5", "conv k=2 f=3 bias=false"),
    "conv pointwise": ("3x4x4", "conv k=2 f=1"),
    "conv groups": ("4x6x6", "conv k=6 f=3 g=2 p=1"),
    "conv depthwise": ("3x6x6", "conv f=3 g=dw s=2 p=1"),
    "conv depthwise multiplier no bias": ("2x5x5", "conv k=4 f=3 g=dw bias=false"),
    # pooling
    "max pool": ("2x6x6", "pool 2"),
    "max pool overlapping": ("2x7x7", "pool 3 s=2"),
    "max pool padded ceil": ("2x6x6", "pool 3 s=2 p=1 ceil=true"),
    "avg pool": ("2x6x6", "avgpool 2"),
    "avg pool padded ceil": ("2x7x7", "avgpool 3 s=2 p=1 ceil=true"),
    "avg pool same": ("2x5x5", "avgpool 2 s=2 p=same"),
    "l2 pool": ("2x6x6", "l2pool 2"),
    "l2 pool overlapping padded": ("2x7x7", "l2pool 3 s=2 p=1"),
    "global avg pool": ("3x4x5", "gap"),
    "global max pool": ("3x4x5", "gmp"),
    # normalisation
    "batch norm": ("3x4x4", "bn"),
    "batch norm no affine": ("3x4x4", "bn affine=false"),
    "batch norm flat": ("3x2x2", "fc 5 -> bn"),
    "lrn": ("6x3x3", "lrn 3 alpha=0.1 beta=0.75 k=2"),
    "lrn even size": ("5x3x3", "lrn 4 alpha=0.5"),
    # activations
    "relu": ("2x4x4", "relu"),
    "relu6": ("2x4x4", "relu6"),
    "leaky relu": ("2x4x4", "lrelu 0.1"),
    "elu": ("2x4x4", "elu 0.7"),
    "sigmoid": ("2x4x4", "sigmoid"),
    "tanh": ("2x4x4", "tanh"),
    "silu": ("2x4x4", "silu"),
    "hardsigmoid": ("2x4x4", "conv k=2 f=1 -> hardsigmoid"),
    "hardswish": ("2x4x4", "conv k=2 f=1 -> hardswish"),
    "gelu": ("2x4x4", "gelu"),
    "softmax": ("2x3x3", "fc 5 -> softmax"),
    "softmax over map channels": ("3x3x3", "softmax"),
    "dropout": ("2x4x4", "dropout 0.3"),
    # dense
    "fc on map": ("2x3x3", "fc 4"),
    "fc no bias": ("5x1x1", "fc 3 bias=false"),
    "flatten": ("2x3x3", "flatten -> fc 3"),
    # merges
    "add identity": ("2x5x5", "add(conv k=2 f=3 p=1 | id)"),
    "add projection": ("2x6x6", "add(conv k=3 f=3 s=2 p=1 | conv k=3 f=1 s=2)"),
    "add three": ("2x4x4", "add(relu | tanh | id)"),
    "cat": ("2x5x5", "cat(conv k=2 f=3 p=1 | id | pool 3 s=1 p=1)"),
    "mul same shape": ("2x4x4", "mul(conv k=2 f=1 | tanh)"),
    "mul channel scale": ("3x4x4", "mul(id | gap -> conv k=2 f=1 -> relu -> conv k=3 f=1 -> sigmoid)"),
    "se block": ("4x4x4", "se(4, 2, act=silu, gate=hardsigmoid)"),
    "mul three": ("2x3x3", "mul(tanh | gap -> sigmoid | id)"),
    "shortcut": ("2x6x6", "add(conv k=4 f=3 s=2 p=1 | shortcut k=4 s=2)"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_backward_matches_finite_differences(case):
    shape, chain = CASES[case]
    spec = loads(f"input: {shape}\nnet: {chain}\n")
    results = check(spec, batch=3, entries=10)
    for r in results:
        assert r.checked > 0
        assert r.worst < TOLERANCE, f"{case}: {r.name} worst {r.worst:.2e} at {r.worst_where}"


def test_batch_norm_eval_mode_backward():
    spec = loads("input: 3x4x4\nnet: bn\n")
    for r in check(spec, batch=3, entries=10, train=False):
        assert r.worst < TOLERANCE


def test_whole_network_with_residuals_and_concatenation():
    spec = loads(
        "input: 3x8x8\n"
        "blocks:\n"
        "  res(k): add(conv k=$k f=3 p=1 -> bn -> relu -> conv k=$k f=3 p=1 -> bn | id) -> relu\n"
        "net: conv k=4 f=3 p=1 -> bn -> relu -> res(4) -> cat(conv k=2 f=1 | conv k=2 f=3 p=1 -> elu | pool 3 s=1 p=1)"
        " -> avgpool 2 -> add(conv k=8 f=3 s=2 p=1 | shortcut k=8 s=2) -> gap -> fc 5 -> softmax\n")
    results = check(spec, batch=2, entries=6)
    assert len(results) == len(spec.nodes)
    assert max(r.worst for r in results) < TOLERANCE


# Every bn reads a conv: in eval mode a bn after a relu would pass exact zeros to the next relu,
# whose kink finite differences cannot measure.
FUSABLE = ("input: 3x6x6\nnet: conv k=4 f=3 p=1 -> bn -> relu -> conv k=4 f=3 p=1 -> bn -> relu6 -> conv k=4 f=1 "
           "-> add(conv k=4 f=3 p=1 | id) -> relu -> add(conv k=4 f=1 | id | tanh) -> relu6 "
           "-> add(bn -> relu | id) -> conv k=4 f=3 p=1 -> bn -> relu -> pool 2 -> conv k=3 f=1 -> bn -> relu6 "
           "-> pool 3 s=1 p=1 -> fc 3\n")


@pytest.mark.parametrize("train", [True, False])
def test_fused_batch_norm_activation_backward(train):
    results = check(loads(FUSABLE), batch=3, entries=10, fuse=True, train=train)
    assert max(r.worst for r in results) < TOLERANCE


def test_fusion_changes_nothing_but_speed():
    import numpy as np

    from cnncli.model import Model

    spec = loads(FUSABLE)
    fused, plain = Model(spec, np.float64, seed=1), Model(spec, np.float64, seed=1, fuse=False)
    kinds = [type(op).__name__ for op in fused.ops]
    assert kinds.count("Fused") == 9 and kinds.count("BatchNormActPoolOp") == 2
    assert [op.act for op in fused.ops if type(op).__name__ == "AddOp"] == [1, 2, 0]  # relu, relu6, none
    x = np.random.default_rng(0).normal(0, 1, (4, 3, 6, 6))
    for train in (True, False):
        np.testing.assert_allclose(fused.forward(x, train), plain.forward(x, train), rtol=1e-12)
        dy = np.random.default_rng(1).normal(0, 1, (4, 3))
        np.testing.assert_allclose(fused.backward(dy, True), plain.backward(dy, True), rtol=1e-10, atol=1e-12)
        for name, g in fused.grads().items():
            np.testing.assert_allclose(g, plain.grad(name), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("act, high", [("relu", np.inf), ("relu6", 6.0)])
def test_fused_batch_norm_backward_masks_where_forward_clamped_without_reading_its_output(act, high):
    """A fused bn's backward judges its activation's mask from x with forward's own float32
    arithmetic: its gradient equals the textbook one masked by the output forward wrote, even with
    that output overwritten before the backward."""
    from cnncli.model import Model
    from cnncli.ops.norm import BatchNormOp

    spec = loads(f"input: 3x6x6\nclasses: 2\nnet: conv k=4 f=3 p=1 -> bn -> {act} -> gap -> fc 2\n")
    model = Model(spec, np.float32, seed=3)
    x = np.random.default_rng(0).normal(0, 4, (3, 6, 6, 5)).astype(np.float32)
    model.forward_internal(x, train=True)
    bn = next(op for op in model.ops if isinstance(op, BatchNormOp))
    y = model.output_of(bn.node.index)
    live = (y > 0) & (y < high)
    assert 0.2 < live.mean() < 0.8
    y[...] = np.nan  # not read by the backward
    dy = np.random.default_rng(1).normal(0, 1, y.shape).astype(np.float32)
    (dx,) = bn.backward(dy, [True])
    c = y.shape[0]
    g = np.where(live, dy, 0).astype(np.float64).reshape(c, -1)
    xc = bn.x.astype(np.float64).reshape(c, -1)
    xhat = (xc - bn.mean[:, None]) * bn.invstd[:, None]
    gamma = bn.params["weight"].astype(np.float64)[:, None]
    want = gamma * bn.invstd[:, None] * (g - g.mean(1, keepdims=True) - xhat * (g * xhat).mean(1, keepdims=True))
    np.testing.assert_allclose(dx.reshape(c, -1), want, rtol=1e-4, atol=1e-5)


def test_a_wrong_backward_is_blamed_on_its_layer(monkeypatch):
    """The check runs the model's own forward and backward loops; a layer whose backward is off
    by 5% fails at its input gradient while the layer after it passes (the layers before it see
    the wrong gradient arrive at their output)."""
    from cnncli.ops.activation import ActivationOp

    right = ActivationOp.backward

    def wrong(self, dy, need):
        return [g * 1.05 for g in right(self, dy, need)]

    monkeypatch.setattr(ActivationOp, "backward", wrong)
    results = {r.name: r for r in check(loads("input: 2x5x5\nnet: conv k=3 f=3 -> tanh -> fc 4\n"), entries=6)}
    assert 0.04 < results["tanh1"].worst < 0.06 and results["tanh1"].worst_where.startswith("d/d conv1")
    assert results["fc1"].worst < TOLERANCE
