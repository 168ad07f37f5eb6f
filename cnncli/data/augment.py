"""Batch preparation and augmentation: Numba kernels over the engine's (C, H, W, N) batches.

A batch is gathered from the dataset, scaled and normalised in one pass, then augmented in the
normalised space (padding takes the value of a black pixel, brightness is scaled by the channel's
std, so the result equals augmenting first). Every random draw comes from a generator seeded by
(seed, epoch, batch), so a run can be repeated or resumed exactly.
"""

from __future__ import annotations

import math

import numpy as np

from ..ops.jit import kernel
from ..ops.threads import parallel


@kernel
def gather_normalise(lo, hi, source, index, scale, mean, inv_std, out):
    """out[c, h, w, b] = (source[index[b], c, h, w] * scale - mean[c]) * inv_std[c], rows lo..hi."""
    C, H, W, B = out.shape
    s = out.dtype.type(scale)
    for c in range(C):
        m = out.dtype.type(mean[c])
        k = out.dtype.type(inv_std[c])
        for b in range(B):
            img = source[index[b], c]
            for h in range(lo, hi):
                for w in range(W):
                    out[c, h, w, b] = (img[h, w] * s - m) * k


@kernel
def flip(lo, hi, x, flags):
    C, H, W, N = x.shape
    for c in range(lo, hi):
        for h in range(H):
            for w in range(W // 2):
                a, b = x[c, h, w], x[c, h, W - 1 - w]
                for n in range(N):
                    if flags[n]:
                        t = a[n]
                        a[n] = b[n]
                        b[n] = t


@kernel
def warp(lo, hi, x, mats, fill, out):
    """Per sample, out(h, w) = x at the point mats[n] maps (h, w) to, bilinear; outside: fill[c].
    Integer translations (crop) land exactly on pixels and are copied unchanged. Output rows lo..hi."""
    C, H, W, N = x.shape
    for c in range(C):
        f = x.dtype.type(fill[c])
        for h in range(lo, hi):
            for w in range(W):
                for n in range(N):
                    sy = mats[n, 0] * h + mats[n, 1] * w + mats[n, 2]
                    sx = mats[n, 3] * h + mats[n, 4] * w + mats[n, 5]
                    y0 = math.floor(sy)
                    x0 = math.floor(sx)
                    fy = sy - y0
                    fx = sx - x0
                    acc = 0.0
                    for dy in range(2):
                        wy = fy if dy else 1.0 - fy
                        if wy == 0.0:
                            continue
                        yy = y0 + dy
                        for dx in range(2):
                            wx = fx if dx else 1.0 - fx
                            if wx == 0.0:
                                continue
                            xx = x0 + dx
                            v = x[c, yy, xx, n] if (yy >= 0 and yy < H and xx >= 0 and xx < W) else f
                            acc += wy * wx * v
                    out[c, h, w, n] = acc


@kernel
def tone(lo, hi, x, add, mul, low, high):
    """Contrast (scale about each sample's channel mean) and brightness (shift), then clip to the
    range of valid pixel values. Samples lo..hi."""
    C, H, W, N = x.shape
    for c in range(C):
        for n in range(lo, hi):
            total = 0.0
            for h in range(H):
                for w in range(W):
                    total += x[c, h, w, n]
            mean = total / (H * W)
            for h in range(H):
                for w in range(W):
                    v = (x[c, h, w, n] - mean) * mul[n] + mean + add[c, n]
                    x[c, h, w, n] = min(max(v, low[c]), high[c])


class Batcher:
    """Turns dataset indices into normalised, augmented engine batches, reusing its buffers."""

    def __init__(self, source: np.ndarray, mean: np.ndarray, std: np.ndarray, augment: list[dict], seed: int,
                 dtype=np.float32):
        self.source = source
        self.scale = 1 / 255 if source.dtype == np.uint8 else 1.0
        self.mean = np.asarray(mean, np.float64)
        self.std = np.asarray(std, np.float64)
        self.augment = augment or []
        self.seed = seed
        self.dtype = np.dtype(dtype)
        self.fill = (0.0 - self.mean) / self.std  # a black pixel, normalised
        self.low, self.high = self.fill, (1.0 - self.mean) / self.std
        self._buffers: dict[tuple, np.ndarray] = {}

    def _buffer(self, key: str, shape) -> np.ndarray:
        arr = self._buffers.get((key, shape))
        if arr is None:
            arr = self._buffers[(key, shape)] = np.empty(shape, self.dtype)
        return arr

    def __call__(self, index: np.ndarray, epoch: int = 0, batch: int = 0, train: bool = False) -> np.ndarray:
        c, h, w = self.source.shape[1:]
        shape = (c, h, w, len(index))
        x = self._buffer("x", shape)
        parallel(gather_normalise, h, self.source, np.ascontiguousarray(index, np.int64), self.scale, self.mean,
                 1.0 / self.std, x)
        if train and self.augment:
            x = self._augment(x, np.random.default_rng([self.seed, epoch, batch, 17]))
        return x

    def _augment(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c, h, w, n = x.shape
        mats = np.zeros((n, 6))
        mats[:, 0] = mats[:, 4] = 1.0
        warped = False
        add = np.zeros((c, n))
        mul = np.ones(n)
        toned = False
        for step in self.augment:
            kind = step["name"]
            if kind == "flip":
                parallel(flip, c, x, rng.random(n) < step["p"])
            elif kind == "crop":
                pad = step["pad"]
                mats[:, 2] += rng.integers(-pad, pad + 1, n)
                mats[:, 5] += rng.integers(-pad, pad + 1, n)
                warped = True
            elif kind in ("rotate", "zoom"):
                if kind == "rotate":
                    angle = np.radians(rng.uniform(-step["deg"], step["deg"], n))
                    cos, sin, zoom = np.cos(angle), np.sin(angle), np.ones(n)
                else:
                    cos, sin, zoom = np.ones(n), np.zeros(n), 1.0 / rng.uniform(1 - step["max"], 1 + step["max"], n)
                cy, cx = (h - 1) / 2, (w - 1) / 2
                # source = centre + R * zoom * (target - centre), composed after earlier steps
                a, b = cos * zoom, -sin * zoom
                d, e = sin * zoom, cos * zoom
                new = np.stack([a, b, cy - a * cy - b * cx, d, e, cx - d * cy - e * cx], axis=1)
                mats = _compose(mats, new)
                warped = True
            elif kind == "brightness":
                add += rng.uniform(-step["max"], step["max"], n)[None, :] / self.std[:, None]
                toned = True
            elif kind == "contrast":
                mul *= rng.uniform(1 - step["max"], 1 + step["max"], n)
                toned = True
        if warped:
            out = self._buffer("warped", x.shape)
            parallel(warp, h, x, mats, self.fill, out)
            x = out
        if toned:
            parallel(tone, n, x, add, mul, self.low, self.high)
        return x


def _compose(first: np.ndarray, then: np.ndarray) -> np.ndarray:
    """Point maps as rows [a b t; d e u]: apply `then` to the target, then `first`."""
    a1, b1, t1, d1, e1, u1 = first.T
    a2, b2, t2, d2, e2, u2 = then.T
    return np.stack([a1 * a2 + b1 * d2, a1 * b2 + b1 * e2, a1 * t2 + b1 * u2 + t1,
                     d1 * a2 + e1 * d2, d1 * b2 + e1 * e2, d1 * t2 + e1 * u2 + u1], axis=1)


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of the training images, scaled to [0, 1] for uint8."""
    scale = 1 / 255 if images.dtype == np.uint8 else 1.0
    c = images.shape[1]
    mean = np.empty(c)
    std = np.empty(c)
    for i in range(c):  # one channel at a time: no float copy of the whole set
        channel = images[:, i].astype(np.float64) * scale
        mean[i] = channel.mean()
        std[i] = channel.std() or 1.0
    return mean, std
