"""cnn eval and cnn predict on a model trained briefly on the shipped sample; checkpoint errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnncli import checkpoint
from cnncli import evaluate as ev
from cnncli import train as trainer
from cnncli.data import resolve
from cnncli.errors import UserError
from cnncli.report.progress import TrainReport

from .pictures import assert_picture
from .test_cli_shapes import cnn

SPEC = ("name: tiny\ninput: 1x28x28\nclasses: 10\nnet: conv k=8 f=5 p=2 -> bn -> relu -> pool 2 -> fc 10\n"
        "train:\n  data: fashion-mnist-sample\n  epochs: 2\n  batch: 64\n  val: 300\n")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trained")
    (tmp / "tiny.yaml").write_text(SPEC)
    trainer.start(tmp / "tiny.yaml", trainer.Options(None, tmp / "run", {}), TrainReport(quiet=True))
    return tmp / "run"


def test_metrics_from_a_known_confusion_matrix():
    # 3 classes; rows true, columns predicted: [[2,1,0],[0,3,0],[1,0,0]]
    labels = np.array([0, 0, 0, 1, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 1, 1, 0])
    probs = np.full((7, 3), 0.1)
    probs[np.arange(7), predicted] = 0.8
    m = ev.classification_metrics(probs, labels, 3, top_k=2)
    assert m["confusion"] == [[2, 1, 0], [0, 3, 0], [1, 0, 0]]
    assert m["accuracy"] == pytest.approx(5 / 7)
    assert m["per_class"]["precision"] == pytest.approx([2 / 3, 3 / 4, 0.0])
    assert m["per_class"]["recall"] == pytest.approx([2 / 3, 1.0, 0.0])
    assert m["per_class"]["f1"] == pytest.approx([2 / 3, 6 / 7, 0.0])
    assert m["macro"]["f1"] == pytest.approx((2 / 3 + 6 / 7) / 3)
    assert m["weighted"]["recall"] == pytest.approx((3 * 2 / 3 + 3 * 1.0) / 7)
    assert m["loss"] == pytest.approx(-np.mean(np.log([0.8, 0.8, 0.1, 0.8, 0.8, 0.8, 0.1])))
    assert m["top2_accuracy"] >= m["accuracy"]


def test_regression_metrics():
    pred = np.array([[1.0], [2.0], [4.0]])
    target = np.array([1.0, 3.0, 3.0])
    m = ev.regression_metrics(pred, target)
    assert m["mse"] == pytest.approx(2 / 3) and m["mae"] == pytest.approx(2 / 3)
    assert m["r2"] == pytest.approx(1 - 2 / (24 / 9))  # residual SS 2, total SS about the mean 7/3


def test_eval_cli_table_json_and_png(run, tmp_path):
    r = cnn("eval", str(run), "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["samples"] == 1000 and result["split"] == "test"
    assert result["accuracy"] > 0.6 and result["class_names"][9] == "Ankle boot"
    assert sum(map(sum, result["confusion"])) == 1000
    trained = ev.load_trained(run)
    d = resolve("fashion-mnist-sample")
    assert result["accuracy"] == pytest.approx(np.mean(trained.outputs(d.x_test).argmax(1) == d.y_test))
    r = cnn("eval", str(run), "--png", str(tmp_path / "cm.png"))
    assert r.returncode == 0 and "confusion matrix" in r.stdout and "Ankle boot" in r.stdout
    assert_picture(tmp_path / "cm.png", (850, 700))  # 10 classes: (0.45 * 10 + 2.5 + 1.5) x 7 inches at 100 dpi


def test_predict_a_saved_png_of_a_test_image(run, tmp_path):
    from PIL import Image

    trained = ev.load_trained(run)
    d = resolve("fashion-mnist-sample")
    right = np.flatnonzero(trained.outputs(d.x_test[:50]).argmax(1) == d.y_test[:50])[0]
    Image.fromarray(d.x_test[right, 0]).save(tmp_path / "item.png")
    r = cnn("predict", str(run), str(tmp_path / "item.png"), "--json")
    assert r.returncode == 0, r.stderr
    top = json.loads(r.stdout)[0]["top"]
    assert top[0]["class"] == trained.class_names[d.y_test[right]] and len(top) == 3
    assert top[0]["probability"] >= top[1]["probability"]
    Image.fromarray(d.x_test[right, 0]).resize((56, 56)).convert("RGB").save(tmp_path / "big.png")
    r = cnn("predict", str(run), str(tmp_path / "big.png"))
    assert "converted RGB to L" in r.stdout and "resized 56x56 to 28x28" in r.stdout
    r = cnn("predict", str(run), "--data", "fashion-mnist-sample", "--index", f"{right},1")
    assert r.returncode == 0 and f"fashion-mnist-sample[{right}]" in r.stdout and "true: " in r.stdout


def test_checkpoint_errors(run, tmp_path):
    good = run / "checkpoints" / "last.npz"
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(UserError, match="cut.npz: damaged cnncli checkpoint: its zip directory is missing or damaged"):
        checkpoint.load(cut)
    ck = checkpoint.load(good)
    from cnncli.model import Model
    from cnncli.spec import loads

    other = Model(loads("input: 1x28x28\nclasses: 10\nnet: conv k=4 f=3 -> fc 10\n"))
    with pytest.raises(UserError, match="does not fit this network"):
        ck.restore(other)
    newer = tmp_path / "newer.npz"
    checkpoint.save(newer, ev.load_trained(run).model, {**ck.meta, "version": 99})
    with pytest.raises(UserError, match="format version 99; this cnncli reads up to 1"):
        checkpoint.load(newer)
    r = cnn("eval", str(cut))
    assert r.returncode == 2 and "damaged cnncli checkpoint" in r.stderr and "Traceback" not in r.stderr


def test_eval_refuses_data_that_does_not_fit(run, tmp_path):
    x = np.zeros((4, 3, 32, 32), np.uint8)
    np.savez(tmp_path / "rgb.npz", x=x, y=np.arange(4))
    r = cnn("eval", str(run), "--data", str(tmp_path / "rgb.npz"))
    assert r.returncode == 2 and "images of 3x32x32, the spec's input is 1x28x28" in r.stderr


def test_predict_shows_a_regression_models_values(tmp_path):
    rng = np.random.default_rng(1)
    x = (rng.random((120, 1, 8, 8)) * 255).astype(np.uint8)
    y = np.stack([x.mean(axis=(1, 2, 3)) / 255, x[:, 0, 0, 0] / 255], axis=1).astype(np.float32)
    np.savez(tmp_path / "reg.npz", x=x[:100], y=y[:100], x_test=x[100:], y_test=y[100:])
    (tmp_path / "reg.yaml").write_text("input: 1x8x8\noutput: 2\nnet: conv k=2 f=3 p=1 -> relu -> fc 2\n"
                                       "train:\n  epochs: 1\n  batch: 20\n  val: 20\n  loss: mse\n")
    trainer.start(tmp_path / "reg.yaml", trainer.Options(str(tmp_path / "reg.npz"), tmp_path / "run", {}),
                  TrainReport(quiet=True))
    r = cnn("predict", str(tmp_path / "run"), "--data", str(tmp_path / "reg.npz"), "--index", "3,0", "--json")
    assert r.returncode == 0, r.stderr
    results = json.loads(r.stdout)
    expected = ev.load_trained(tmp_path / "run").outputs(x[[103, 100]])
    assert [p["input"] for p in results] == [f"{tmp_path / 'reg.npz'}[3]", f"{tmp_path / 'reg.npz'}[0]"]
    # float32 sums in another order (other batch sizes, other BLAS paths) differ by a few 1e-6
    for p, want, target in zip(results, expected, y[[103, 100]]):
        np.testing.assert_allclose(p["values"], want, rtol=2e-5)
        np.testing.assert_allclose(p["target"], target, rtol=1e-6)
        assert "top" not in p
    r = cnn("predict", str(tmp_path / "run"), "--data", str(tmp_path / "reg.npz"), "--index", "3")
    assert r.returncode == 0, r.stderr
    head, values = r.stdout.splitlines()[:2]
    assert head == f"{tmp_path / 'reg.npz'}[3]  target: " + "  ".join(f"{v:.6g}" for v in y[103].astype(float))
    assert values.startswith("  predicted: ")
    np.testing.assert_allclose([float(v) for v in values.split(":")[1].split()], expected[0], rtol=2e-5)
