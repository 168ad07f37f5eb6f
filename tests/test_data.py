"""Dataset readers, their errors on damaged files, name resolution, augmentation and schedules."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest

from cnncli.data import SAMPLE, resolve
from cnncli.data.augment import Batcher, channel_stats
from cnncli.data.idx import read_idx, write_idx
from cnncli.errors import UserError
from cnncli.schedules import Schedule


def test_shipped_sample_is_real_balanced_fashion_mnist():
    d = resolve(str(SAMPLE))
    assert d.x_train.shape == (6000, 1, 28, 28) and d.x_test.shape == (1000, 1, 28, 28)
    assert d.x_train.dtype == np.uint8 and d.classes == 10
    assert np.bincount(d.y_train).tolist() == [600] * 10 and np.bincount(d.y_test).tolist() == [100] * 10


def test_named_dataset_falls_back_to_the_sample(monkeypatch, tmp_path):
    import cnncli.data as data

    monkeypatch.setattr(data, "SYSTEM", tmp_path / "none")
    monkeypatch.delenv("CNNCLI_DATA", raising=False)
    d = resolve("fashion-mnist")
    assert "sample shipped with cnncli" in d.source and d.class_names[0] == "T-shirt/top"
    assert len(resolve("fashion-mnist-sample").x_train) == 6000
    with pytest.raises(UserError, match="dataset 'mnist' was not found"):
        resolve("mnist")
    with pytest.raises(UserError, match="--data /nope: no such directory"):
        resolve("fashion-mnist", "/nope")
    with pytest.raises(UserError, match="neither a known name nor an existing path"):
        resolve("fashon-mnist")


def test_cnncli_data_directory_setting(monkeypatch, tmp_path):
    import cnncli.data as data

    target = tmp_path / "store" / "mnist"
    target.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (target / name).write_bytes((SAMPLE / name).read_bytes())
    monkeypatch.setattr(data, "SYSTEM", tmp_path / "none")
    monkeypatch.setenv("CNNCLI_DATA", str(tmp_path / "store"))
    d = resolve("mnist")
    assert d.source.endswith("($CNNCLI_DATA)") and len(d.x_train) == 6000 and d.x_test is None


def idx_dir(tmp_path, images: bytes, labels: bytes, gz=False):
    for name, payload in (("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels)):
        path = tmp_path / (name + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(payload) if gz else payload)
    return tmp_path


def test_idx_plain_and_gz_round_trip(tmp_path):
    x = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    y = np.array([1, 0], np.uint8)
    for gz in (False, True):
        folder = tmp_path / str(gz)
        folder.mkdir()
        d = resolve(str(idx_dir(folder, write_idx(x), write_idx(y), gz)))
        np.testing.assert_array_equal(d.x_train[:, 0], x)
        assert d.y_train.tolist() == [1, 0]


def test_idx_errors(tmp_path):
    x = write_idx(np.zeros((3, 2, 2), np.uint8))
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x12\x34\x56\x78rest")
    with pytest.raises(UserError, match="not an IDX file: expected magic number 0x0000TTDD, found 12345678"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(x[:-3])
    with pytest.raises(UserError, match="truncated: its header claims 3x2x2 values"):
        read_idx(short)
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(x)[:-8])
    with pytest.raises(UserError, match="damaged gzip file"):
        read_idx(broken)
    folder = tmp_path / "mismatch"
    folder.mkdir()
    with pytest.raises(UserError, match="has 3 images but .* has 2 labels"):
        resolve(str(idx_dir(folder, x, write_idx(np.zeros(2, np.uint8)))))


def test_cifar_binary(tmp_path):
    rng = np.random.default_rng(0)
    for name, n in (("data_batch_1.bin", 4), ("test_batch.bin", 2)):
        rec = np.concatenate([rng.integers(0, 10, (n, 1)), rng.integers(0, 256, (n, 3072))], axis=1)
        (tmp_path / name).write_bytes(rec.astype(np.uint8).tobytes())
    d = resolve(str(tmp_path))
    assert d.x_train.shape == (4, 3, 32, 32) and d.x_test.shape == (2, 3, 32, 32)
    (tmp_path / "data_batch_1.bin").write_bytes(b"x" * 100)
    with pytest.raises(UserError, match="not a CIFAR binary batch"):
        resolve(str(tmp_path))


def test_npz_and_csv(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 3)).astype(np.uint8)  # NHWC
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(5))
    d = resolve(str(tmp_path / "d.npz"))
    assert d.x_train.shape == (5, 3, 8, 8) and np.array_equal(d.x_train[1, 2], x[1, :, :, 2])
    np.savez(tmp_path / "bad.npz", images=x)
    with pytest.raises(UserError, match="needs arrays 'x' and 'y', found images"):
        resolve(str(tmp_path / "bad.npz"))
    (tmp_path / "obj.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="is not an .npz data file: an .npz is a zip archive"):
        resolve(str(tmp_path / "obj.npz"))
    rows = ["label," + ",".join(f"pixel{i}" for i in range(4))] + ["3,0,10,20,255", "1,5,5,5,5"]
    (tmp_path / "fashion-mnist_train.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "fashion-mnist_test.csv").write_text("2,1,2,3,4\n")
    d = resolve(str(tmp_path / "fashion-mnist_train.csv"))
    assert d.x_train.shape == (2, 1, 2, 2) and d.y_train.tolist() == [3, 1] and d.y_test.tolist() == [2]
    (tmp_path / "ragged.csv").write_text("1,2,3,4,5\n1,2,3\n")
    with pytest.raises(UserError, match="ragged.csv:2: 3 values, the first row has 5"):
        resolve(str(tmp_path / "ragged.csv"))


def test_image_folders(tmp_path):
    from PIL import Image

    for split in ("train", "test"):
        for label, cls in enumerate(("cat", "dog")):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            Image.fromarray(np.full((6, 5, 3), 40 * label, np.uint8)).save(folder / "a.png")
    d = resolve(str(tmp_path))
    assert d.x_train.shape == (2, 3, 6, 5) and d.class_names == ["cat", "dog"] and d.y_test.tolist() == [0, 1]
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "train" / "dog" / "b.png")
    with pytest.raises(UserError, match="must have one size"):
        resolve(str(tmp_path))


def batcher(images, augment, seed=0):
    return Batcher(images, np.zeros(images.shape[1]), np.ones(images.shape[1]), augment, seed, np.float64)


def test_gather_normalises_and_flip_crop_are_exact():
    images = np.random.default_rng(0).integers(0, 256, (4, 2, 5, 6)).astype(np.uint8)
    plain = Batcher(images, [0.5, 0.25], [2.0, 0.5], [], 0, np.float64)(np.array([2, 0]))
    np.testing.assert_allclose(plain[1, :, :, 0], (images[2, 1] / 255 - 0.25) / 0.5)
    flipped = batcher(images, [{"name": "flip", "p": 1.0}])(np.arange(4), train=True)
    np.testing.assert_allclose(flipped.transpose(3, 0, 1, 2), images[:, :, :, ::-1] / 255)
    b = batcher(images, [{"name": "crop", "pad": 2}], seed=3)
    out = b(np.arange(4), 0, 0, train=True).transpose(3, 0, 1, 2)
    rng = np.random.default_rng([3, 0, 0, 17])  # the generator the batcher uses for epoch 0, batch 0
    dy, dx = rng.integers(-2, 3, 4), rng.integers(-2, 3, 4)
    for n in range(4):
        shifted = np.zeros((2, 5, 6))
        src = images[n] / 255
        for h in range(5):
            for w in range(6):
                if 0 <= h + dy[n] < 5 and 0 <= w + dx[n] < 6:
                    shifted[:, h, w] = src[:, h + dy[n], w + dx[n]]
        np.testing.assert_allclose(out[n], shifted)


def test_augmentation_is_seeded_and_rotation_keeps_range():
    images = np.random.default_rng(0).integers(0, 256, (8, 1, 12, 12)).astype(np.uint8)
    aug = [{"name": "rotate", "deg": 30.0}, {"name": "zoom", "max": 0.2}, {"name": "brightness", "max": 0.3},
           {"name": "contrast", "max": 0.3}]
    a = batcher(images, aug, seed=1)(np.arange(8), 2, 5, train=True).copy()
    b = batcher(images, aug, seed=1)(np.arange(8), 2, 5, train=True)
    c = batcher(images, aug, seed=1)(np.arange(8), 2, 6, train=True)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() >= 0 and a.max() <= 1  # clipped to valid pixels
    still = batcher(images, [{"name": "rotate", "deg": 0.0}])(np.arange(8), train=True)
    np.testing.assert_allclose(still.transpose(3, 0, 1, 2), images / 255, atol=1e-12)


def test_channel_stats():
    images = np.array([[[[0, 255]]], [[[255, 255]]]], np.uint8)
    mean, std = channel_stats(images)
    assert mean[0] == pytest.approx(0.75) and std[0] == pytest.approx(np.std([0, 1, 1, 1]))


def lrs(setting, epochs=4, steps=5, base=0.1):
    s = Schedule(setting, base, epochs, steps)
    return [s.lr(e, i) for e in range(epochs) for i in range(steps)]


def test_schedules_follow_their_formulas():
    assert lrs({"name": "constant"}) == [0.1] * 20
    assert lrs({"name": "step", "every": 2, "gamma": 0.5})[::5] == pytest.approx([0.1, 0.1, 0.05, 0.05])
    assert lrs({"name": "multistep", "at": (1, 3), "gamma": 0.1})[::5] == pytest.approx([0.1, 0.01, 0.01, 0.001])
    assert lrs({"name": "exponential", "gamma": 0.9})[::5] == pytest.approx([0.1 * 0.9 ** e for e in range(4)])
    cos = lrs({"name": "cosine", "warmup": 1, "min_lr": 0.0})
    assert cos[:5] == pytest.approx([0.1 * (i + 1) / 5 for i in range(5)])  # linear warm-up
    assert cos[5] == pytest.approx(0.1) and cos[10] == pytest.approx(0.05 * (1 + math.cos(math.pi / 3)))
    one = lrs({"name": "onecycle", "max_lr": 1.0, "pct": 0.25})
    assert one[0] == pytest.approx(1 / 25) and max(one) == pytest.approx(1.0) and one[-1] == pytest.approx(1 / 25e4)
    cyc = lrs({"name": "cyclic", "max_lr": 0.3, "period": 2})
    assert cyc[0] == pytest.approx(0.1) and cyc[5] == pytest.approx(0.3) and cyc[10] == pytest.approx(0.1)


def test_plateau_schedule_reduces_after_patience():
    s = Schedule({"name": "plateau", "factor": 0.5, "patience": 1}, 0.1, 10, 1)
    for metric in (1.0, 0.9, 0.95, 0.95):  # better, then two epochs without improvement
        s.epoch_end(metric, higher_is_better=False)
    assert s.lr(4, 0) == pytest.approx(0.05)
