"""Runs after the first: settings parsed once, extending a run, refusing changes a resume cannot
honour, fine-tuning from trained weights with frozen layers, and checkpoints whose spec no longer parses."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from cnncli import checkpoint
from cnncli import data as datasets
from cnncli import train as trainer
from cnncli.errors import UserError, Where
from cnncli.model import Model
from cnncli.report.progress import TrainReport
from cnncli.schedules import Schedule
from cnncli.spec import loads

from .helpers import ARCHITECTURES
from .test_cli_shapes import cnn
from .test_train import SMALL, small_spec, weights

QUIET = TrainReport(quiet=True)


class Messages(TrainReport):
    """Keeps the messages a run prints."""

    def __init__(self):
        super().__init__(quiet=True)
        self.lines = []

    def message(self, text):
        self.lines.append(text)


def sample_npz(path, classes=10, count=2000):
    """The first `count` training images of the shipped sample (of the first `classes` classes), as an .npz."""
    ds = datasets.resolve(str(datasets.SAMPLE))
    x, y, x_test, y_test = ds.x_train[:count], ds.y_train[:count], ds.x_test, ds.y_test
    np.savez(path, x=x[y < classes], y=y[y < classes], x_test=x_test[y_test < classes], y_test=y_test[y_test < classes])
    return str(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """1,500 images: 1,000 to train on (20 steps of 50), 500 to validate (the small spec's val)."""
    return sample_npz(tmp_path_factory.mktemp("data") / "small.npz", count=1500)


def run_small(tmp_path, data, name, extra="", **overrides):
    opts = trainer.Options(data, tmp_path / name, {k: str(v) for k, v in overrides.items()})
    return trainer.start(small_spec(tmp_path, extra), opts, QUIET)


MULTISTEP = "  schedule: multistep 5 gamma=0.5\n"  # the rate does not depend on the total number of epochs


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory, data):
    """A finished 2-epoch run of the small spec; tests resume copies of it."""
    tmp = tmp_path_factory.mktemp("two")
    run_small(tmp, data, "run", extra=MULTISTEP)
    return tmp / "run"


def copy_run(run, tmp_path, name="copy"):
    target = tmp_path / name
    shutil.copytree(run, target)
    return target


# -- the settings table (issue 12: parsed once, typed, positions kept)


def test_train_settings_are_typed_and_keep_their_positions():
    from cnncli.spec.train import TrainSettings

    spec = loads("input: 1x8x8\nnet: fc 2\ntrain:\n  epochs: 3\n  lr: 1e-5\n", "t.yaml")
    s = spec.train
    assert isinstance(s, TrainSettings) and (s.epochs, s.lr, s.batch) == (3, 1e-5, 64)  # YAML reads 1e-5 as text
    assert str(s.where["lr"]) == "t.yaml:5:7"
    changed = s.copy()
    changed.set("epochs", 7, Where("--epochs 7"))
    changed.set_text("augment", "[flip, crop 2]")
    assert (changed.epochs, spec.train.epochs) == (7, 3)  # the spec's own settings stay as written
    assert changed.augment == [{"name": "flip", "p": 0.5}, {"name": "crop", "pad": 2}]
    with pytest.raises(UserError) as info:
        changed.set("epochs", 0, Where("--epochs 0"))
    assert str(info.value).startswith("--epochs 0: train.epochs must be at least 1")
    with pytest.raises(UserError) as info:
        changed.set_text("lr", "fast")
    assert str(info.value).startswith("--set lr=fast: lr=fast is not valid: expected a number")
    restored = TrainSettings.from_json(json.loads(json.dumps(changed.to_json())))
    assert restored == changed


def test_cli_values_are_not_reparsed_as_text(tmp_path, data):
    """--lr 0.00001 used to become the text "1e-05", which YAML does not read as a number."""
    r = cnn("train", str(small_spec(tmp_path)), "--data", data, "--lr", "0.00001", "--epochs", "1",
            "--set", "weight_decay=1e-4", "--out", str(tmp_path / "r"), "--quiet")
    assert r.returncode == 0, r.stderr
    settings = json.loads((tmp_path / "r" / "run.json").read_text())["settings"]
    assert settings["lr"] == 1e-5 and settings["weight_decay"] == 1e-4 and settings["epochs"] == 1
    r = cnn("train", str(small_spec(tmp_path)), "--set", "lr=fast")
    assert r.returncode == 2 and r.stderr.startswith("error: --set lr=fast: lr=fast is not valid: expected a number")
    r = cnn("train", str(small_spec(tmp_path)), "--freeze", "cnv*", "--data", data)
    assert r.returncode == 2 and r.stderr.startswith("error: --freeze cnv*: train.freeze: no layer matches 'cnv*'")


# -- extending and resuming


def test_extending_a_finished_run_equals_training_longer_from_the_start(tmp_path, data, two_epochs):
    run = copy_run(two_epochs, tmp_path)
    summary = trainer.resume(run, QUIET, trainer.Options(values={"epochs": 3}))
    assert summary["epochs"] == 3
    run_small(tmp_path, data, "three", extra=MULTISTEP, epochs=3)
    extended, meta = weights(run)
    whole, whole_meta = weights(tmp_path / "three")
    for name in whole:
        np.testing.assert_array_equal(extended[name], whole[name], err_msg=name)
    assert [r["val_loss"] for r in meta["history"]] == [r["val_loss"] for r in whole_meta["history"]]
    assert meta["train"]["epochs"] == 3


def test_extending_a_cosine_run_follows_the_curve_of_the_new_total(tmp_path, data):
    extra = "  schedule: cosine\n"
    run_small(tmp_path, data, "two", extra=extra, epochs=1)
    report = Messages()
    trainer.resume(tmp_path / "two", report, trainer.Options(values={"epochs": 3}))
    assert report.lines[1] == ("note: the cosine schedule now spans 3 epochs instead of 1: the learning rate goes "
                               "from 0 to 0.00375 here and follows the 3-epoch curve from now on")
    history = weights(tmp_path / "two")[1]["history"]
    steps = 20  # 1,000 training samples in batches of 50
    planned_1 = Schedule({"name": "cosine", "warmup": 0, "min_lr": 0.0}, 0.005, 1, steps)
    planned_3 = Schedule({"name": "cosine", "warmup": 0, "min_lr": 0.0}, 0.005, 3, steps)
    assert history[0]["lr"] == planned_1.lr(0, steps - 1)  # the first epoch followed the 1-epoch curve
    assert [r["lr"] for r in history[1:]] == [planned_3.lr(e, steps - 1) for e in (1, 2)]


def test_resume_refuses_settings_it_cannot_change(tmp_path, data, two_epochs):
    run = copy_run(two_epochs, tmp_path)
    with pytest.raises(UserError) as info:
        trainer.resume(run, QUIET, trainer.Options(overrides={"optimizer": "sgd lr=0.1"}, values={"epochs": 4, "batch": 32}))
    message = str(info.value)
    assert "cannot change batch 50 -> 32 (--batch 32); optimizer adam" in message and "sgd lr=0.1" in message
    assert "only epochs, threads, early_stop" in info.value.hint and f"--weights {run}" in info.value.hint
    with pytest.raises(UserError, match="has already trained all 2 epochs"):
        trainer.resume(run, QUIET)
    with pytest.raises(UserError, match="has already trained 2 epochs; it cannot be resumed to 1"):
        trainer.resume(run, QUIET, trainer.Options(values={"epochs": 1}))
    other = tmp_path / "other.yaml"
    other.write_text(SMALL.replace("fc 10", "fc 16 -> relu -> fc 10"))
    with pytest.raises(UserError, match="describes another network than the run"):
        trainer.resume(run, QUIET, trainer.Options(values={"epochs": 3}), spec_path=other)
    with np.load(data) as f:
        np.savez(tmp_path / "half.npz", x=f["x"][:1000], y=f["y"][:1000])
    with pytest.raises(UserError, match="half.npz is not the data"):
        trainer.resume(run, QUIET, trainer.Options(data=str(tmp_path / "half.npz"), values={"epochs": 3}))
    assert weights(run)[1]["epoch"] == 2  # nothing was trained by the refusals


def test_resume_with_the_runs_own_spec_applies_its_epochs(tmp_path, two_epochs):
    run = copy_run(two_epochs, tmp_path)
    spec = tmp_path / "longer.yaml"
    spec.write_text(SMALL.replace("epochs: 2", "epochs: 3") + MULTISTEP)  # read back as (5,), stored as [5]
    r = cnn("train", str(spec), "--resume", str(run), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["epochs"] == 3 and "to 3 epochs" in r.stderr
    r = cnn("train", "--resume", str(run), "--lr", "0.1")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 2  # the error and its hint
    assert r.stderr.startswith("error: cannot change lr unset -> 0.1 (--lr 0.1) when resuming")


def test_a_run_stopped_early_trains_on_with_more_patience(tmp_path, data):
    extra = "  early_stop: val_acc patience=1\n"
    opts = trainer.Options(data, tmp_path / "r", {"optimizer": "sgd lr=0.0"}, values={"epochs": 6})
    summary = trainer.start(small_spec(tmp_path, extra), opts, QUIET)
    assert summary["stopped_early"] and summary["epochs"] == 2
    with pytest.raises(UserError, match="stopped early at epoch 2: val_acc had not improved for 1 epochs"):
        trainer.resume(tmp_path / "r", QUIET)
    summary = trainer.resume(tmp_path / "r", QUIET, trainer.Options(overrides={"early_stop": "val_acc patience=2"}))
    assert summary["stopped_early"] and summary["epochs"] == 3


# -- fine-tuning from trained weights, with frozen layers


FIVE = (ARCHITECTURES / "fashion-tutorial.yaml").read_text().replace("classes: 10", "classes: 5").replace(
    "fc 10", "fc 5 name=head") + "  freeze: ['conv*', 'bn*']\n"


def test_fine_tune_a_ten_class_net_into_a_five_class_head(tmp_path):
    r = cnn("train", str(ARCHITECTURES / "fashion-tutorial.yaml"), "--data", sample_npz(tmp_path / "ten.npz"),
            "--epochs", "1", "--set", "val=200", "--out", str(tmp_path / "ten"), "--quiet")
    assert r.returncode == 0, r.stderr
    spec = tmp_path / "five.yaml"
    spec.write_text(FIVE)
    r = cnn("train", str(spec), "--weights", str(tmp_path / "ten"), "--data", sample_npz(tmp_path / "five.npz", 5),
            "--epochs", "2", "--set", "val=200", "--out", str(tmp_path / "five"), "--json")
    assert r.returncode == 0, r.stderr
    assert "loaded conv1, bn1, conv2, bn2 (12 tensors)" in r.stderr
    assert "new (not in the checkpoint, initialised): head (2 tensors)" in r.stderr
    assert "frozen: conv1, bn1, conv2, bn2 (13,344 parameters fixed)" in r.stderr
    summary = json.loads(r.stdout)
    assert summary["weights"]["new"] == ["head.weight", "head.bias"] and summary["weights"]["skipped"] == []
    assert summary["weights"]["from"] == str(tmp_path / "ten" / "checkpoints" / "best.npz")
    assert json.loads((tmp_path / "five" / "run.json").read_text())["weights"] == summary["weights"]
    assert summary["final"]["val_acc"] > 0.5  # chance is 0.2

    before = checkpoint.load(tmp_path / "ten")
    after = checkpoint.load(tmp_path / "five" / "checkpoints" / "last.npz")
    frozen = [k for k in before.arrays if k.startswith(("param/", "buffer/")) and not k.startswith("param/fc1")]
    assert len(frozen) == 12  # 8 parameters and 4 BN running statistics
    for key in frozen:
        np.testing.assert_array_equal(after.arrays[key], before.arrays[key], err_msg=key)  # bit for bit
    initial = Model(loads(FIVE, "five.yaml"), seed=0).param("head.weight")
    assert np.abs(after.arrays["param/head.weight"] - initial).max() > 1e-3  # the new head trained
    assert after.meta["weights"]["loaded"][0] == "conv1.weight"


def test_weights_with_another_shape_are_skipped_and_reported(tmp_path, two_epochs):
    model = Model(loads(SMALL.replace("classes: 10", "classes: 5").replace("fc 10", "fc 5"), "five.yaml"))
    report = trainer.load_weights(model, two_epochs)
    assert report["skipped"] == [{"name": "fc1.weight", "checkpoint": [10, 196], "network": [5, 196]},
                                 {"name": "fc1.bias", "checkpoint": [10], "network": [5]}]
    assert report["loaded"] == ["conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias", "bn1.running_mean",
                                "bn1.running_var"] and report["new"] == []
    np.testing.assert_array_equal(model.param("conv1.weight"), weights(two_epochs)[0]["conv1.weight"])
    lines = trainer.describe_weights(report)
    assert lines[1] == "  skipped (shape differs, initialised): fc1.weight 10x196 -> 5x196, fc1.bias 10 -> 5"
    unrelated = Model(loads("input: 1x28x28\nclasses: 10\nnet: fc 10 name=out\n"))
    with pytest.raises(UserError, match="no parameter of this network has a name and shape"):
        trainer.load_weights(unrelated, two_epochs)


def test_freeze_patterns_must_match_a_layer():
    with pytest.raises(UserError) as info:
        loads("input: 1x8x8\nnet: conv k=2 f=3 -> fc 2\ntrain:\n  freeze: [conv1, stage1.*]\n", "t.yaml")
    assert info.value.message == "train.freeze: no layer matches 'stage1.*'" and str(info.value.where) == "t.yaml:4:11"
    spec = loads("input: 1x8x8\nnet: conv k=2 f=3 -> bn -> fc 2\ntrain:\n  freeze: conv1\n", "t.yaml")
    assert spec.frozen_layers() == ["conv1"] and spec.trainable_params == spec.total_params - 20
    settings = spec.train.copy()
    settings.set("freeze", ["cnv*"], Where("--freeze cnv*"))
    with pytest.raises(UserError) as info:
        spec.frozen_layers(settings)
    assert str(info.value).startswith("--freeze cnv*: train.freeze: no layer matches 'cnv*'")


def test_frozen_batch_norm_keeps_its_running_statistics():
    spec = loads("input: 1x6x6\nnet: conv k=3 f=3 -> bn -> relu -> fc 2\n", "t.yaml")
    model = Model(spec, frozen=["bn1"])
    model.param("bn1.running_mean")[...] = 0.5
    x = np.random.default_rng(0).standard_normal((4, 1, 6, 6)).astype(np.float32)
    train_out = model.forward(x, train=True)
    np.testing.assert_array_equal(train_out, model.forward(x, train=False))  # evaluation mode while training
    assert np.all(model.param("bn1.running_mean") == 0.5)
    assert model.flat_trainable.size == model.flat_params.size - 6  # bn1's weight and bias come first, fixed
    assert np.shares_memory(model.param("bn1.weight"), model.flat_params[:6])
    assert not np.shares_memory(model.param("bn1.weight"), model.flat_trainable)


# -- a checkpoint whose spec no longer parses


def test_checkpoint_whose_spec_no_longer_parses(tmp_path, two_epochs):
    run = copy_run(two_epochs, tmp_path)
    path = run / "checkpoints" / "last.npz"
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(arrays["meta"].tobytes())
    meta["spec"] = meta["spec"].replace("-> relu ->", "-> rleu ->")
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(path, **arrays)
    for args in (("train", "--resume", str(run), "--epochs", "3"), ("eval", str(path)),
                 ("export", str(path), str(tmp_path / "net.onnx"))):
        r = cnn(*args)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.startswith(f"error: {path}: the network stored in this checkpoint no longer parses: ")
        assert "unknown layer kind 'rleu'" in r.stderr
