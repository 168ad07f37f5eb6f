"""Optional: the same network and weights in cnncli and PyTorch give the same outputs, gradients,
BN statistics and optimizer steps. Skipped where PyTorch is not installed (it is never a dependency)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from cnncli.losses import Loss
from cnncli.model import Model
from cnncli.optim import Optimizer
from cnncli.spec import load, loads

from .helpers import ARCHITECTURES, ROOT

torch = pytest.importorskip("torch")
sys.path.insert(0, str(ROOT / "benchmarks"))
from torch_net import TorchNet  # noqa: E402

NETS = {
    "tutorial": None,
    "residual": "input: 3x12x12\nclasses: 5\nnet: conv k=8 f=3 p=1 bias=false -> bn -> relu -> "
                "add(conv k=8 f=3 p=1 -> bn -> relu6 -> conv k=8 f=3 p=1 -> bn | id) -> relu -> "
                "add(conv k=16 f=3 s=2 p=1 -> bn | shortcut k=16 s=2) -> avgpool 3 s=2 p=1 ceil=true -> gap -> fc 5\n",
    "inception": "input: 4x9x9\nclasses: 3\nnet: cat(conv k=4 f=1 | conv k=2 f=1 -> conv k=4 f=3 p=1 -> elu | "
                 "pool 3 s=1 p=1 -> conv k=2 f=1 -> lrelu 0.1) -> lrn 3 alpha=0.01 -> conv f=3 g=dw s=2 -> "
                 "l2pool 2 s=1 -> tanh -> fc 6 -> bn -> sigmoid -> fc 3\n",
    "squeeze-excite": "input: 4x6x6\nclasses: 3\nnet: conv k=8 f=3 p=1 -> bn -> hardswish -> "
                      "mul(id | gap -> conv k=2 f=1 -> silu -> conv k=8 f=1 -> hardsigmoid) -> gelu -> "
                      "mul(id | gap -> conv k=4 f=1 -> relu -> conv k=8 f=1 -> sigmoid) -> gap -> fc 3\n",
    "dilated": "input: 2x11x10\noutput: 4\nnet: conv k=6 f=3x2 d=2 g=2 s=2x1 p=same -> pool 3 s=2 p=1 ceil=true -> "
               "flatten -> fc 4\n",
}


# PyTorch's hardsigmoid backward multiplies by the float32 constant 1/6 even in float64
# (0.1666666716...), a relative error of 3e-8 that ours (exact in float64) does not share.
GRAD_RTOL = {"squeeze-excite": 1e-7}


def build(name):
    spec = load(ARCHITECTURES / "fashion-tutorial.yaml") if NETS[name] is None else loads(NETS[name])
    ours = Model(spec, np.float64, seed=3)
    theirs = TorchNet(spec).double()
    theirs.load_from(ours)
    return spec, ours, theirs


@pytest.mark.parametrize("name", sorted(NETS))
def test_forward_backward_and_bn_statistics_match(name):
    spec, ours, theirs = build(name)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (5, *spec.input))
    y = ours.forward(x, train=True)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs.train()(xt)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-9, atol=1e-10)
    dy = rng.normal(0, 1, y.shape)
    dx = ours.backward(dy, input_grad=True)
    yt.backward(torch.tensor(dy))
    rtol = GRAD_RTOL.get(name, 1e-8)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=rtol, atol=1e-10)
    for pname, grad in ours.grads().items():
        np.testing.assert_allclose(grad, theirs.tensor(pname).grad.numpy(), rtol=rtol, atol=1e-10, err_msg=pname)
    for bname, value in ours.buffers().items():
        np.testing.assert_allclose(value, theirs.tensor(bname).numpy(), rtol=1e-10, err_msg=bname)
    np.testing.assert_allclose(ours.forward(x, train=False), theirs.eval()(torch.tensor(x)).detach().numpy(),
                               rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "rmsprop"])
def test_training_steps_match(optimizer):
    spec, ours, theirs = build("tutorial")
    settings = {"sgd": dict(lr=0.1, momentum=0.9, dampening=0.0, nesterov=True, weight_decay=1e-3),
                "adam": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-3),
                "adamw": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2),
                "rmsprop": dict(lr=1e-3, alpha=0.99, eps=1e-8, momentum=0.5, weight_decay=1e-3)}[optimizer]
    opt = Optimizer(ours.flat_params, ours.flat_grads, optimizer, **settings)
    params = [theirs.tensor(n) for n in ours.params()]
    s = settings
    topt = {"sgd": lambda: torch.optim.SGD(params, lr=s["lr"], momentum=s.get("momentum", 0), nesterov=s.get("nesterov", False),
                                           weight_decay=s["weight_decay"]),
            "adam": lambda: torch.optim.Adam(params, lr=s["lr"], weight_decay=s["weight_decay"]),
            "adamw": lambda: torch.optim.AdamW(params, lr=s["lr"], weight_decay=s["weight_decay"]),
            "rmsprop": lambda: torch.optim.RMSprop(params, lr=s["lr"], momentum=s.get("momentum", 0),
                                                   weight_decay=s["weight_decay"])}[optimizer]()
    loss_fn = Loss("cross_entropy", smoothing=0.1)
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = rng.normal(0, 1, (8, 1, 28, 28))
        labels = rng.integers(0, 10, 8)
        out = ours.forward_internal(ours.to_internal(x), train=True)
        loss, grad, _ = loss_fn(out, labels)
        ours.backward_internal(grad)
        opt.step()
        topt.zero_grad()
        tloss = torch.nn.functional.cross_entropy(theirs.train()(torch.tensor(x)), torch.tensor(labels), label_smoothing=0.1)
        tloss.backward()
        topt.step()
        assert loss == pytest.approx(tloss.item(), rel=1e-10)
    for pname, value in ours.params().items():
        np.testing.assert_allclose(value, theirs.tensor(pname).detach().numpy(), rtol=1e-7, atol=1e-9, err_msg=pname)
