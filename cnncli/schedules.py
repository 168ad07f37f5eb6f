"""Learning-rate schedules, as the spec's `schedule:` names them. The rate is a function of the
position in training (epoch, step within it), so a resumed run follows the same curve; only
reduce-on-plateau keeps state, saved in checkpoints."""

from __future__ import annotations

import math
from typing import Any


class Schedule:
    def __init__(self, setting: dict[str, Any] | None, base_lr: float, epochs: int, steps_per_epoch: int):
        setting = dict(setting or {"name": "constant"})
        self.name = setting.pop("name")
        self.p = setting
        self.base = base_lr
        self.epochs = epochs
        self.steps = max(steps_per_epoch, 1)
        self.state = {"scale": 1.0, "best": None, "bad_epochs": 0}  # reduce-on-plateau only

    def lr(self, epoch: int, step: int) -> float:
        """The rate for step `step` (0-based) of epoch `epoch` (0-based)."""
        p, base = self.p, self.base
        t = epoch + step / self.steps  # epochs done, fractional
        if self.name == "constant":
            return base
        if self.name == "step":
            return base * p["gamma"] ** (epoch // p["every"])
        if self.name == "multistep":
            return base * p["gamma"] ** sum(1 for m in p["at"] if epoch >= m)
        if self.name == "exponential":
            return base * p["gamma"] ** epoch
        if self.name == "cosine":
            warm = p["warmup"]
            if t < warm:
                return base * (epoch * self.steps + step + 1) / (warm * self.steps)
            span = max(self.epochs - warm, 1e-9)
            return p["min_lr"] + (base - p["min_lr"]) * 0.5 * (1 + math.cos(math.pi * min((t - warm) / span, 1.0)))
        if self.name == "onecycle":
            # PyTorch's OneCycleLR with cosine annealing: max_lr/25 up to max_lr, then down to max_lr/25e4.
            peak = p["max_lr"] or 10 * base
            total = self.epochs * self.steps
            i = epoch * self.steps + step
            rise = max(p["pct"] * total - 1, 1)
            start, end = peak / 25, peak / 25 / 1e4
            if i <= rise:
                return _cos(start, peak, i / rise)
            return _cos(peak, end, min((i - rise) / max(total - 1 - rise, 1), 1.0))
        if self.name == "cyclic":
            cycle = t / p["period"]
            x = abs(2 * (cycle - math.floor(cycle)) - 1)  # 1 -> 0 -> 1 over a period
            return base + (p["max_lr"] - base) * (1 - x)
        if self.name == "plateau":
            return base * self.state["scale"]
        raise ValueError(f"unknown schedule {self.name}")  # validated by the spec: a bug if reached

    def epoch_end(self, metric: float | None, higher_is_better: bool) -> None:
        """Reduce-on-plateau looks at the monitored metric after each epoch."""
        if self.name != "plateau" or metric is None:
            return
        best = self.state["best"]
        improved = best is None or (metric > best if higher_is_better else metric < best)
        if improved:
            self.state["best"], self.state["bad_epochs"] = metric, 0
        else:
            self.state["bad_epochs"] += 1
            if self.state["bad_epochs"] > self.p["patience"]:
                self.state["scale"] *= self.p["factor"]
                self.state["bad_epochs"] = 0


def _cos(start: float, end: float, fraction: float) -> float:
    return end + (start - end) * (1 + math.cos(math.pi * fraction)) / 2
