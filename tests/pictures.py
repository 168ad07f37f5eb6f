"""Checks on PNG files the tests make: they open, have the expected size, and show something."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def assert_picture(path: Path, size: tuple[int, int], min_ink: float = 0.03) -> np.ndarray:
    """The PNG at path opens, is `size` (width, height) pixels and is not blank: at least
    `min_ink` of its pixels are not white and it has more than a handful of colours."""
    from PIL import Image

    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.size == size, f"{path.name}: {img.size} != {size}"
        pixels = np.asarray(img.convert("RGB"))
    ink = (pixels < 245).any(axis=2).mean()
    assert ink >= min_ink, f"{path.name} is nearly blank ({ink:.1%} ink)"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 8, f"{path.name} has almost no colours"
    return pixels
