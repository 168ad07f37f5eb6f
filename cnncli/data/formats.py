"""Readers for the common dataset layouts. Each returns a Dataset with NCHW images."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..archive import open_npz
from ..errors import UserError
from ..files import check_regular, image_error, read_bounded
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


def _images_nchw(x: np.ndarray, origin: str) -> np.ndarray:
    if x.ndim == 3:
        return x[:, None, :, :]
    if x.ndim == 4:
        if x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
            return np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # NHWC
        return x
    raise UserError(f"{origin}: images must be N x H x W or N x C x H x W, found shape {x.shape}", None)


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
    dataset = Dataset(path.name, str(path), x, y, xt, yt)
    dataset.origins = {"x_train": str(train_x), "y_train": str(train_y), "x_test": str(test_x), "y_test": str(test_y)}
    return dataset


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
    raw = read_bounded(path, "CIFAR batch", expansion=1)
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
    if meta.is_file():  # class names, one a line; a damaged byte must not stop the data from loading
        with open(meta, "rb") as f:
            text = f.read(1 << 20).decode("utf-8", "replace")
        names = [line.strip() for line in text.splitlines() if line.strip()]
    return Dataset(path.name, str(path), x, y, xt, yt, names)


def _npz(path: Path):
    with open_npz(path, ".npz data file", "np.savez(path, x=images, y=labels) writes one") as archive:
        if "x" not in archive.entries or "y" not in archive.entries:
            raise UserError(f"{path}: needs arrays 'x' and 'y', found {', '.join(archive.entries) or 'none'}",
                            "np.savez(path, x=images, y=labels[, x_test=..., y_test=...])")
        arrays = {name: archive.read(name) for name in ("x", "y", "x_test", "y_test") if name in archive.entries}
    dataset = Dataset(path.stem, str(path), _images_nchw(arrays["x"], f"{path}, array 'x'"), arrays["y"],
                      _images_nchw(arrays["x_test"], f"{path}, array 'x_test'") if "x_test" in arrays else None,
                      arrays.get("y_test"))
    dataset.origins = {f"{a}_{split}": f"{path}, array '{a}{suffix}'" for a in "xy"
                       for split, suffix in (("train", ""), ("test", "_test"))}
    return dataset


def _csv_pair(path: Path):
    x, y = _csv(path)
    xt = yt = None
    sibling = path.with_name(path.name.replace("train", "test")) if "train" in path.name else None
    if sibling is not None and sibling.exists():
        check_regular(sibling, "CSV file")
        xt, yt = _csv(sibling)
    dataset = Dataset(path.stem, str(path), x, y, xt, yt)
    for split, file in (("train", path), ("test", sibling)):
        dataset.origins.update({f"x_{split}": f"{file} (pixels)", f"y_{split}": f"{file} (labels, column 1)"})
    return dataset


def _csv(path: Path):
    """label, pixel1, pixel2, ... per row (Kaggle's Fashion-MNIST); an optional header row."""
    raw = read_bounded(path, "CSV file", expansion=4)  # int64 values of ~2-4 characters each
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise UserError(f"{path}:{line}: not UTF-8 text (byte {exc.start:,} is 0x{raw[exc.start]:02x})",
                        "save the CSV as UTF-8 or plain ASCII") from None
    del raw
    first = text[: text.find("\n")].split(",")[0].strip().strip('"')
    header = 0 if first.lstrip("-").isdigit() else 1
    try:
        data = np.loadtxt(io.StringIO(text), delimiter=",", quotechar='"', dtype=np.int64, ndmin=2,
                          skiprows=header)
    except ValueError:
        raise _csv_error(path, text, header) from None
    if data.size == 0:
        raise UserError(f"{path}: no data rows", None)
    pixels = data.shape[1] - 1
    side = int(round(pixels ** 0.5))
    if pixels < 1 or side * side != pixels:
        raise UserError(f"{path}: {pixels} pixels per row is not a square image", "rows are label + H*W pixels")
    bad = np.argwhere((data[:, 1:] < 0) | (data[:, 1:] > 255))
    if len(bad):
        row, col = int(bad[0][0]), int(bad[0][1]) + 1
        raise UserError(f"{path}:{_line(text, header, row)}: column {col + 1} is {data[row, col]}, not a pixel "
                        "value 0-255", "pixels are whole numbers 0-255")
    negative = np.flatnonzero(data[:, 0] < 0)
    if len(negative):
        row = int(negative[0])
        raise UserError(f"{path}:{_line(text, header, row)}: label {data[row, 0]} is negative",
                        "labels are class numbers 0, 1, 2, ...")
    return data[:, 1:].astype(np.uint8).reshape(-1, 1, side, side), data[:, 0].copy()


def _line(text: str, header: int, row: int) -> int:
    """The 1-based line of data row `row` (blank lines do not count as rows). Only on the error path."""
    seen = -1
    for number, line in enumerate(text.split("\n"), start=1):
        if number > header and line.strip():
            seen += 1
            if seen == row:
                return number
    return number


def _csv_error(path: Path, text: str, header: int) -> UserError:
    """Find the first value that is no whole number of int64's range, or a row of another width."""
    width = None
    for number, line in enumerate(text.split("\n"), start=1):
        if number <= header or not line.strip():
            continue
        values = line.split(",")
        if width is None:
            width = len(values)
        elif len(values) != width:
            return UserError(f"{path}:{number}: {len(values)} values, the first row has {width}",
                             "each row is a label followed by the same number of pixel values")
        for column, value in enumerate(values, start=1):
            try:
                number_value = int(value.strip().strip('"'))
            except ValueError:
                shown = value.strip()[:20].encode("unicode_escape").decode("ascii")
                return UserError(f"{path}:{number}: column {column} ('{shown}') is not a whole number",
                                 "each row is a label followed by pixel values 0-255")
            if not -(2 ** 63) <= number_value < 2 ** 63:
                return UserError(f"{path}:{number}: column {column} is a {len(value.strip())}-digit number",
                                 "each row is a label followed by pixel values 0-255")
    return UserError(f"{path}: not a CSV table of whole numbers", "each row is a label followed by pixel values 0-255")


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
            if file.suffix.lower() not in IMAGE_SUFFIXES or not file.is_file():  # no FIFOs or devices
                continue
            try:
                with Image.open(file) as img:
                    img = img.convert("L" if img.mode in ("L", "1", "I;16", "P") and img.mode != "P" else "RGB")
                    arr = np.asarray(img)
            except (OSError, Image.DecompressionBombError) as exc:
                raise image_error(file, exc) from None
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
