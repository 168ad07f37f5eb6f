"""Winograd F(2x2, 3x3): the same convolution as im2col + GEMM, forward and both gradients."""

from __future__ import annotations

import numpy as np
import pytest

from cnncli.model import Model
from cnncli.ops import threads, winograd
from cnncli.spec import loads


def pair(chain: str, input: str, dtype=np.float64, seed: int = 2) -> tuple[Model, Model]:
    """The same network twice: with Winograd and with every conv on the im2col path."""
    spec = loads(f"input: {input}\nnet: {chain}\n")
    fast, plain = Model(spec, dtype, seed), Model(spec, np.float64, seed)
    assert any(getattr(op, "winograd", None) is not None for op in fast.ops)
    for op in plain.ops:
        if getattr(op, "winograd", None) is not None:
            op.winograd = None
    return fast, plain


def run(m: Model, x, dy=None):
    y = m.forward(x, train=True)
    if dy is None:
        dy = np.random.default_rng(1).normal(0, 1, y.shape)
    dx = m.backward(dy, input_grad=True)
    return y, dx, m.grads(), dy


@pytest.mark.parametrize("chain,input", [
    ("conv k=3 f=3 p=1", "2x8x8"),     # even output: whole tiles
    ("conv k=4 f=3 p=1", "3x7x5"),     # odd output: the last tiles are cut
    ("conv k=2 f=3", "2x6x9"),         # no padding
    ("conv k=3 f=3 p=2 bias=false", "1x5x4"),  # padding 2: the input gradient needs none
    ("conv k=5 f=3 p=same", "4x6x6"),
])
@pytest.mark.parametrize("chunk_tiles", [1, 3, 1000])
@pytest.mark.parametrize("workers", [1, 2])
def test_winograd_equals_im2col_in_float64(monkeypatch, chain, input, chunk_tiles, workers):
    c = int(input.split("x")[0])
    fast, plain = pair(chain, input)
    k = fast.ops[0].filters
    monkeypatch.setattr(winograd, "CHUNK_VALUES", chunk_tiles * 16 * (c + k) * 3)  # `chunk_tiles` tiles of 3 samples
    monkeypatch.setattr(threads, "_threads", workers)
    x = np.random.default_rng(0).normal(0, 1, (3, *map(int, input.split("x"))))
    y, dx, grads, dy = run(plain, x)
    y2, dx2, grads2, _ = run(fast, x, dy)
    np.testing.assert_allclose(y2, y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx2, dx, rtol=1e-12, atol=1e-12)
    for name, g in grads.items():
        np.testing.assert_allclose(grads2[name], g, rtol=1e-12, atol=1e-12, err_msg=name)


def test_winograd_float32_is_within_1e_4_of_float64():
    """Realistic magnitudes: 64 channels, He-initialised filters, unit-normal inputs, a batch of 16."""
    chain = "conv k=64 f=3 p=1 init=he_normal -> conv k=64 f=3 p=1 init=he_normal"
    fast, plain = pair(chain, "64x8x8", np.float32)
    for name, value in plain.params().items():
        fast.set_param(name, value)
    x = np.random.default_rng(0).normal(0, 1, (16, 64, 8, 8))
    y, dx, grads, dy = run(plain, x)
    y2, dx2, grads2, _ = run(fast, x.astype(np.float32), dy.astype(np.float32))

    def relative(a, b):
        return np.abs(a - b).max() / np.abs(b).max()

    assert relative(y2, y) < 1e-4 and relative(dx2, dx) < 1e-4
    for name, g in grads.items():
        assert relative(grads2[name], g) < 1e-4, name


def test_filter_transform_and_its_adjoint():
    """<transform_filters(w), du> = <w, filter_gradient(du)>: the weight gradient is the true adjoint."""
    rng = np.random.default_rng(0)
    w, du = rng.normal(size=(3, 2, 3, 3)), rng.normal(size=(16, 3, 2))
    u = winograd.transform_filters(w, np.empty((16, 3, 2)))
    back = np.empty_like(w)
    winograd.filter_gradient(du, back)
    assert np.isclose(np.sum(u * du), np.sum(w * back), rtol=1e-12)
    # a 3x3 filter that is 1 in its centre keeps its value at the 4 central tile positions
    centre = np.zeros((1, 1, 3, 3))
    centre[0, 0, 1, 1] = 1
    u = winograd.transform_filters(centre, np.empty((16, 1, 1))).reshape(4, 4)
    np.testing.assert_array_equal(u, np.outer([0, 0.5, -0.5, 0], [0, 0.5, -0.5, 0]))


def test_which_convs_use_winograd():
    assert winograd.applies((3, 3), (1, 1), (1, 1), 1)
    assert not winograd.applies((3, 3), (2, 2), (1, 1), 1)
    assert not winograd.applies((5, 5), (1, 1), (1, 1), 1)
    assert not winograd.applies((3, 3), (1, 1), (2, 2), 1)
    assert not winograd.applies((3, 3), (1, 1), (1, 1), 4)


# -- the inference path: a batch norm folded into the conv before it


@pytest.mark.parametrize("chain,input", [
    ("conv k=4 f=3 p=1 bias=false -> bn -> relu -> conv k=3 f=3 s=2 p=1 -> bn -> fc 3", "2x8x8"),  # winograd, im2col
    ("conv k=4 f=1 -> bn -> relu6 -> conv f=3 p=1 g=dw -> bn -> relu6 -> gap", "3x6x6"),  # pointwise, depthwise
    ("conv k=4 f=3 p=1 -> bn -> relu -> pool 2 -> conv k=2 f=5 p=2 -> bn -> relu", "2x8x8"),  # bn+pool is not folded
])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_infer_folds_batch_norm_into_the_conv_with_the_same_result(chain, input, dtype, tol):
    m = Model(loads(f"input: {input}\nnet: {chain}\n"), dtype, seed=3)
    rng = np.random.default_rng(4)
    for name, value in m.buffers().items():  # trained-looking running statistics
        value[...] = rng.uniform(0.5, 2, value.shape) if name.endswith("var") else rng.normal(0, 1, value.shape)
    for name, value in m.params().items():
        if name.startswith("bn"):
            value[...] = rng.normal(1 if name.endswith("weight") else 0, 0.5, value.shape)
    folded = [op for op in m.ops if getattr(op, "fold", None) is not None]
    assert len(folded) == (1 if "pool" in chain else 2)
    x = m.to_internal(rng.normal(0, 1, (5, *map(int, input.split("x")))))
    expected = m.forward_internal(x, train=False).copy()
    got = m.infer_internal(x)
    assert np.abs(got - expected).max() <= tol * np.abs(expected).max()
    with pytest.raises(RuntimeError, match="backward after infer"):
        m.backward_internal(np.ones_like(got))
