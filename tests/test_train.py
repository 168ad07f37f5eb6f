"""Training on the shipped sample: learning, determinism, resume identity, interruption, NaN stop."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest

from cnncli import checkpoint
from cnncli import train as trainer
from cnncli.data import SAMPLE
from cnncli.errors import UserError
from cnncli.report.progress import TrainReport

from .helpers import ARCHITECTURES, ROOT

SMALL = ("name: small\ninput: 1x28x28\nclasses: 10\n"
         "net: conv k=4 f=5 p=2 -> bn -> relu -> pool 4 -> dropout 0.2 -> fc 10\n"
         "train:\n  data: fashion-mnist\n  epochs: 2\n  batch: 50\n  val: 500\n  optimizer: adam lr=0.005\n")


def small_spec(tmp_path, extra: str = "") -> str:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL + extra)
    return path


def train(tmp_path, name="run", extra="", **overrides):
    opts = trainer.Options(str(SAMPLE), tmp_path / name, {k: str(v) for k, v in overrides.items()})
    return trainer.start(small_spec(tmp_path, extra), opts, TrainReport(quiet=True))


def weights(run_dir):
    ck = checkpoint.load(run_dir / "checkpoints" / "last.npz")
    return {k.removeprefix("param/"): v for k, v in ck.arrays.items() if k.startswith("param/")}, ck.meta


def test_loss_falls_and_accuracy_beats_chance(tmp_path):
    summary = train(tmp_path)
    history = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in history] == [1, 2]
    assert history[1]["loss"] < history[0]["loss"]
    assert summary["final"]["val_acc"] > 0.6  # chance is 0.1
    assert (tmp_path / "run" / "checkpoints" / "best.npz").exists()
    csv = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert csv[0].startswith("epoch,loss,acc,val_loss,val_acc,lr") and len(csv) == 3
    assert (tmp_path / "run" / "spec.yaml").read_text() == SMALL


def test_epoch_batches_cover_the_data_once_in_a_seeded_order():
    index = np.arange(100, 111)  # 11 samples in batches of 5: 5, 5 and a batch of one, which is dropped
    batches = trainer.epoch_batches(index, seed=4, epoch=2, batch=5)
    assert [len(b) for b in batches] == [5, 5]
    assert len(set(np.concatenate(batches))) == 10 and set(np.concatenate(batches)) <= set(index)
    again = trainer.epoch_batches(index, seed=4, epoch=2, batch=5)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))
    other = np.concatenate(trainer.epoch_batches(index, seed=4, epoch=3, batch=5))
    assert not np.array_equal(np.concatenate(batches), other)  # a new order every epoch
    assert [len(b) for b in trainer.epoch_batches(index, seed=4, epoch=2, batch=4)] == [4, 4, 3]


def test_same_seed_same_weights_and_metrics(tmp_path):
    train(tmp_path, "a", epochs=1)
    train(tmp_path, "b", epochs=1)
    wa, ma = weights(tmp_path / "a")
    wb, mb = weights(tmp_path / "b")
    for name in wa:
        np.testing.assert_array_equal(wa[name], wb[name])
    assert ma["history"][0]["loss"] == mb["history"][0]["loss"]
    train(tmp_path, "c", epochs=1, seed=1)
    assert not np.array_equal(weights(tmp_path / "c")[0]["conv1.weight"], wa["conv1.weight"])


class InterruptAt(TrainReport):
    """Sends this process SIGINT after a given number of steps, as Ctrl-C would."""

    def __init__(self, at: int):
        super().__init__(quiet=True)
        self.at, self.count = at, 0

    def step(self, done, loss, acc, rate):
        self.count += 1
        if self.count == self.at:
            os.kill(os.getpid(), signal.SIGINT)


def test_interrupt_saves_and_resume_gives_identical_weights(tmp_path):
    extra = "  augment: [flip, crop 2]\n  schedule: cosine warmup=1\n"
    train(tmp_path, "whole", extra=extra)
    opts = trainer.Options(str(SAMPLE), tmp_path / "cut", {})
    with pytest.raises(trainer.Interrupted) as info:
        trainer.start(small_spec(tmp_path, extra), opts, InterruptAt(150))  # 110 steps per epoch: in epoch 2
    assert info.value.signum == signal.SIGINT
    meta = checkpoint.load(tmp_path / "cut" / "checkpoints" / "last.npz").meta
    assert (meta["epoch"], meta["step"]) == (1, 40)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    trainer.resume(tmp_path / "cut", TrainReport(quiet=True))
    whole, whole_meta = weights(tmp_path / "whole")
    resumed, resumed_meta = weights(tmp_path / "cut")
    for name in whole:
        np.testing.assert_array_equal(whole[name], resumed[name], err_msg=name)
    metrics = ("epoch", "loss", "acc", "val_loss", "val_acc", "lr")
    assert [{k: r[k] for k in metrics} for r in whole_meta["history"]] == \
           [{k: r[k] for k in metrics} for r in resumed_meta["history"]]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    train(tmp_path, "run", epochs=1)
    before = weights(tmp_path / "run")[0]["fc1.weight"].copy()
    opts = trainer.Options(str(SAMPLE), tmp_path / "run2", {"epochs": "2", "optimizer": "sgd lr=1e30"})
    with pytest.raises(trainer.LossDiverged, match="the loss became"):
        trainer.start(small_spec(tmp_path), opts, TrainReport(quiet=True))
    assert not (tmp_path / "run2" / "checkpoints" / "last.npz").exists()
    assert np.array_equal(weights(tmp_path / "run")[0]["fc1.weight"], before)


def test_early_stopping(tmp_path):
    summary = train(tmp_path, epochs=6, extra="  early_stop: val_acc patience=1\n  schedule: constant\n",
                    optimizer="sgd lr=0.0")  # nothing learns, so nothing improves after epoch 1
    assert summary["stopped_early"] and summary["epochs"] == 2
    assert summary["best"]["epoch"] == 1


def test_data_that_does_not_fit_the_spec(tmp_path):
    spec = tmp_path / "cifar.yaml"
    spec.write_text("input: 3x32x32\nclasses: 10\nnet: fc 10\n")
    with pytest.raises(UserError, match="images of 1x28x28, the spec's input is 3x32x32"):
        trainer.start(spec, trainer.Options(str(SAMPLE), tmp_path / "x", {}), TrainReport(quiet=True))
    spec.write_text("input: 1x28x28\nclasses: 5\nnet: fc 5\n")
    with pytest.raises(UserError, match=r"train-labels-idx1-ubyte.gz: sample \d+ has label 5, outside the spec's classes 0-4 \(labels range from 0 to 9\)"):
        trainer.start(spec, trainer.Options(str(SAMPLE), tmp_path / "y", {}), TrainReport(quiet=True))


def test_running_into_an_existing_run_is_refused(tmp_path):
    train(tmp_path, epochs=1)
    with pytest.raises(UserError, match="already holds a run"):
        train(tmp_path, epochs=1)


def test_cli_train_json_and_set(tmp_path):
    from .test_cli_shapes import cnn

    r = cnn("train", str(ARCHITECTURES / "fashion-tutorial.yaml"), "--data", str(SAMPLE), "--epochs", "1",
            "--set", "val=200", "--set", "batch=200", "--out", str(tmp_path / "r"), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["epochs"] == 1 and summary["final"]["val_acc"] > 0.5
    assert "data: " in r.stderr and "epoch 1/1" in r.stderr
    settings = json.loads((tmp_path / "r" / "run.json").read_text())["settings"]
    assert settings["batch"] == 200 and settings["val"] == 200
    r = cnn("train", str(ARCHITECTURES / "fashion-tutorial.yaml"), "--set", "epoch=2")
    assert r.returncode == 2 and "unknown train setting 'epoch'" in r.stderr and "did you mean epochs?" in r.stderr


def test_cli_interrupt_message_and_exit_code(tmp_path):
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "cnncli", "train", str(ARCHITECTURES / "fashion-tutorial.yaml"),
                             "--data", str(SAMPLE), "--epochs", "50", "--out", str(tmp_path / "r")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (tmp_path / "r" / "checkpoints" / "last.npz").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert f"resume with: cnn train --resume {tmp_path / 'r'}" in err and "Traceback" not in err


def test_regression_spec_trains_and_evaluates(tmp_path):
    """output: N specs train with MSE (or MAE) on float targets, and cnn eval reports MSE, MAE, R²."""
    rng = np.random.default_rng(0)
    x = (rng.random((600, 1, 8, 8)) * rng.random((600, 1, 1, 1)) * 255).astype(np.uint8)  # varied brightness
    y = np.stack([x.mean(axis=(1, 2, 3)) / 255, x[:, 0, :4].mean(axis=(1, 2)) / 255], axis=1).astype(np.float32)
    np.savez(tmp_path / "reg.npz", x=x[:500], y=y[:500], x_test=x[500:], y_test=y[500:])
    spec = tmp_path / "reg.yaml"
    spec.write_text("input: 1x8x8\noutput: 2\nnet: conv k=4 f=3 p=1 -> relu -> fc 2\n"
                    "train:\n  epochs: 8\n  batch: 50\n  val: 100\n  optimizer: adam lr=0.01\n  loss: mse\n")
    summary = trainer.start(spec, trainer.Options(str(tmp_path / "reg.npz"), tmp_path / "run", {}),
                            TrainReport(quiet=True))
    history = checkpoint.load(tmp_path / "run" / "checkpoints" / "last.npz").meta["history"]
    assert history[-1]["val_loss"] < history[0]["val_loss"] / 2 and "acc" not in history[-1]
    assert summary["best"]["metric"] == "val_loss"
    from .test_cli_shapes import cnn

    r = cnn("eval", str(tmp_path / "run"), "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert set(result) >= {"mse", "mae", "r2"} and result["r2"] > 0.5 and result["samples"] == 100
