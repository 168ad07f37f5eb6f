"""PNG figures drawn with matplotlib: training curves, the confusion matrix, filter grids and
feature maps. Each has a title, labelled axes and a legend or colour bar where one helps.

matplotlib is an optional extra (`cnncli[plots]`); it is imported here only, with the
non-interactive Agg backend, so no window system is needed. Files are written atomically.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError

# Beyond this many classes the cells get no numbers and only every n-th tick is labelled.
CELL_TEXT_LIMIT = 20
TICK_LABEL_LIMIT = 30


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise UserError("PNG figures need matplotlib", "pip install 'cnncli[plots]'") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> tuple[int, int]:
    """Render to memory, then write atomically; returns the picture's (width, height) in pixels."""
    from ..checkpoint import write_atomic

    plt = _pyplot()
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=100)
    finally:
        size = fig.canvas.get_width_height()
        plt.close(fig)
    write_atomic(path, lambda f: f.write(buffer.getvalue()))
    return size


def training_curves(history: list[dict[str, Any]], title: str, path: Path) -> tuple[int, int]:
    """Loss and the main metric against epoch, training and validation, one panel each."""
    plt = _pyplot()
    epochs = [r["epoch"] for r in history]
    metric = "acc" if any("acc" in r or "val_acc" in r for r in history) else None
    panels = [("loss", "loss")] + ([("accuracy", "acc")] if metric else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (label, key) in zip(axes[0], panels):
        for prefix, what, style in (("", "training", "-o"), ("val_", "validation", "-s")):
            points = [(r["epoch"], r[prefix + key]) for r in history if r.get(prefix + key) is not None]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, style, markersize=4, label=f"{what} {label}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        if epochs:
            ax.set_xticks(_integer_ticks(min(epochs), max(epochs)))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def _integer_ticks(lo: int, hi: int, most: int = 12) -> list[int]:
    step = max(1, math.ceil((hi - lo + 1) / most))
    return list(range(lo, hi + 1, step))


def confusion_matrix(matrix: np.ndarray, class_names: list[str], title: str, path: Path) -> tuple[int, int]:
    """Rows are the true classes, columns the predictions. Colours show each row's share (so rare
    classes are as visible as common ones); counts are written in the cells when they fit."""
    plt = _pyplot()
    matrix = np.asarray(matrix, dtype=np.int64)
    n = len(matrix)
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    side = min(max(6.0, 0.45 * n + 2.5), 24.0)
    fig, ax = plt.subplots(figsize=(side + 1.5, side))
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    every = max(1, math.ceil(n / TICK_LABEL_LIMIT))
    ticks = list(range(0, n, every))
    labels = [class_names[i] for i in ticks]
    ax.set_xticks(ticks, labels, rotation=90 if n > 10 or max(map(len, labels), default=0) > 6 else 0)
    ax.set_yticks(ticks, labels)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if n <= CELL_TEXT_LIMIT:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{matrix[i, j]:,}", ha="center", va="center", fontsize=8 if n > 10 else 10,
                        color="white" if share[i, j] > 0.5 else "black")
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def _grid_shape(count: int, most_columns: int = 8) -> tuple[int, int]:
    columns = min(most_columns, count)
    return -(-count // columns), columns


def filter_grid(weights: np.ndarray, layer: str, path: Path) -> tuple[int, int]:
    """A conv's filters, one panel each: RGB for 3-channel inputs, else channel 0 on a diverging
    scale centred on zero (red positive, blue negative). `weights` is (K, C, h, w)."""
    plt = _pyplot()
    k, c = weights.shape[:2]
    rows, columns = _grid_shape(k)
    fig, axes = plt.subplots(rows, columns, figsize=(1.2 * columns + 0.6, 1.2 * rows + 0.8), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if i >= k:
            continue
        w = weights[i].astype(np.float64)
        if c == 3:
            lo, hi = w.min(), w.max()
            ax.imshow(np.transpose((w - lo) / (hi - lo) if hi > lo else np.zeros_like(w), (1, 2, 0)),
                      interpolation="nearest")
        else:
            bound = float(np.abs(w[0]).max()) or 1.0
            ax.imshow(w[0], cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest")
        ax.set_title(str(i), fontsize=7)
    shown = "RGB" if c == 3 else "channel 0, red > 0 > blue"
    fig.suptitle(f"{layer} filters ({'x'.join(map(str, weights.shape))}; {shown})")
    fig.tight_layout()
    return _save(fig, path)


def feature_maps(maps: np.ndarray, layer: str, image: np.ndarray | None, caption: str | None,
                 path: Path) -> tuple[int, int]:
    """The input image (if given, `(C, H, W)`) beside a layer's maps `(K, H, W)` for it."""
    plt = _pyplot()
    k = maps.shape[0]
    rows, columns = _grid_shape(k)
    left = 1 if image is not None else 0
    fig = plt.figure(figsize=(1.3 * (columns + 2 * left) + 0.6, 1.3 * rows + 1.0))
    grid = fig.add_gridspec(rows, columns + 2 * left)
    if image is not None:
        ax = fig.add_subplot(grid[:, :2])
        picture = image.astype(np.float64)
        if picture.shape[0] == 3:
            lo, hi = picture.min(), picture.max()
            ax.imshow(np.transpose((picture - lo) / (hi - lo) if hi > lo else np.zeros_like(picture), (1, 2, 0)))
        else:
            ax.imshow(picture[0], cmap="gray")
        ax.set_title("input", fontsize=9)
        ax.set_axis_off()
    for i in range(rows * columns):
        ax = fig.add_subplot(grid[i // columns, 2 * left + i % columns])
        ax.set_axis_off()
        if i < k:
            ax.imshow(maps[i], cmap="viridis", interpolation="nearest")
            ax.set_title(str(i), fontsize=7)
    fig.suptitle(f"{layer} feature maps ({'x'.join(map(str, maps.shape))})" + (f" for {caption}" if caption else ""))
    fig.tight_layout()
    return _save(fig, path)


def sweep_figures(study, folder: Path) -> list[str]:
    """Optuna's own optimisation-history and parallel-coordinates plots of a sweep's study."""
    import warnings

    _pyplot()
    from optuna.visualization import matplotlib as optuna_plots

    written = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        for name, draw in (("history.png", optuna_plots.plot_optimization_history),
                           ("parallel.png", optuna_plots.plot_parallel_coordinate)):
            figure = draw(study).figure
            figure.set_size_inches(8, 4.5)
            figure.tight_layout()  # Optuna puts the legend beside the axes
            _save(figure, folder / name)
            written.append(str(folder / name))
    return written
