"""PNG figures (matplotlib): titled, labelled, the expected size, never blank - also for 100 classes."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from cnncli.errors import UserError
from cnncli.report import plots

from .pictures import assert_picture

pytest.importorskip("matplotlib")


def test_confusion_matrix_of_100_classes_is_not_blank(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 100, 5000)
    predicted = np.where(rng.random(5000) < 0.6, labels, rng.integers(0, 100, 5000))
    matrix = np.zeros((100, 100), np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    names = [f"class {i}" for i in range(100)]
    size = plots.confusion_matrix(matrix, names, "cifar-100: confusion matrix", tmp_path / "cm.png")
    assert size == (2550, 2400)  # capped at 24 inches high (+1.5 for the colour bar), 100 dpi
    pixels = assert_picture(tmp_path / "cm.png", size, min_ink=0.1)
    # the diagonal (60 % of each row) is dark blue: the centre of the picture is far from white
    h, w, _ = pixels.shape
    centre = pixels[h // 2 - 20 : h // 2 + 20, w // 2 - 40 : w // 2].astype(int)
    assert centre.min() < 120


def test_confusion_matrix_names_and_counts_few_classes(tmp_path):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    texts = []
    real_close = plt.close

    def spy(fig):  # read the drawn text before the figure is closed
        texts.extend(t.get_text() for ax in fig.axes for t in ax.texts)
        texts.extend(t.get_text() for ax in fig.axes for t in ax.get_xticklabels() + ax.get_yticklabels())
        texts.extend(ax.get_xlabel() for ax in fig.axes)
        real_close(fig)

    plt.close = spy
    try:
        plots.confusion_matrix(np.array([[5, 1], [0, 1234]]), ["cat", "dog"], "pets", tmp_path / "cm.png")
    finally:
        plt.close = real_close
    assert {"5", "1", "0", "1,234", "cat", "dog", "predicted class"} <= set(texts)


def test_training_curves_filters_and_maps(tmp_path):
    history = [{"epoch": e, "loss": 1 / e, "acc": 0.5 + e / 20, "val_loss": 1.2 / e, "val_acc": 0.45 + e / 20}
               for e in range(1, 6)]
    assert plots.training_curves(history, "run: curves", tmp_path / "c.png") == (1100, 400)
    assert_picture(tmp_path / "c.png", (1100, 400))
    regression = [{"epoch": e, "loss": 1 / e, "val_loss": 1.1 / e} for e in range(1, 4)]
    assert plots.training_curves(regression, "reg", tmp_path / "r.png") == (550, 400)
    weights = np.random.default_rng(1).normal(0, 1, (16, 3, 5, 5))
    assert plots.filter_grid(weights, "conv1", tmp_path / "f.png") == (1020, 320)
    assert_picture(tmp_path / "f.png", (1020, 320))
    maps = np.random.default_rng(2).random((4, 12, 12))
    image = np.random.default_rng(3).random((1, 24, 24))
    assert plots.feature_maps(maps, "relu1", image, "sample 0", tmp_path / "m.png") == (840, 230)
    assert_picture(tmp_path / "m.png", (840, 230))


def test_missing_matplotlib_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(UserError) as info:
        plots.training_curves([{"epoch": 1, "loss": 1.0}], "t", tmp_path / "c.png")
    assert "pip install 'cnncli[plots]'" in str(info.value)
    assert not (tmp_path / "c.png").exists()
