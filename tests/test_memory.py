"""One declaration of optimizer state read everywhere; the memory limit; Model.from_checkpoint."""

from __future__ import annotations

import resource
from pathlib import Path

import numpy as np
import pytest

from cnncli import checkpoint, memory
from cnncli.errors import UserError
from cnncli.model import Model
from cnncli.optim import Optimizer
from cnncli.spec import loads
from cnncli.spec.train import OPTIMIZERS

NET = "input: 1x8x8\nclasses: 3\nnet: conv k=2 f=3 -> bn -> relu -> fc 3\n"


@pytest.mark.parametrize("optimizer, slots", [
    ("sgd lr=0.1", ()), ("sgd lr=0.1 momentum=0.9", ("momentum_buffer",)), ("adam", ("exp_avg", "exp_avg_sq")),
    ("adamw", ("exp_avg", "exp_avg_sq")), ("rmsprop", ("square_avg",)),
    ("rmsprop momentum=0.5", ("square_avg", "momentum_buffer")),
])
def test_optimizer_state_is_what_shapes_counts_and_checkpoints_store(tmp_path, optimizer, slots):
    spec = loads(NET + f"train:\n  optimizer: {optimizer}\n")
    settings = dict(spec.train.optimizer)
    name = settings.pop("name")
    assert OPTIMIZERS[name].state(settings) == slots
    model = Model(spec)
    opt = Optimizer(model.flat_params, model.flat_grads, name, **settings)
    assert tuple(opt.state) == slots
    assert spec.memory(8)["optimizer_state"] == sum(v.nbytes for v in opt.state.values())
    model.flat_grads[...] = 0.5
    opt.step()
    opt.step()
    meta = {"spec": spec.source, "input": list(spec.input), "classes": 3, "train": {},
            "normalisation": {"mean": [0.0], "std": [1.0]}}
    checkpoint.save(tmp_path / "c.npz", model, meta, opt)
    ck = checkpoint.load(tmp_path / "c.npz")
    assert sorted(k for k in ck.arrays if k.startswith("optim/")) == sorted(f"optim/{s}" for s in slots)
    again = Optimizer(np.zeros_like(model.flat_params), np.zeros_like(model.flat_grads), name, **settings)
    ck.restore_optimizer(again)
    for slot in slots:
        np.testing.assert_array_equal(again.state[slot], opt.state[slot])
        assert np.any(opt.state[slot] != 0)


def test_model_from_checkpoint_restores_weights_buffers_and_metadata(tmp_path):
    spec = loads(NET)
    model = Model(spec, seed=3)
    model.buffers()["bn1.running_mean"][...] = [0.25, -0.5]
    meta = {"spec": spec.source, "input": [1, 8, 8], "classes": 3, "train": {}, "history": [{"epoch": 1}],
            "normalisation": {"mean": [0.1], "std": [0.2]}}
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    checkpoint.save(tmp_path / "run" / "checkpoints" / "best.npz", model, meta)
    for source in (tmp_path / "run", tmp_path / "run" / "checkpoints" / "best.npz"):
        back = Model.from_checkpoint(source)
        for name, value in model.params().items():
            np.testing.assert_array_equal(back.param(name), value)
        assert back.param("bn1.running_mean").tolist() == [0.25, -0.5]
        assert back.checkpoint.meta["history"] == [{"epoch": 1}]
        assert back.checkpoint.path == tmp_path / "run" / "checkpoints" / "best.npz"
        x = np.random.default_rng(0).normal(size=(2, 1, 8, 8)).astype(np.float32)
        np.testing.assert_array_equal(back.forward(x), model.forward(x))


def test_available_memory_honours_the_address_space_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    used = next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (used + (64 << 20), hard))
    try:
        free = memory.available()
        with pytest.raises(UserError, match=r"^reading x needs 1 GiB of memory, more than the \d+(\.\d+)? MiB"):
            memory.require(1 << 30, "reading x")
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    assert 0 < free <= 64 << 20
    memory.require(1 << 20, "a mebibyte")  # fits


def test_require_for_uses_the_figure_cnn_shapes_prints(monkeypatch):
    spec = loads(NET)
    m = spec.memory(16)
    monkeypatch.setattr(memory, "available", lambda: m["total"] - 1)
    with pytest.raises(UserError, match="training t at batch 16 needs"):
        memory.require_for(spec, 16, "training t")
    memory.require_for(spec, 16, "running t", training=False)  # inference needs less
    monkeypatch.setattr(memory, "available", lambda: m["total"])
    memory.require_for(spec, 16, "training t")
