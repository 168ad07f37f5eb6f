"""Optimizer steps against their textbook (PyTorch documentation) formulas; losses against hand values."""

from __future__ import annotations

import numpy as np
import pytest

from cnncli.losses import Loss
from cnncli.optim import Optimizer

P0 = np.array([0.5, -1.0, 2.0, 0.0])
GRADS = [np.array([0.1, -0.2, 0.3, 0.0]), np.array([-0.4, 0.1, 0.2, 0.5]), np.array([0.3, 0.3, -0.1, -0.2])]


def run(name, steps=GRADS, dtype=np.float64, **settings):
    p = P0.astype(dtype).copy()
    g = np.zeros_like(p)
    opt = Optimizer(p, g, name, **settings)
    for grad in steps:
        g[...] = grad
        opt.step()
    return p


def test_plain_sgd():
    expected = P0 - 0.1 * sum(GRADS)
    np.testing.assert_allclose(run("sgd", lr=0.1, momentum=0.0, dampening=0.0, nesterov=False), expected)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_weight_decay(nesterov):
    lr, mu, wd = 0.1, 0.9, 0.01
    p, buf = P0.copy(), None
    for grad in GRADS:
        d = grad + wd * p
        buf = d.copy() if buf is None else mu * buf + d
        p = p - lr * (d + mu * buf if nesterov else buf)
    got = run("sgd", lr=lr, momentum=mu, dampening=0.0, nesterov=nesterov, weight_decay=wd)
    np.testing.assert_allclose(got, p)


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_and_adamw(name):
    lr, b1, b2, eps, wd = 0.01, 0.9, 0.999, 1e-8, 0.05
    p, m, v = P0.copy(), np.zeros(4), np.zeros(4)
    for t, grad in enumerate(GRADS, start=1):
        d = grad.copy()
        if name == "adamw":
            p = p * (1 - lr * wd)
        else:
            d = d + wd * p
        m = b1 * m + (1 - b1) * d
        v = b2 * v + (1 - b2) * d * d
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    got = run(name, lr=lr, beta1=b1, beta2=b2, eps=eps, weight_decay=wd)
    np.testing.assert_allclose(got, p, rtol=1e-10)


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_rmsprop(momentum):
    lr, alpha, eps, wd = 0.01, 0.99, 1e-8, 0.01
    p, sq, buf = P0.copy(), np.zeros(4), np.zeros(4)
    for grad in GRADS:
        d = grad + wd * p
        sq = alpha * sq + (1 - alpha) * d * d
        step = d / (np.sqrt(sq) + eps)
        if momentum:
            buf = momentum * buf + step
            p = p - lr * buf
        else:
            p = p - lr * step
    got = run("rmsprop", lr=lr, alpha=alpha, eps=eps, momentum=momentum, weight_decay=wd)
    np.testing.assert_allclose(got, p)


def test_l1_penalty_and_clipping():
    got = run("sgd", steps=[GRADS[0]], lr=1.0, momentum=0.0, dampening=0.0, nesterov=False, l1=0.5)
    np.testing.assert_allclose(got, P0 - (GRADS[0] + 0.5 * np.sign(P0)))
    big = np.array([3.0, 4.0, 0.0, 0.0])  # norm 5, clipped to 1
    got = run("sgd", steps=[big], lr=1.0, momentum=0.0, dampening=0.0, nesterov=False, clip=1.0)
    np.testing.assert_allclose(got, P0 - big / (5 + 1e-6))


def test_float32_optimizer_stays_float32():
    p = run("adam", dtype=np.float32, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8)
    assert p.dtype == np.float32


def test_cross_entropy_hand_value_and_gradient():
    logits = np.array([[2.0, 0.0], [1.0, 0.0], [0.1, 3.0]])  # (K=3, N=2)
    labels = np.array([0, 1])
    loss, grad, correct = Loss("cross_entropy")(logits, labels)
    lse = np.log(np.exp(logits).sum(axis=0))
    assert loss == pytest.approx(np.mean([lse[0] - 2.0, lse[1] - 0.0]))
    assert correct == 1  # sample 0 right (class 0), sample 1 predicts class 2
    softmax = np.exp(logits - lse)
    onehot = np.array([[1, 0], [0, 1], [0, 0]])
    np.testing.assert_allclose(grad, (softmax - onehot) / 2)


def test_cross_entropy_is_stable_for_huge_logits():
    loss, grad, _ = Loss("cross_entropy")(np.array([[1000.0], [0.0]]), np.array([1]))
    assert loss == pytest.approx(1000.0) and np.isfinite(grad).all()


def test_label_smoothing_matches_pytorch_definition():
    logits = np.array([[2.0], [1.0], [0.1]])
    eps = 0.1
    loss, grad, _ = Loss("cross_entropy", smoothing=eps)(logits, np.array([0]))
    logp = logits[:, 0] - np.log(np.exp(logits[:, 0]).sum())
    target = np.full(3, eps / 3)
    target[0] += 1 - eps
    assert loss == pytest.approx(-(target * logp).sum())
    np.testing.assert_allclose(grad[:, 0], np.exp(logp) - target)


def test_mse_and_mae():
    pred = np.array([[1.0, 2.0], [3.0, 5.0]])  # (K=2, N=2)
    target = np.array([[0.0, 3.0], [2.0, 1.0]])  # (N, K)
    loss, grad, _ = Loss("mse")(pred, target)
    diff = pred - target.T
    assert loss == pytest.approx(np.mean(diff ** 2))
    np.testing.assert_allclose(grad, 2 * diff / 4)
    loss, grad, _ = Loss("mae")(pred, target)
    assert loss == pytest.approx(np.mean(np.abs(diff)))
    np.testing.assert_allclose(grad, np.sign(diff) / 4)


def test_optimizer_defaults_and_errors():
    from cnncli.errors import UserError

    p, g = np.ones(3), np.full(3, 0.5)
    opt = Optimizer(p, g, "sgd", lr=0.1)  # momentum etc. take the spec language's defaults
    opt.step()
    np.testing.assert_allclose(p, 1 - 0.05)
    with pytest.raises(UserError, match="unknown optimizer 'adagrad'"):
        Optimizer(p, g, "adagrad", lr=0.1)
    with pytest.raises(UserError, match="sgd has no setting betas"):
        Optimizer(p, g, "sgd", lr=0.1, betas=0.9)
