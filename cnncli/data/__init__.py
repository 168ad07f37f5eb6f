"""Datasets: named ones (fashion-mnist, mnist, ...) and files in the common formats, as numpy arrays.

A name resolves to, in order: the --data directory, $CNNCLI_DATA/<name>, /usr/share/datasets/<name>
(Debian's dataset packages), and for fashion-mnist a small real sample shipped inside cnncli, so
that training works offline on a fresh install. The Dataset says which source was used.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError
from ..files import check_regular
from . import formats
from .dataset import Dataset

SAMPLE = Path(__file__).resolve().parent / "sample"
SYSTEM = Path("/usr/share/datasets")

CLASS_NAMES = {
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"],
    "mnist": [str(d) for d in range(10)],
    "kmnist": ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
    "cifar-10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}
NAMES = ("fashion-mnist", "fashion-mnist-sample", "mnist", "kmnist", "emnist", "cifar-10", "cifar-100")


def resolve(name_or_path: str, data_dir: str | Path | None = None) -> Dataset:
    """A dataset from a name (see NAMES) or a path (a file or a directory in a known format)."""
    key = name_or_path.lower()
    if key in NAMES:
        return _named(key, data_dir).validate()
    path = Path(name_or_path).expanduser()
    if data_dir is not None and not path.is_absolute() and not path.exists():
        path = Path(data_dir) / name_or_path
    if not path.exists():
        raise UserError(
            f"no dataset '{name_or_path}': it is neither a known name nor an existing path",
            "names: " + ", ".join(NAMES) + "; or give a directory of IDX or CIFAR files, an .npz, a .csv, "
            "or a folder of class sub-folders of images",
        )
    check_regular(path, "data file or directory", directory=True)
    dataset = formats.load_path(path)
    dataset.name = dataset.name or path.stem
    return dataset.validate()


def location(name_or_path: str) -> str:
    """What a run stores to find its data again from any directory: a name as it is, a path absolute."""
    if name_or_path.lower() in NAMES:
        return name_or_path
    path = Path(name_or_path).expanduser()
    return str(path.resolve()) if path.exists() else name_or_path


def _named(name: str, data_dir: str | Path | None) -> Dataset:
    if name == "fashion-mnist-sample":
        return _sample()
    tried = []
    candidates = []
    if data_dir is not None:
        if not Path(data_dir).is_dir():
            raise UserError(f"--data {data_dir}: no such directory", f"give the directory that holds the {name} files")
        candidates.append((Path(data_dir), "--data"))
    if os.environ.get("CNNCLI_DATA"):
        candidates.append((Path(os.environ["CNNCLI_DATA"]) / name, "$CNNCLI_DATA"))
    candidates.append((SYSTEM / name, "system"))
    for path, how in candidates:
        if path.is_dir() and any(path.iterdir()):
            dataset = formats.load_path(path)
            dataset.name, dataset.source = name, f"{path} ({how})"
            dataset.class_names = dataset.class_names or CLASS_NAMES.get(name)
            return dataset
        tried.append(str(path))
    if name == "fashion-mnist":
        dataset = _sample()
        dataset.source += "; for the full set: apt-get install dataset-fashion-mnist, or --data DIR"
        return dataset
    raise UserError(f"dataset '{name}' was not found (looked in: {', '.join(tried)})",
                    "download it and give its directory with --data DIR, or set CNNCLI_DATA to a folder "
                    f"that holds a '{name}' directory")


def _sample() -> Dataset:
    """The Fashion-MNIST sample inside the package: 6,000 training and 1,000 test images, balanced."""
    dataset = formats.load_path(SAMPLE)
    dataset.name = "fashion-mnist"
    dataset.source = (f"the Fashion-MNIST sample shipped with cnncli ({len(dataset.x_train):,} training and "
                      f"{len(dataset.x_test):,} test images)")
    dataset.class_names = CLASS_NAMES["fashion-mnist"]
    return dataset
