"""Winograd F(2x2, 3x3), F(4x4, 3x3) and F(2x2, 5x5): the same convolution as im2col + GEMM, forward
and both gradients."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from cnncli.model import Model
from cnncli.ops.conv import ConvOp
from cnncli.ops import threads, winograd
from cnncli.spec import loads, workspace
from tests.helpers import forward_backward


def pair(chain: str, input: str, dtype=np.float64, seed: int = 2, size: int | None = None) -> tuple[Model, Model]:
    """The same network twice: with Winograd (tiles of `size`, default: the engine's choice) and with
    every conv on the im2col path."""
    spec = loads(f"input: {input}\nnet: {chain}\n")
    fast, plain = Model(spec, dtype, seed), Model(spec, np.float64, seed)
    for op in fast.ops:  # also where the engine would not choose Winograd for so few channels
        window = op.node.info.window if isinstance(op, ConvOp) else None
        if window and winograd.applies(window.kernel, window.stride, window.dilation, op.groups):
            op.winograd = winograd.Winograd(op, size)
    assert any(getattr(op, "winograd", None) is not None for op in fast.ops)
    for op in plain.ops:
        if isinstance(op, ConvOp):
            op.winograd = op.direct = None
    return fast, plain


@pytest.mark.parametrize("chain,input,size", [
    ("conv k=3 f=3 p=1", "2x8x8", 2),     # even output: whole tiles
    ("conv k=3 f=3 p=1", "2x8x8", 4),     # 8x8: whole 4x4 tiles
    ("conv k=4 f=3 p=1", "3x7x5", 2),     # odd output: the last tiles are cut
    ("conv k=4 f=3 p=1", "3x7x5", 4),
    ("conv k=2 f=3", "2x6x9", 2),         # no padding
    ("conv k=2 f=3", "2x6x9", 4),
    ("conv k=3 f=3 p=2 bias=false", "1x5x4", 2),  # padding 2: the input gradient needs none
    ("conv k=3 f=3 p=2 bias=false", "1x5x4", 4),
    ("conv k=5 f=3 p=same", "4x6x6", 2),
    ("conv k=5 f=3 p=same", "4x6x6", 4),
    ("conv k=3 f=5 p=2", "2x8x8", 2),     # 5x5: even output
    ("conv k=4 f=5 p=2", "3x7x5", 2),     # 5x5: odd output, cut tiles
    ("conv k=2 f=5", "2x9x10", 2),        # 5x5 without padding: the input gradient is padded by 4
    ("conv k=3 f=5 p=4 bias=false", "1x4x5", 2),  # padding 4: the input gradient needs none
    ("conv k=2 f=5 p=1", "3x6x7", 2),     # padding 1: the input gradient's is 3
])
@pytest.mark.parametrize("chunk_tiles", [1, 3, 1000])
@pytest.mark.parametrize("workers", [1, 2])
def test_winograd_equals_im2col_in_float64(monkeypatch, chain, input, size, chunk_tiles, workers):
    c = int(input.split("x")[0])
    fast, plain = pair(chain, input, size=size)
    k = fast.ops[0].filters
    points = fast.ops[0].winograd.tiling.points
    monkeypatch.setattr(workspace, "WINOGRAD_CHUNK_VALUES", chunk_tiles * points * (c + k) * 3)  # `chunk_tiles` tiles of 3 samples
    monkeypatch.setattr(threads, "_threads", workers)
    x = np.random.default_rng(0).normal(0, 1, (3, *map(int, input.split("x"))))
    y, dx, grads, dy = forward_backward(plain, x)
    y2, dx2, grads2, _ = forward_backward(fast, x, dy)
    np.testing.assert_allclose(y2, y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx2, dx, rtol=1e-12, atol=1e-12)
    for name, g in grads.items():
        np.testing.assert_allclose(grads2[name], g, rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_weight_gradient_summed_in_groups_of_runs(monkeypatch, workers):
    """Past WINOGRAD_SUM_VALUES, the weight gradient sums whole groups of runs (one group per
    worker) instead of one sum per run: the same gradients as im2col."""
    monkeypatch.setattr(workspace, "WINOGRAD_CHUNK_VALUES", 36 * 7 * 2)  # one tile of 2 samples a run
    monkeypatch.setattr(workspace, "WINOGRAD_SUM_VALUES", 1)
    monkeypatch.setattr(threads, "_threads", workers)
    assert workspace.winograd_sums(16, 36 * 12, workers) == workers
    fast, plain = pair("conv k=4 f=3 p=1", "3x13x11", size=4)  # 4 x 3 tiles, 12 runs
    x = np.random.default_rng(0).normal(0, 1, (2, 3, 13, 11))
    y, dx, grads, dy = forward_backward(plain, x)
    y2, dx2, grads2, _ = forward_backward(fast, x, dy)
    np.testing.assert_allclose(dx2, dx, rtol=1e-12, atol=1e-12)
    for name, g in grads.items():
        np.testing.assert_allclose(grads2[name], g, rtol=1e-12, atol=1e-12, err_msg=name)


def test_results_do_not_depend_on_which_thread_took_which_tiles(monkeypatch):
    """The threads claim runs of tiles as they come free (threads.Claims): here once with the worker
    thread starting late (this thread takes every run), once with this thread pausing after its first
    run (the worker takes the others). The weight gradient sums each run's part in the plan's order,
    not per thread, so float32 results are the same to the bit."""
    monkeypatch.setattr(threads, "_threads", 2)
    monkeypatch.setattr(workspace, "WINOGRAD_CHUNK_VALUES", 36 * 16 * 8)  # one tile of 8 samples a run
    spec = loads("input: 8x8x8\nnet: conv k=8 f=3 p=1\n")
    x = np.random.default_rng(0).normal(0, 1, (8, 8, 8, 8)).astype(np.float32)
    forward_backward(Model(spec, np.float32, 0), x)  # compiled (or loaded) before the timing matters
    results, worker_runs = [], []
    claims_of = threads.Claims.__iter__
    for late_thread in ("worker", "main"):
        model = Model(spec, np.float32, 0)
        taken = [0]

        def claims_late(claims, late_thread=late_thread, taken=taken):
            on_worker = threading.current_thread() is not threading.main_thread()
            me = "worker" if on_worker else "main"
            done = claims.__dict__.setdefault("done", {"main": threading.Event(), "worker": threading.Event()})
            if me == late_thread == "worker":
                done["main"].wait(10)  # start once this thread has taken every run
            for i, item in enumerate(claims_of(claims)):
                taken[0] += on_worker
                yield item
                if me == late_thread == "main" and i == 0:
                    done["worker"].wait(10)  # after the first run, pause until the worker took the rest
            done[me].set()

        monkeypatch.setattr(threads.Claims, "__iter__", claims_late)
        y, dx, grads, _ = forward_backward(model, x, np.random.default_rng(1).normal(0, 1, (8, 8, 8, 8)).astype(np.float32))
        results.append((y.copy(), dx.copy(), grads["conv1.weight"].copy()))
        worker_runs.append(taken[0])
    assert worker_runs[0] == 0 < worker_runs[1]  # the runs did go to different threads
    for first, second in zip(*results):
        assert np.array_equal(first, second)


@pytest.mark.parametrize("size,r", [(2, 3), (4, 3), (2, 5)])
def test_winograd_float32_is_within_1e_4_of_float64(size, r):
    """Realistic magnitudes: 64 channels, He-initialised filters, unit-normal inputs, a batch of 16."""
    p = r // 2
    chain = f"conv k=64 f={r} p={p} init=he_normal -> conv k=64 f={r} p={p} init=he_normal"
    fast, plain = pair(chain, "64x8x8", np.float32, size=size)
    for name, value in plain.params().items():
        fast.set_param(name, value)
    x = np.random.default_rng(0).normal(0, 1, (16, 64, 8, 8))
    y, dx, grads, dy = forward_backward(plain, x)
    y2, dx2, grads2, _ = forward_backward(fast, x.astype(np.float32), dy.astype(np.float32))

    def relative(a, b):
        return np.abs(a - b).max() / np.abs(b).max()

    assert relative(y2, y) < 1e-4 and relative(dx2, dx) < 1e-4
    for name, g in grads.items():
        assert relative(grads2[name], g) < 1e-4, name


@pytest.mark.parametrize("key", sorted(winograd.TILINGS))
def test_filter_transform_and_its_adjoint(key):
    """<transform_filters(w), du> = <w, filter_gradient(du)>: the weight gradient is the true adjoint."""
    rng = np.random.default_rng(0)
    g = winograd.TILINGS[key].filters
    points = winograd.TILINGS[key].points
    r = key[1]
    w, du = rng.normal(size=(3, 2, r, r)), rng.normal(size=(points, 3, 2))
    u = winograd.transform_filters(w, np.empty((points, 3, 2)), g)
    back = np.empty_like(w)
    winograd.filter_gradient(du, back, g)
    assert np.isclose(np.sum(u * du), np.sum(w * back), rtol=1e-12)
    # a 3x3 filter that is 1 in its centre keeps its value at the 4 central tile positions
    centre = np.zeros((1, 1, 3, 3))
    centre[0, 0, 1, 1] = 1
    u = winograd.transform_filters(centre, np.empty((16, 1, 1)), winograd.TILINGS[2, 3].filters).reshape(4, 4)
    np.testing.assert_array_equal(u, np.outer([0, 0.5, -0.5, 0], [0, 0.5, -0.5, 0]))


@pytest.mark.parametrize("key,g,by_hand", [
    ((4, 3), [0.5, -1.0, 2.0], [-3.5, 3.0, 5.0, -6.75]),  # 0.5 - 2 - 2; 1 + 1 + 1; -0.5 - 0.5 + 6; 0.25 - 3 - 4
    ((2, 5), [0.5, -1.0, 2.0, 1.0, -0.5], [-4.5, 7.0]),   # 0.5 - 2 - 2 + 0.5 - 1.5; 1 + 1 + 1 + 3 + 1
])
def test_one_dimensional_by_hand(key, g, by_hand):
    """F(m, r) on one row: At ((G g) * (Bt d)) is the correlation of d with g. Bt and At as written
    out in the kernels, run through them on a single 6x6 tile whose rows are all d."""
    m, r = key
    d = np.array([1.0, 2.0, -1.0, 0.5, 3.0, -2.0])
    expected = np.array([np.dot(g, d[i : i + r]) for i in range(m)])
    np.testing.assert_allclose(expected, by_hand)
    # a 2-D filter that is g in its middle row and zero elsewhere, on an input whose rows are all d
    x = np.tile(d, (6, 1))[None, :, :, None]  # (C=1, 6, 6, N=1)
    w = np.zeros((1, 1, r, r))
    w[0, 0, r // 2] = g
    tiling = winograd.TILINGS[key]
    v = np.empty((36, 1, 1))
    tiling.input_transform(x, 0, 0, 0, 1, 1, v)
    u = winograd.transform_filters(w, np.empty((36, 1, 1)), tiling.filters)
    out = np.empty((1, m, m, 1))
    tiling.output_transform(u @ v, 0, 1, 1, np.zeros(1), False, 0, out)
    np.testing.assert_allclose(out[0, :, :, 0], np.tile(expected, (m, 1)), atol=1e-12)


def test_tiling_choice_keeps_the_gemms_smallest():
    """F(4x4) from 3x3 outputs up, F(2x2) on 1-2 and on 5-6 (where 2x2 tiles fit and 4x4 ones waste)."""
    assert [winograd.tile_size(n, n, 3) for n in range(1, 10)] == [2, 2, 4, 4, 2, 2, 4, 4, 4]
    assert winograd.tile_size(32, 32, 3) == 4 and winograd.tile_size(56, 2, 3) == 2
    assert winograd.tile_size(32, 32, 5) == 2  # the one tiling for 5x5 filters


def test_images_with_few_channels_stay_on_im2col():
    m = Model(loads("input: 3x8x8\nnet: conv k=8 f=3 p=1 -> conv k=8 f=3 p=1\n"))
    assert [op.winograd is not None for op in m.ops] == [False, True]


def test_5x5_convs_take_winograd_from_10_channels_and_a_whole_tile():
    """LeNet-5's conv2 (6 channels) stays on the direct loops, its conv3 (a 1x1 output: 36 tile values
    against 25 direct multiplications) on im2col; the tutorial net's conv2 (16 channels) runs F(2x2, 5x5)."""
    def kinds(spec):
        return [("winograd" if op.winograd else "direct" if op.direct else "im2col")
                for op in Model(loads(spec)).ops if isinstance(op, ConvOp)]

    assert kinds("input: 1x32x32\nnet: conv k=6 f=5 -> pool 2 -> conv k=16 f=5 -> pool 2 -> conv k=120 f=5\n") == [
        "direct", "direct", "im2col"]
    assert kinds("input: 1x28x28\nnet: conv k=16 f=5 p=2 -> pool 2 -> conv k=32 f=5 p=2\n") == ["direct", "winograd"]
    # 8 input channels: 200 input rows, too many for the direct loops, too few for Winograd; 10: Winograd
    assert kinds("input: 8x14x14\nnet: conv k=10 f=5 p=2 -> conv k=8 f=5 p=2\n") == ["im2col", "winograd"]


def test_which_convs_use_winograd():
    assert winograd.applies((3, 3), (1, 1), (1, 1), 1)
    assert winograd.applies((5, 5), (1, 1), (1, 1), 1)
    assert not winograd.applies((3, 3), (2, 2), (1, 1), 1)
    assert not winograd.applies((5, 5), (2, 2), (1, 1), 1)
    assert not winograd.applies((7, 7), (1, 1), (1, 1), 1)
    assert not winograd.applies((3, 5), (1, 1), (1, 1), 1)
    assert not winograd.applies((3, 3), (1, 1), (2, 2), 1)
    assert not winograd.applies((3, 3), (1, 1), (1, 1), 4)


# -- the inference path: a batch norm folded into the conv before it


@pytest.mark.parametrize("chain,input", [
    ("conv k=4 f=3 p=1 bias=false -> bn -> relu -> conv k=3 f=3 s=2 p=1 -> bn -> fc 3", "4x8x8"),  # winograd, im2col
    ("conv k=4 f=5 p=2 -> bn -> relu6 -> conv k=3 f=3 p=1 -> bn -> relu -> fc 3", "1x8x8"),  # direct, winograd
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
