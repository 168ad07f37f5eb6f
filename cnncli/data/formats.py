"""Readers for the common dataset layouts. Each returns a Dataset with NCHW images."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import UserError
from .dataset import Dataset
from .idx import read_idx

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def load_path(path: Path):
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".npz":
            return _npz(path)
        if suffix == ".csv" or path.name.endswith(".csv.gz"):
            return _csv_pair(path)
        if path.name.endswith((".bin",)):
            x, y = _cifar_file(path)
            return Dataset(path.stem, str(path), x, y)
        raise UserError(f"{path}: unknown data file type '{suffix}'",
                        "use .npz (arrays x, y), .csv (label, pixels...), CIFAR .bin, or a directory")
    files = sorted(p for p in path.iterdir() if p.is_file())
    names = [p.name for p in files]
    if any("images-idx3" in n for n in names):
        return _idx_dir(path, files)
    if any(n.startswith(("data_batch", "test_batch")) or n in ("train.bin", "test.bin") for n in names):
        return _cifar_dir(path, files)
    if any(p.is_dir() for p in path.iterdir()):
        return _image_folders(path)
    raise UserError(f"{path}: no dataset found in this directory",
                    "expected IDX files (*-images-idx3-ubyte[.gz]), CIFAR binary batches (data_batch_*.bin), "
                    "or one sub-folder of images per class")


def _pick(files, *parts):
    hits = [f for f in files if all(p in f.name for p in parts)]
    return hits[0] if hits else None


def _images_nchw(x: np.ndarray, path) -> np.ndarray:
    if x.ndim == 3:
        return x[:, None, :, :]
    if x.ndim == 4:
        if x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
            return np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # NHWC
        return x
    raise UserError(f"{path}: images must be N x H x W or N x C x H x W, found shape {x.shape}", None)


def _idx_dir(path: Path, files):
    train_x = _pick(files, "train", "images-idx3")
    train_y = _pick(files, "train", "labels-idx1")
    test_x = _pick(files, "t10k", "images-idx3") or _pick(files, "test", "images-idx3")
    test_y = _pick(files, "t10k", "labels-idx1") or _pick(files, "test", "labels-idx1")
    if train_x is None or train_y is None:
        raise UserError(f"{path}: IDX training files missing",
                        "expected train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]")
    x, y = _idx_pair(train_x, train_y)
    xt = yt = None
    if test_x is not None and test_y is not None:
        xt, yt = _idx_pair(test_x, test_y)
    return Dataset(path.name, str(path), x, y, xt, yt)


def _idx_pair(images: Path, labels: Path):
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3:
        raise UserError(f"{images}: expected an IDX image file (3 dimensions), found {x.ndim}", None)
    if y.ndim != 1:
        raise UserError(f"{labels}: expected an IDX label file (1 dimension), found {y.ndim}", None)
    if len(x) != len(y):
        raise UserError(f"{images} has {len(x):,} images but {labels} has {len(y):,} labels",
                        "the two files must come from the same release")
    return x[:, None, :, :], y.astype(np.int64)


def _cifar_file(path: Path):
    raw = path.read_bytes()
    for label_bytes in (1, 2):  # CIFAR-10: label; CIFAR-100: coarse and fine label
        record = label_bytes + 3072
        if len(raw) % record == 0 and len(raw) // record > 0:
            if label_bytes == 2 and len(raw) % 3073 == 0:
                continue
            data = np.frombuffer(raw, np.uint8).reshape(-1, record)
            return data[:, label_bytes:].reshape(-1, 3, 32, 32), data[:, label_bytes - 1].astype(np.int64)
    raise UserError(f"{path}: not a CIFAR binary batch: {len(raw):,} bytes is no whole number of "
                    "3,073-byte (CIFAR-10) or 3,074-byte (CIFAR-100) records", "use the binary version of CIFAR")


def _cifar_dir(path: Path, files):
    train = [f for f in files if f.name.startswith("data_batch") or f.name == "train.bin"]
    test = [f for f in files if f.name.startswith("test_batch") or f.name == "test.bin"]
    parts = [_cifar_file(f) for f in train]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    xt = yt = None
    if test:
        tparts = [_cifar_file(f) for f in test]
        xt, yt = np.concatenate([p[0] for p in tparts]), np.concatenate([p[1] for p in tparts])
    names = None
    meta = path / "batches.meta.txt"
    if meta.exists():
        names = [line.strip() for line in meta.read_text().splitlines() if line.strip()]
    return Dataset(path.name, str(path), x, y, xt, yt, names)


def _npz(path: Path):
    with open(path, "rb") as f:
        if f.read(2) != b"PK":
            raise UserError(f"{path}: not a readable .npz file (it is no zip archive)",
                            "np.savez(path, x=images, y=labels) writes one")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except ValueError as exc:
        raise UserError(f"{path}: cannot read ({exc})", "an .npz with plain arrays x and y (no pickled objects)") from None
    except (OSError, EOFError) as exc:
        raise UserError(f"{path}: not a readable .npz file ({exc})", None) from None
    if "x" not in arrays or "y" not in arrays:
        raise UserError(f"{path}: needs arrays 'x' and 'y', found {', '.join(arrays) or 'none'}",
                        "np.savez(path, x=images, y=labels[, x_test=..., y_test=...])")
    x, y = _images_nchw(arrays["x"], path), arrays["y"]
    if len(x) != len(y):
        raise UserError(f"{path}: x has {len(x):,} samples but y has {len(y):,}", None)
    xt = _images_nchw(arrays["x_test"], path) if "x_test" in arrays else None
    yt = arrays.get("y_test")
    y = y.astype(np.int64) if np.issubdtype(y.dtype, np.integer) else y.astype(np.float32)
    if yt is not None:
        yt = yt.astype(y.dtype)
    return Dataset(path.stem, str(path), x, y, xt, yt)


def _csv_pair(path: Path):
    x, y = _csv(path)
    xt = yt = None
    sibling = path.with_name(path.name.replace("train", "test")) if "train" in path.name else None
    if sibling is not None and sibling.exists():
        xt, yt = _csv(sibling)
    return Dataset(path.stem, str(path), x, y, xt, yt)


def _csv(path: Path):
    """label, pixel1, pixel2, ... per row (Kaggle's Fashion-MNIST); an optional header row."""
    import gzip

    opener = gzip.open if path.name.endswith(".gz") else open
    rows = []
    with opener(path, "rt", newline="") as f:
        for number, row in enumerate(csv.reader(f), start=1):
            if not row:
                continue
            if number == 1 and not row[0].strip().lstrip("-").isdigit():
                continue  # header
            try:
                rows.append([int(v) for v in row])
            except ValueError:
                raise UserError(f"{path}:{number}: not all values are whole numbers",
                                "each row is a label followed by pixel values 0-255") from None
    if not rows:
        raise UserError(f"{path}: no data rows", None)
    width = len(rows[0])
    bad = next((i for i, r in enumerate(rows) if len(r) != width), None)
    if bad is not None:
        raise UserError(f"{path}: row {bad + 1} has {len(rows[bad])} values, the first has {width}", None)
    data = np.asarray(rows, np.int64)
    pixels = width - 1
    side = int(round(pixels ** 0.5))
    if side * side != pixels:
        raise UserError(f"{path}: {pixels} pixels per row is not a square image", "rows are label + H*W pixels")
    return data[:, 1:].astype(np.uint8).reshape(-1, 1, side, side), data[:, 0]


def _image_folders(path: Path):
    train_dir, test_dir = path / "train", path / "test"
    if train_dir.is_dir():
        x, y, names = _folder(train_dir, None)
        xt, yt, _ = _folder(test_dir, names) if test_dir.is_dir() else (None, None, None)
    else:
        x, y, names = _folder(path, None)
        xt = yt = None
    return Dataset(path.name, str(path), x, y, xt, yt, names)


def _folder(path: Path, names):
    try:
        from PIL import Image
    except ImportError:
        raise UserError(f"{path}: reading image files needs Pillow",
                        "pip install 'cnncli[images]' (or pip install pillow)") from None
    classes = names or sorted(p.name for p in path.iterdir() if p.is_dir())
    images, labels, size = [], [], None
    for label, cls in enumerate(classes):
        for file in sorted((path / cls).iterdir()) if (path / cls).is_dir() else []:
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(file) as img:
                    img = img.convert("L" if img.mode in ("L", "1", "I;16", "P") and img.mode != "P" else "RGB")
                    arr = np.asarray(img)
            except OSError as exc:
                raise UserError(f"{file}: not a readable image ({exc})", None) from None
            arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
            if size is None:
                size = arr.shape
            elif arr.shape != size:
                raise UserError(f"{file}: {arr.shape[1]}x{arr.shape[2]} with {arr.shape[0]} channel(s), but the "
                                f"first image is {size[1]}x{size[2]} with {size[0]}",
                                "all images of a dataset must have one size and colour mode")
            images.append(arr)
            labels.append(label)
    if not images:
        raise UserError(f"{path}: no images found in class sub-folders", "expected e.g. train/cat/001.png")
    return np.stack(images), np.asarray(labels, np.int64), classes
