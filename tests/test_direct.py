"""Direct convolution (cnncli/ops/direct.py): the same convolution as im2col + GEMM, forward and
both gradients, on whichever threads; a hand-computed example; which convs take it."""

from __future__ import annotations

import numpy as np
import pytest

from cnncli.layers.conv import Conv
from cnncli.model import Model
from cnncli.ops import direct, threads
from cnncli.ops.conv import ConvOp
from cnncli.spec import load, loads, workspace
from tests.helpers import ARCHITECTURES, forward_backward


def conv_paths(m: Model) -> list[str]:
    return ["winograd" if op.winograd else "direct" if op.direct else "im2col" for op in m.ops if isinstance(op, ConvOp)]


CHAINS = [  # taps per filter 25, 150, 50, 27 and 48, filters 5, 3 and 2: every remainder of the four-at-a-time loops
    ("conv k=6 f=5 -> tanh -> avgpool 2 -> conv k=5 f=5 -> tanh -> fc 3", "1x16x16", ["direct", "direct"]),
    ("conv k=4 f=5 p=2 -> relu -> conv k=3 f=3x5 p=2x1 d=2 -> fc 2", "2x9x11", ["direct", "direct"]),
    ("conv k=5 f=3 p=same -> bn -> relu -> conv k=3 f=4 p=same bias=false -> fc 2", "3x8x7", ["direct", "direct"]),
    ("conv k=3 f=4 p=same bias=false -> conv k=2 f=2 p=3 -> fc 2", "3x5x6", ["direct", "direct"]),
]


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("chain,input,paths", CHAINS)
def test_direct_equals_im2col_in_float64(monkeypatch, chain, input, paths, workers):
    monkeypatch.setattr(threads, "_threads", workers)
    monkeypatch.setattr(workspace, "DIRECT_SPLIT_MACS", 1)  # split even these small passes
    spec = loads(f"input: {input}\nnet: {chain}\n")
    fast, plain = Model(spec, np.float64, seed=2), Model(spec, np.float64, seed=2)
    assert conv_paths(fast) == paths
    for op in plain.ops:
        if isinstance(op, ConvOp):
            op.direct = None
    assert "direct" not in conv_paths(plain)
    x = np.random.default_rng(0).normal(0, 1, (5, *map(int, input.split("x"))))
    y, dx, grads, dy = forward_backward(fast, x)
    y0, dx0, grads0, _ = forward_backward(plain, x, dy)
    np.testing.assert_allclose(y, y0, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, dx0, rtol=1e-12, atol=1e-12)
    for name in grads0:
        np.testing.assert_allclose(grads[name], grads0[name], rtol=1e-12, atol=1e-12, err_msg=name)


def test_float32_is_within_1e_5_of_float64():
    spec = loads("input: 1x28x28\nnet: conv k=6 f=5 p=2 -> relu -> conv k=16 f=5 -> fc 10\n")
    m32, m64 = Model(spec, np.float32, seed=1), Model(spec, np.float64, seed=1)
    assert conv_paths(m32) == ["direct", "direct"]
    x = np.random.default_rng(0).normal(0, 1, (8, 1, 28, 28))
    for a, b in zip(forward_backward(m32, x)[:2], forward_backward(m64, x)[:2]):
        assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()


def test_a_convolution_by_hand():
    """Input 1..9 in a 3x3 grid, filter [[1, 0], [0, -1]], bias 0.5: every output is a value less the
    one diagonally below it (-4) plus 0.5. The gradient of output (0, 0) reaches the input through
    the filter, and the filter through the input's top-left window."""
    spec = loads("input: 1x3x3\nnet: conv k=1 f=2 -> flatten\n")
    m = Model(spec, np.float64, seed=0)
    assert conv_paths(m) == ["direct"]
    m.params()["conv1.weight"][...] = np.array([[[[1, 0], [0, -1]]]])
    m.params()["conv1.bias"][...] = 0.5
    x = np.arange(1, 10, dtype=np.float64).reshape(1, 1, 3, 3)
    assert m.forward(x, train=True).tolist() == [[-3.5, -3.5, -3.5, -3.5]]
    dx = m.backward(np.array([[1.0, 0, 0, 0]]), input_grad=True)
    assert dx.reshape(3, 3).tolist() == [[1, 0, 0], [0, -1, 0], [0, 0, 0]]
    assert m.grads()["conv1.weight"].reshape(2, 2).tolist() == [[1, 2], [4, 5]]


def test_pad_into_pads_and_crops():
    x = np.arange(1, 7, dtype=np.float32).reshape(1, 2, 3, 1)
    padded = np.full((1, 4, 4, 1), 9, np.float32)
    direct.pad_into(x, 1, 0, padded)
    assert padded[0, :, :, 0].tolist() == [[0, 0, 0, 0], [1, 2, 3, 0], [4, 5, 6, 0], [0, 0, 0, 0]]
    cropped = np.empty((1, 2, 2, 1), np.float32)
    direct.pad_into(padded, -1, -1, cropped)
    assert cropped[0, :, :, 0].tolist() == [[2, 3], [5, 6]]


@pytest.mark.parametrize("act", ["relu", "relu6"])
def test_infer_folds_batch_norm_and_activation_into_a_direct_conv(act):
    m = Model(loads(f"input: 1x8x8\nnet: conv k=4 f=5 p=2 -> bn -> {act} -> fc 3\n"), np.float64, seed=3)
    rng = np.random.default_rng(4)
    for name, value in m.buffers().items():
        value[...] = rng.uniform(0.5, 2, value.shape) if name.endswith("var") else rng.normal(0, 1, value.shape)
    m.params()["bn1.bias"][...] = rng.normal(3, 2, 4)  # so that relu6 clips some values at 6
    assert conv_paths(m) == ["direct"] and m.ops[0].fold is not None
    x = m.to_internal(rng.normal(0, 3, (5, 1, 8, 8)))
    expected = m.forward_internal(x, train=False).copy()
    np.testing.assert_allclose(m.infer_internal(x), expected, rtol=1e-12, atol=1e-12)


def test_which_convs_run_directly():
    """The first convs of LeNet-5, the tutorial net and ResNet-20, and LeNet-5's second; not VGG's
    first (64 filters), strided, 1x1 or Winograd convs."""
    def direct_convs(name):
        spec = load(ARCHITECTURES / f"{name}.yaml")
        return [n.name for n in spec.nodes if n.kind is Conv
                and workspace.uses_direct(n.info.window, n.info.groups, n.in_shapes[0][0], n.shape[0])]
    assert direct_convs("lenet-5") == ["conv1", "conv2"]
    assert direct_convs("fashion-tutorial") == ["conv1"]
    assert direct_convs("resnet-20-cifar") == ["conv1"]
    assert direct_convs("vgg-16") == [] and direct_convs("mobilenet-v2") == []
