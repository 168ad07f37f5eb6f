"""Make the Fashion-MNIST sample shipped inside cnncli (cnncli/data/sample/).

    python scripts/make_fashion_sample.py /usr/share/datasets/fashion-mnist

Takes a class-balanced, seeded selection: 600 training images per class (6,000) and 100 test images
per class (1,000), and writes them in the original IDX format, gzip-compressed. Fashion-MNIST is
(c) Zalando SE, MIT licence.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cnncli.data.idx import read_idx, write_idx  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "cnncli" / "data" / "sample"


def pick(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    chosen = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)]
    return np.sort(np.concatenate(chosen))


def main(source: Path) -> None:
    rng = np.random.default_rng(2026)
    for split, prefix, per_class in (("train", "train", 600), ("t10k", "t10k", 100)):
        images = read_idx(source / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx(source / f"{prefix}-labels-idx1-ubyte.gz")
        keep = pick(labels, per_class, rng)
        for name, array in (("images-idx3-ubyte", images[keep]), ("labels-idx1-ubyte", labels[keep])):
            path = OUT / f"{split}-{name}.gz"
            with gzip.GzipFile(path, "wb", mtime=0) as f:
                f.write(write_idx(array))
            print(path, array.shape)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"))
