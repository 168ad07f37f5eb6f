"""Pictures of weights and activations: grids of small maps, drawn in a terminal with half blocks
(each character cell shows two pixels, top as foreground, bottom as background); PNG files are
drawn by report/plots.py.
With NO_COLOR or no colour support the terminal view falls back to a ramp of characters."""

from __future__ import annotations

import numpy as np
from rich.text import Text

RAMP = " .:-=+*#%@"


def grid(maps: np.ndarray, columns: int = 8, gap: int = 1, signed: bool = False) -> np.ndarray:
    """(K, H, W) or (K, 3, H, W) maps -> one image in [0, 1] (grey) or (3, ...) RGB, each map scaled on
    its own (signed maps around 0: -max -> 0, 0 -> 0.5, +max -> 1). Gaps are NaN (drawn blank)."""
    colour = maps.ndim == 4
    k = maps.shape[0]
    h, w = maps.shape[-2:]
    cols = min(columns, k)
    rows = -(-k // cols)
    channels = 3 if colour else 1
    out = np.full((channels, rows * (h + gap) - gap, cols * (w + gap) - gap), np.nan)
    for i in range(k):
        m = maps[i].astype(np.float64)
        if signed:
            scale = np.abs(m).max() or 1.0
            m = 0.5 + 0.5 * m / scale
        else:
            lo, hi = m.min(), m.max()
            m = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
        r, c = divmod(i, cols)
        out[:, r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = m if colour else m[None]
    return out if colour else out[0]


def _rgb(v: np.ndarray, signed: bool) -> tuple[int, int, int] | None:
    """A pixel's colour: grey, or blue-white-red for signed weights; None for a gap."""
    if np.isnan(v).any():
        return None
    if v.ndim == 1:  # RGB
        r, g, b = (int(255 * np.clip(x, 0, 1)) for x in v)
        return r, g, b
    x = float(np.clip(v, 0, 1))
    if signed:  # 0 -> blue, 0.5 -> white, 1 -> red
        if x < 0.5:
            t = x / 0.5
            return int(255 * t), int(255 * t), 255
        t = (1 - x) / 0.5
        return 255, int(255 * t), int(255 * t)
    g = int(255 * x)
    return g, g, g


def terminal(image: np.ndarray, signed: bool = False, colour: bool = True) -> Text:
    """A grid image as rich Text: ceil(H / 2) lines of W characters."""
    rgb_image = image.ndim == 3
    h = image.shape[-2]
    w = image.shape[-1]
    text = Text()
    for top in range(0, h, 2):
        for x in range(w):
            a = image[:, top, x] if rgb_image else image[top, x]
            b = (image[:, top + 1, x] if rgb_image else image[top + 1, x]) if top + 1 < h else np.array(np.nan)
            if not colour:
                vals = [float(np.nanmean(v)) for v in (a, b) if not np.isnan(v).all()]
                text.append(RAMP[int(round(np.mean(vals) * (len(RAMP) - 1)))] if vals else " ")
                continue
            fg, bg = _rgb(a, signed), _rgb(b, signed)
            if fg is None and bg is None:
                text.append(" ")
            elif fg is None:
                text.append("▄", style=f"rgb({bg[0]},{bg[1]},{bg[2]})")
            elif bg is None:
                text.append("▀", style=f"rgb({fg[0]},{fg[1]},{fg[2]})")
            else:
                text.append("▀", style=f"rgb({fg[0]},{fg[1]},{fg[2]}) on rgb({bg[0]},{bg[1]},{bg[2]})")
        text.append("\n")
    return text
