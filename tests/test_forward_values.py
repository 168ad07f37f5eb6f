"""Hand-computed forward values, PyTorch's semantics written out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from cnncli.errors import UserError
from cnncli.gradcheck import check
from cnncli.model import Model
from cnncli.ops.activation import ActivationOp
from cnncli.spec import loads

IMAGE = np.array([[7, 2, 3, 3, 8], [4, 5, 3, 8, 4], [3, 3, 2, 8, 4], [2, 8, 7, 2, 7], [5, 4, 4, 5, 4]], float)
VERTICAL_EDGE = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]], float)


def model(chain: str, input: str, dtype=np.float32) -> Model:
    return Model(loads(f"input: {input}\nnet: {chain}\n"), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vertical_edge_filter_top_left_is_6(dtype):
    m = model("conv k=1 f=3 bias=false", "1x5x5", dtype)
    m.set_param("conv1.weight", VERTICAL_EDGE.reshape(1, 1, 3, 3))
    y = m.forward(IMAGE.reshape(1, 1, 5, 5))
    assert y.dtype == dtype and y.shape == (1, 1, 3, 3)
    assert y[0, 0, 0, 0] == 6
    expected = np.array([[sum((IMAGE[i:i + 3, j:j + 3] * VERTICAL_EDGE).ravel()) for j in range(3)] for i in range(3)])
    np.testing.assert_array_equal(y[0, 0], expected)
    np.testing.assert_array_equal(y[0, 0], [[6, -9, -8], [-3, -2, -3], [-3, 0, -2]])


def test_padding_stride_and_bias():
    m = model("conv k=1 f=3 s=2 p=1", "1x5x5")
    m.set_param("conv1.weight", VERTICAL_EDGE.reshape(1, 1, 3, 3))
    m.set_param("conv1.bias", [0.5])
    y = m.forward(IMAGE.reshape(1, 1, 5, 5))[0, 0]
    padded = np.pad(IMAGE, 1)
    expected = np.array([[np.sum(padded[i:i + 3, j:j + 3] * VERTICAL_EDGE) + 0.5 for j in (0, 2, 4)] for i in (0, 2, 4)])
    np.testing.assert_allclose(y, expected)


def test_max_pool_gives_block_maxima():
    x = np.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]], float)
    y = model("pool 2", "1x4x4").forward(x.reshape(1, 1, 4, 4))
    np.testing.assert_array_equal(y[0, 0], [[6, 8], [3, 4]])


def test_max_pool_routes_gradient_to_argmax():
    x = np.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]], float).reshape(1, 1, 4, 4)
    m = model("pool 2", "1x4x4")
    m.forward(x, train=True)
    dx = m.backward(np.array([[[[1, 2], [3, 4]]]], float), input_grad=True)
    np.testing.assert_array_equal(dx[0, 0], [[0, 0, 0, 0], [0, 1, 0, 2], [3, 0, 0, 0], [0, 0, 0, 4]])


def test_avg_pool_counts_padding_like_pytorch():
    # 3x3 window, padding 1: the corner window holds 4 real values and 5 zeros, divided by 9.
    x = np.arange(16, dtype=float).reshape(1, 1, 4, 4)
    y = model("avgpool 3 s=2 p=1", "1x4x4").forward(x)[0, 0]
    assert y[0, 0] == pytest.approx((0 + 1 + 4 + 5) / 9)
    assert y[1, 1] == pytest.approx(np.mean(x[0, 0, 1:4, 1:4]))


def test_l2_pool_and_global_pools():
    x = np.array([[3, 4], [0, 0]], float).reshape(1, 1, 2, 2)
    assert model("l2pool 2", "1x2x2").forward(x)[0, 0] == pytest.approx(5)  # a Cx1x1 output comes as (N, C)
    assert model("gap", "1x2x2").forward(x)[0, 0] == pytest.approx(7 / 4)
    assert model("gmp", "1x2x2").forward(x)[0, 0] == pytest.approx(4)


def test_batch_norm_eval_uses_running_statistics():
    m = model("bn eps=0", "2x1x2")
    m.set_param("bn1.running_mean", [1.0, -2.0])
    m.set_param("bn1.running_var", [4.0, 0.25])
    m.set_param("bn1.weight", [2.0, 1.0])
    m.set_param("bn1.bias", [0.5, 0.0])
    x = np.array([[[[3.0, 5.0]], [[-2.0, -1.0]]]])
    y = m.forward(x, train=False)
    np.testing.assert_allclose(y[0, 0, 0], [(3 - 1) / 2 * 2 + 0.5, (5 - 1) / 2 * 2 + 0.5])
    np.testing.assert_allclose(y[0, 1, 0], [0.0, 2.0])


def test_batch_norm_train_updates_running_stats_like_pytorch():
    m = model("bn", "1x1x4", np.float64)
    x = np.array([1.0, 2.0, 3.0, 6.0]).reshape(1, 1, 1, 4)
    y = m.forward(x, train=True)
    mean, biased = 3.0, np.var([1, 2, 3, 6])
    np.testing.assert_allclose(y.ravel(), (x.ravel() - mean) / np.sqrt(biased + 1e-5), atol=1e-12)
    assert m.param("bn1.running_mean")[0] == pytest.approx(0.9 * 0 + 0.1 * mean)
    assert m.param("bn1.running_var")[0] == pytest.approx(0.9 * 1 + 0.1 * np.var([1, 2, 3, 6], ddof=1))


@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_batch_norm_statistics_hold_when_the_mean_dwarfs_the_spread(offset):
    """One pass over memory (float64 sums shifted by the first value) gives the two-pass mean and
    variance of the float32 values, also when the mean is a million times the spread (unshifted
    sums of squares would lose the variance there: about 1e-4 relative)."""
    x = (offset + 0.01 * np.random.default_rng(0).normal(size=(8, 2, 5, 5))).astype(np.float32)
    m = model("bn eps=0", "2x5x5")
    m.forward(x, train=True)
    values = x.transpose(1, 0, 2, 3).reshape(2, -1).astype(np.float64)
    norm = m.ops[0]
    np.testing.assert_allclose(norm.mean, values.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(norm.invstd, 1 / np.sqrt(values.var(axis=1)), rtol=1e-8)


def test_lrn_follows_pytorch_formula():
    x = np.array([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1)
    y = model("lrn 3 alpha=0.3 beta=0.5 k=2", "3x1x1", np.float64).forward(x).ravel()
    squares = x.ravel() ** 2
    expected = [x.ravel()[c] / (2 + 0.3 / 3 * squares[max(c - 1, 0):c + 2].sum()) ** 0.5 for c in range(3)]
    np.testing.assert_allclose(y, expected)


def test_activations():
    x = np.array([-2.0, -0.5, 0.5, 7.0]).reshape(1, 4, 1, 1)
    run = lambda chain: model(chain, "4x1x1", np.float64).forward(x).ravel()  # noqa: E731
    np.testing.assert_allclose(run("relu"), [0, 0, 0.5, 7])
    np.testing.assert_allclose(run("relu6"), [0, 0, 0.5, 6])
    np.testing.assert_allclose(run("lrelu 0.1"), [-0.2, -0.05, 0.5, 7])
    np.testing.assert_allclose(run("elu 1.0"), [np.exp(-2) - 1, np.exp(-0.5) - 1, 0.5, 7])
    np.testing.assert_allclose(run("sigmoid"), 1 / (1 + np.exp(-x.ravel())))
    np.testing.assert_allclose(run("tanh"), np.tanh(x.ravel()))
    e = np.exp(x.ravel() - 7)
    np.testing.assert_allclose(run("softmax"), e / e.sum())


def test_modern_activations_by_hand():
    # x = -4, -1.5, 0, 0.7, 3.5; values worked out from the definitions
    x = np.array([-4.0, -1.5, 0.0, 0.7, 3.5]).reshape(1, 5, 1, 1)
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 2e-6)):
        run = lambda chain: model(chain, "5x1x1", dtype).forward(x.astype(dtype)).ravel()  # noqa: E731
        np.testing.assert_allclose(run("hardsigmoid"), [0, 0.25, 0.5, 3.7 / 6, 1], rtol=tol, atol=tol)
        np.testing.assert_allclose(run("hardswish"), [0, -0.375, 0, 0.7 * 3.7 / 6, 3.5], rtol=tol, atol=tol)
        np.testing.assert_allclose(run("silu"), [-4 / (1 + np.e**4), -1.5 / (1 + np.e**1.5), 0, 0.7 / (1 + np.e**-0.7),
                                                 3.5 / (1 + np.e**-3.5)], rtol=tol)
        # x * Phi(x) with Phi(-4) = 3.167124183e-05, Phi(-1.5) = 0.0668072013, Phi(0.7) = 0.7580363478,
        # Phi(3.5) = 0.9997673709 (normal tables): float32 keeps its precision in the far left tail too
        np.testing.assert_allclose(run("gelu"), [-4 * 3.167124183e-05, -1.5 * 0.0668072013, 0, 0.7 * 0.7580363478,
                                                 3.5 * 0.9997673709], rtol=max(tol, 1e-9))
        assert run("swish").dtype == dtype and run("hswish")[1] == run("hardswish")[1]


def test_mul_scales_each_channel():
    x = np.arange(8, dtype=float).reshape(1, 2, 2, 2)
    # the scale branch: per-channel means 1.5 and 5.5, through sigmoid -> identity here via gap only
    y = model("mul(id | gap)", "2x2x2", np.float64).forward(x)
    np.testing.assert_array_equal(y[0, 0], x[0, 0] * 1.5)
    np.testing.assert_array_equal(y[0, 1], x[0, 1] * 5.5)
    y = model("mul(id | relu | id)", "2x2x2", np.float64).forward(x)
    np.testing.assert_array_equal(y, x**3)


def test_mul_refuses_shapes_it_cannot_broadcast():
    with pytest.raises(UserError, match=r"mul needs branches of one shape, or a 4x1x1 per-channel scale"):
        loads("input: 4x3x3\nnet: mul(id | gap -> conv k=2 f=1)\n")


def test_dropout_is_inverted_seeded_and_off_in_eval():
    x = np.ones((4, 1, 50, 50))
    m = model("dropout 0.25", "1x50x50", np.float64)
    y = m.forward(x, train=True)
    assert set(np.unique(y)) == {0.0, 4 / 3}
    assert abs((y == 0).mean() - 0.25) < 0.02
    np.testing.assert_array_equal(m.forward(x, train=False), x)
    again = model("dropout 0.25", "1x50x50", np.float64).forward(x, train=True)
    np.testing.assert_array_equal(y, again)  # same seed, same mask


def test_fc_flattens_in_pytorch_order():
    m = model("fc 1 bias=false", "2x1x2", np.float64)
    m.set_param("fc1.weight", [[1.0, 10.0, 100.0, 1000.0]])
    x = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 2, 1, 2)  # (c0: 1 2) (c1: 3 4)
    assert m.forward(x)[0, 0] == 4321


def test_shortcut_subsamples_and_pads_channels_evenly():
    x = np.arange(2 * 16, dtype=float).reshape(1, 2, 4, 4)
    y = model("shortcut k=4 s=2", "2x4x4", np.float64).forward(x)
    assert y.shape == (1, 4, 2, 2)
    np.testing.assert_array_equal(y[0, 0], 0)
    np.testing.assert_array_equal(y[0, 1], x[0, 0, ::2, ::2])
    np.testing.assert_array_equal(y[0, 2], x[0, 1, ::2, ::2])
    np.testing.assert_array_equal(y[0, 3], 0)


def test_concat_and_add():
    x = np.arange(8, dtype=float).reshape(1, 2, 2, 2)
    y = model("cat(id | relu6)", "2x2x2", np.float64).forward(x)
    np.testing.assert_array_equal(y[0, :2], x[0])
    np.testing.assert_array_equal(y[0, 2:], np.minimum(x[0], 6))
    y = model("add(id | id | id)", "2x2x2", np.float64).forward(x)
    np.testing.assert_array_equal(y, 3 * x)


def test_gradcheck_catches_a_wrong_backward(monkeypatch):
    original = ActivationOp.backward

    def slightly_wrong(self, dy, need):
        return [g * 1.01 for g in original(self, dy, need)]

    monkeypatch.setattr(ActivationOp, "backward", slightly_wrong)
    results = check(loads("input: 2x4x4\nnet: conv k=2 f=3 -> tanh -> fc 2\n"), batch=2)
    worst = {r.name: r.worst for r in results}
    assert worst["tanh1"] > 1e-3  # the broken layer shows up ...
    assert worst["fc1"] < 1e-5  # ... and the one after it does not


def test_wrong_input_shape_is_a_user_error():
    with pytest.raises(UserError, match=r"batches of shape \(N, 1, 5, 5\)"):
        model("relu", "1x5x5").forward(np.zeros((2, 1, 4, 4)))


def test_float32_stays_float32():
    m = model("conv k=2 f=3 -> bn -> relu -> pool 2 -> fc 3", "1x8x8")
    y = m.forward(np.ones((2, 1, 8, 8)), train=True)
    assert y.dtype == np.float32
    m.backward(np.ones_like(y))
    assert all(g.dtype == np.float32 for g in m.grads().values())


def test_float32_tanh_and_sigmoid_are_within_a_few_ulp():
    x = np.linspace(-12, 12, 100_001).reshape(1, -1, 1, 1)
    exact = np.tanh(x)
    for chain, reference in (("tanh", exact), ("sigmoid", 1 / (1 + np.exp(-x)))):
        y = model(chain, f"{x.shape[1]}x1x1").forward(x)
        assert y.dtype == np.float32
        assert np.abs(y - reference.reshape(1, -1)).max() < 5e-7, chain


@pytest.mark.parametrize("chain", ["conv k=3 f=3 p=1", "conv k=3 f=3 s=2 p=1", "conv k=2 f=3x2 d=2 p=2x1",
                                   "conv k=3 f=4 s=2 p=same", "conv k=2 f=1"])
@pytest.mark.parametrize("chunk", [1, 3, 7])
def test_conv_chunks_that_split_rows_give_the_same_result(monkeypatch, chain, chunk):
    """The im2col + GEMM path works on chunks of output positions; any chunking is the same maths."""
    from cnncli.spec import workspace

    spec = loads(f"input: 2x7x6\nnet: {chain}\n")
    x = np.random.default_rng(0).normal(0, 1, (3, 2, 7, 6))
    whole = Model(spec, np.float64, seed=2)
    y = whole.forward(x, train=True)
    dy = np.random.default_rng(1).normal(0, 1, y.shape)
    dx = whole.backward(dy, input_grad=True)
    monkeypatch.setattr(workspace, "IM2COL_CHUNK_VALUES", chunk * whole.ops[0].rows * 3)  # `chunk` positions of 3 samples
    pieces = Model(spec, np.float64, seed=2)
    np.testing.assert_allclose(pieces.forward(x, train=True), y, rtol=1e-12)
    np.testing.assert_allclose(pieces.backward(dy, input_grad=True), dx, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(pieces.grad("conv1.weight"), whole.grad("conv1.weight"), rtol=1e-12)


@pytest.mark.parametrize("scheme,check", [
    ("default", lambda w, fan_in, fan_out: np.abs(w).max() <= 1 / np.sqrt(fan_in)),
    ("he_uniform", lambda w, fan_in, fan_out: np.abs(w).max() <= np.sqrt(6 / fan_in)),
    ("xavier_uniform", lambda w, fan_in, fan_out: np.abs(w).max() <= np.sqrt(6 / (fan_in + fan_out))),
    ("he_normal", lambda w, fan_in, fan_out: abs(w.std() / np.sqrt(2 / fan_in) - 1) < 0.05),
    ("xavier_normal", lambda w, fan_in, fan_out: abs(w.std() / np.sqrt(2 / (fan_in + fan_out)) - 1) < 0.05),
    ("zeros", lambda w, fan_in, fan_out: not w.any()),
])
def test_initialisation_schemes(scheme, check):
    m = model(f"conv k=64 f=3 init={scheme} -> fc 100 init={scheme}", "32x8x8")
    w = m.param("conv1.weight")
    assert check(w, 32 * 9, 64 * 9)
    assert check(m.param("fc1.weight"), 64 * 36, 100)
    if scheme != "default":
        assert not m.param("conv1.bias").any()  # He/Xavier start biases at zero
    else:
        assert np.abs(m.param("conv1.bias")).max() <= 1 / np.sqrt(32 * 9)
        assert abs(w.std() / (1 / np.sqrt(3 * 32 * 9)) - 1) < 0.05  # U(-b, b) has std b / sqrt(3)


def test_same_seed_same_weights_and_different_seed_different():
    a, b, c = (Model(loads("input: 1x8x8\nnet: conv k=4 f=3 -> fc 3\n"), seed=s) for s in (7, 7, 8))
    for name in a.params():
        np.testing.assert_array_equal(a.param(name), b.param(name))
    assert not np.array_equal(a.param("conv1.weight"), c.param("conv1.weight"))


def test_a_sum_and_its_fused_relu_pass_nan_and_infinity_on():
    """A diverging run must show NaN at the loss (which stops training), not a silently clipped value."""
    from cnncli.ops.merge import add_act
    from cnncli.ops.pool import NO_ACT, RELU, RELU6

    a = np.array([1, np.nan, np.inf, -2], np.float32)
    out = np.empty(4, np.float32)
    for act, expected in ((NO_ACT, [2, np.nan, np.inf, -1]), (RELU, [2, np.nan, np.inf, 0]), (RELU6, [2, np.nan, 6, 0])):
        add_act(0, 4, a, np.ones(4, np.float32), act, out)
        np.testing.assert_array_equal(out, expected)
