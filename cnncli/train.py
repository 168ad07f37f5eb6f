"""`cnn train`: the training loop, run directories, checkpoints, resume, interruption.

Everything random is drawn from generators seeded by (seed, epoch, step): the shuffle of each
epoch, augmentation, dropout. With the optimizer, schedule and BN state in the checkpoint, a
resumed run therefore continues exactly where the interrupted one stopped.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from . import checkpoint, memory
from . import data as datasets
from .archive import damaged
from .errors import UserError, Where
from .files import check_regular
from .outputs import check_directory
from .report import tensorboard_log
from .schedules import Schedule
from .spec import Spec
from .spec.train import SETTINGS, TrainSettings

HIGHER_IS_BETTER = {"val_acc": True, "acc": True, "val_loss": False, "loss": False}


class Interrupted(Exception):
    def __init__(self, signum: int, path: Path):
        super().__init__(f"interrupted by signal {signum}")
        self.signum, self.path = signum, path


class LossDiverged(Exception):
    def __init__(self, message: str):
        super().__init__(message)


@dataclass
class Options:
    """What the `cnn train` command line adds to a spec's (or a resumed run's) settings."""

    data: str | None = None
    out: Path | None = None
    overrides: dict[str, str] = field(default_factory=dict)  # --set key=value, as written
    threads: int | None = None
    tensorboard_every: int | None = None  # log to RUN/tensorboard, the step loss every N steps
    values: dict[str, Any] = field(default_factory=dict)  # typed options: {"epochs": 10, "lr": 0.01}
    weights: Path | None = None  # --weights: start from a run's or checkpoint's parameters

    def settings(self, base: TrainSettings) -> TrainSettings:
        """A copy of base with --set values, then the typed options (which win, as they are explicit)."""
        settings = base.copy()
        for key, text in self.overrides.items():
            settings.set_text(key, text)
        for key, value in self.values.items():
            shown = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
            settings.set(key, value, Where(f"--{key.replace('_', '-')} {shown}"))
        return settings


@dataclass
class Prepared:
    """Everything a run needs besides the model: data split, normalisation, settings."""

    settings: TrainSettings
    data_argument: str  # the name or path the data came from, as the user wrote it
    data_path: str  # the same, a path made absolute: what `cnn eval` and resume use, from any directory
    dataset: Any
    train_index: np.ndarray
    val_index: np.ndarray
    mean: np.ndarray
    std: np.ndarray


def prepare(spec: Spec, settings: TrainSettings, data_override: str | None) -> Prepared:
    name = data_override or settings.data
    if not name:
        raise UserError("no data to train on", "give --data NAME_OR_PATH, or `data:` under `train:` in the spec")
    data_dir = None
    spec_named = str(settings.data or "").lower() in datasets.NAMES  # e.g. fashion-mnist
    if data_override and spec_named and data_override.lower() not in datasets.NAMES and Path(data_override).is_dir():
        name, data_dir = settings.data, data_override  # --data DIR for the spec's named dataset
    dataset = datasets.resolve(name, data_dir)
    dataset.check_fits(spec)
    rng = np.random.default_rng([settings.seed, 999])
    order = rng.permutation(len(dataset.x_train))
    val = settings.val
    count = int(round(val * len(order))) if isinstance(val, float) else int(val)
    if count >= len(order) - 1:
        raise UserError(f"val {val} leaves no training data ({len(order)} samples)", "use a smaller fraction or count")
    from .data.augment import channel_stats

    train_index, val_index = np.sort(order[count:]), np.sort(order[:count])
    mean, std = channel_stats(dataset.x_train[train_index])
    given = data_override or name
    return Prepared(settings, given, datasets.location(given), dataset, train_index, val_index, mean, std)


def epoch_batches(index: np.ndarray, seed: int, epoch: int, batch: int) -> list[np.ndarray]:
    """The training samples of one epoch, shuffled by (seed, epoch) and cut into batches: a function
    of its arguments alone, so a resumed run (or a reference implementation) sees the same order."""
    order = index[np.random.default_rng([seed, epoch]).permutation(len(index))]
    out = [order[i : i + batch] for i in range(0, len(order), batch)]
    if len(out) > 1 and len(out[-1]) < 2:
        out.pop()  # batch norm cannot train on a batch of one
    return out


class Run:
    """One training run: model, optimizer, schedule, data, and the run directory's files."""

    def __init__(self, spec: Spec, prepared: Prepared, out: Path, report, resume: checkpoint.Checkpoint | None = None,
                 log=None, weights: Path | None = None):
        from . import losses, optim
        from .data.augment import Batcher
        from .model import Model
        from .step import TrainStep

        s = self.settings = prepared.settings
        self.spec, self.prepared, self.out, self.report = spec, prepared, out, report
        self.log = log  # a TensorBoardLog, or None
        frozen = spec.frozen_layers(s)
        self.model = (Model.from_checkpoint(resume, frozen=frozen) if resume is not None
                      else Model(spec, np.float32, seed=s.seed, frozen=frozen))
        self.weights = load_weights(self.model, weights) if weights is not None else None
        self.loss = losses.from_spec(s, spec.classes)
        self.optimizer = optim.from_spec(s, self.model.flat_trainable, self.model.flat_trainable_grads)
        self.step = TrainStep(self.model, self.loss, self.optimizer)
        ds = prepared.dataset
        self.batcher = Batcher(ds.x_train, prepared.mean, prepared.std, s.augment, s.seed)
        self.labels = ds.y_train
        self.batch = s.batch
        self.steps_per_epoch = len(self.batches(0))
        self.schedule = Schedule(s.schedule, self.optimizer.lr, s.epochs, self.steps_per_epoch)
        stop = s.early_stop
        self.monitor = stop["metric"] if stop else ("val_acc" if self.loss.classifies else "val_loss")
        if not len(prepared.val_index) and self.monitor.startswith("val_"):
            self.monitor = self.monitor[4:]
        self.epoch, self.start_step, self.global_step = 0, 0, 0
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self.bad_epochs = 0
        self.partial = {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
        if resume is not None:
            self._restore(resume)

    # -- data order

    def batches(self, epoch: int) -> list[np.ndarray]:
        return epoch_batches(self.prepared.train_index, self.settings.seed, epoch, self.batch)

    # -- the loop

    def fit(self) -> dict[str, Any]:
        caught: list[int] = []
        # Only the main thread may own signals; elsewhere (a worker of cnn sweep) the caller stops the run.
        owned = (signal.SIGINT, signal.SIGTERM) if threading.current_thread() is threading.main_thread() else ()
        previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum)) for sig in owned}
        try:
            return self._fit(caught)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self.log is not None:
                self.log.close()

    def _fit(self, caught: list[int]) -> dict[str, Any]:
        s = self.settings
        started = time.perf_counter()
        stopped_early = False
        for epoch in range(self.epoch, s.epochs):
            self.epoch = epoch
            batches = self.batches(epoch)
            self.report.epoch_start(epoch, s.epochs, len(batches), self.start_step)
            tick = time.perf_counter()
            for step in range(self.start_step, len(batches)):
                index = batches[step]
                self.optimizer.lr = self.schedule.lr(epoch, step)
                x = self.batcher(index, epoch, step, train=True)
                self.model.rng = np.random.default_rng([s.seed, 3, epoch, step])
                loss, correct = self.step(x, self.labels[index])
                if not math.isfinite(loss):  # the weights are spoiled: keep the last checkpoint as it is
                    kept = self.out / "checkpoints" / "last.npz"
                    raise LossDiverged(
                        f"the loss became {loss} at epoch {epoch + 1}, step {step + 1} (learning rate "
                        f"{self.optimizer.lr:.3g}); training stopped. "
                        + (f"The last good checkpoint is kept: {kept}" if kept.exists()
                           else "No epoch had finished, so there is no checkpoint."))
                self.global_step += 1
                if self.log is not None:
                    self.log.step(self.global_step, loss)
                p = self.partial
                p["loss"] += loss * len(index)
                p["correct"] += correct
                p["seen"] += len(index)
                self.report.step(step + 1, p["loss"] / p["seen"],
                                 p["correct"] / p["seen"] if self.loss.classifies else None,
                                 p["seen"] / (p["seconds"] + time.perf_counter() - tick))
                if caught:
                    p["seconds"] += time.perf_counter() - tick
                    self.start_step = step + 1
                    path = self.save_last()
                    raise Interrupted(caught[0], path)
            self.start_step = 0
            self.partial["seconds"] += time.perf_counter() - tick
            row = self._end_epoch(epoch)
            self.report.epoch_end(row)
            if self._should_stop(row):
                stopped_early = True
                self.report.message(f"early stopping: {self.monitor} has not improved for "
                                    f"{s.early_stop['patience']} epochs")
                break
        return self.summary(time.perf_counter() - started, stopped_early)

    def evaluate(self, index: np.ndarray) -> tuple[float, float | None]:
        total, correct = 0.0, 0
        for i in range(0, len(index), self.batch):
            part = index[i : i + self.batch]
            loss, right = self.step.evaluate(self.batcher(part), self.labels[part])
            total += loss * len(part)
            correct += right
        return total / len(index), (correct / len(index) if self.loss.classifies else None)

    def _end_epoch(self, epoch: int) -> dict[str, Any]:
        p = self.partial
        row = {"epoch": epoch + 1, "loss": p["loss"] / p["seen"], "lr": self.optimizer.lr,
               "seconds": p["seconds"], "samples_per_s": p["seen"] / max(p["seconds"], 1e-9)}
        if self.loss.classifies:
            row["acc"] = p["correct"] / p["seen"]
        if len(self.prepared.val_index):
            row["val_loss"], val_acc = self.evaluate(self.prepared.val_index)
            if val_acc is not None:
                row["val_acc"] = val_acc
        self.history.append(row)
        if self.log is not None:
            self.log.epoch(row, self.model)
        self.partial = {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
        self.schedule.epoch_end(row.get(self.monitor), HIGHER_IS_BETTER[self.monitor])
        value = row.get(self.monitor)
        better = self.best is None or (value > self.best["value"] if HIGHER_IS_BETTER[self.monitor]
                                       else value < self.best["value"])
        min_delta = (self.settings.early_stop or {}).get("min_delta", 0.0)
        if self.best is not None and abs(value - self.best["value"]) <= min_delta:
            better = False
        if better:
            self.best = {"metric": self.monitor, "value": value, "epoch": epoch + 1}
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        self.epoch = epoch + 1
        self.write_metrics()
        if better:
            self.save("best")
        self.save_last()
        return row

    def _should_stop(self, row) -> bool:
        stop = self.settings.early_stop
        return bool(stop) and self.bad_epochs >= stop["patience"]

    # -- files

    def meta(self) -> dict[str, Any]:
        ds = self.prepared.dataset
        return {
            "spec": self.spec.source, "spec_file": self.spec.file, "name": self.spec.name,
            "input": list(self.spec.input), "classes": self.spec.classes, "class_names": ds.class_names,
            "normalisation": {"mean": self.prepared.mean.tolist(), "std": self.prepared.std.tolist()},
            "train": self.settings.to_json(), "weights": self.weights,
            "data": {"name": ds.name, "argument": self.prepared.data_argument, "path": self.prepared.data_path,
                     "source": ds.source,
                     "train_samples": int(len(self.prepared.train_index)),
                     "val_samples": int(len(self.prepared.val_index))},
            "epoch": self.epoch, "step": self.start_step, "global_step": self.global_step,
            "optimizer": {"name": self.optimizer.name, "steps": self.optimizer.steps, "lr": self.optimizer.lr},
            "schedule": self.schedule.state, "best": self.best, "bad_epochs": self.bad_epochs,
            "partial_epoch": self.partial, "history": self.history,
            "threads": _threads(), "saved": datetime.now().isoformat(timespec="seconds"),
        }

    def save(self, which: str) -> Path:
        path = self.out / "checkpoints" / f"{which}.npz"
        checkpoint.save(path, self.model, self.meta(), self.optimizer)
        return path

    def save_last(self) -> Path:
        return self.save("last")

    def write_metrics(self) -> None:
        lines = "".join(json.dumps(row) + "\n" for row in self.history)
        checkpoint.write_text_atomic(self.out / "metrics.jsonl", lines)
        columns = ["epoch", "loss", "acc", "val_loss", "val_acc", "lr", "seconds", "samples_per_s"]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, [c for c in columns if any(c in r for r in self.history)], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.history)
        checkpoint.write_text_atomic(self.out / "metrics.csv", buf.getvalue())

    def _restore(self, ck: checkpoint.Checkpoint) -> None:
        m = ck.meta
        ck.restore_optimizer(self.optimizer)
        self.optimizer.steps = m["optimizer"]["steps"]
        self.schedule.state = m["schedule"]
        self.epoch, self.start_step, self.global_step = m["epoch"], m["step"], m["global_step"]
        self.best, self.bad_epochs = m["best"], m["bad_epochs"]
        self.partial, self.history = m["partial_epoch"], m["history"]
        self.weights = m.get("weights")
        planned = m["train"].get("epochs", SETTINGS["epochs"].default)
        if planned != self.settings.epochs and (self.schedule.name in ("cosine", "onecycle")):
            before = Schedule(self.settings.schedule, self.schedule.base, planned, self.steps_per_epoch)
            self.report.message(
                f"note: the {self.schedule.name} schedule now spans {self.settings.epochs} epochs instead of {planned}: "
                f"the learning rate goes from {before.lr(self.epoch, self.start_step):.3g} to "
                f"{self.schedule.lr(self.epoch, self.start_step):.3g} here and follows the "
                f"{self.settings.epochs}-epoch curve from now on")

    def summary(self, seconds: float, stopped_early: bool) -> dict[str, Any]:
        last = self.history[-1] if self.history else {}
        return {"run": str(self.out), "name": self.spec.name, "data": self.prepared.dataset.source,
                "epochs": len(self.history), "stopped_early": stopped_early, "seconds": round(seconds, 2),
                "final": last, "best": self.best, **({"weights": self.weights} if self.weights else {}),
                "checkpoints": {"last": str(self.out / "checkpoints" / "last.npz"),
                                "best": str(self.out / "checkpoints" / "best.npz")}}


def stored_data(meta: dict[str, Any]) -> str | None:
    """The data a checkpoint was trained on, usable from any directory (older runs: as given)."""
    data = meta.get("data") or {}
    return data.get("path") or data.get("argument") or meta.get("train", {}).get("data")


def _threads() -> int:
    from .ops.threads import workers

    return workers()


def run_dir(spec: Spec, out: Path | None) -> Path:
    """--out, or runs/NAME-TIMESTAMP: always one new directory inside runs/, whatever the spec's name."""
    if out is not None:
        return Path(out)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = f"{directory_name(spec.name)}-{stamp}"
    path = Path("runs") / base
    n = 1
    while path.exists():
        n += 1
        path = Path("runs") / f"{base}-{n}"
    return path


def directory_name(name: str) -> str:
    """A spec's name as one harmless path component: letters, digits, '_', '.' and '-' only (so no
    separator, '..', NUL or control character), not starting with '.' or '-', at most 64 characters."""
    safe = re.sub(r"[^\w.-]", "_", name, flags=re.ASCII).lstrip(".-")[:64]
    return safe or "network"


def start(spec_path: Path, options: Options, report) -> dict[str, Any]:
    from . import spec as specs

    spec = specs.load(spec_path)
    settings = options.settings(spec.train)
    frozen = spec.frozen_layers(settings)  # a pattern from --set that matches nothing: refuse now
    memory.require_for(spec, settings.batch, f"training {spec.file}")
    if options.tensorboard_every:
        tensorboard_log.require()
    _set_threads(options.threads or settings.threads)
    out = check_directory(run_dir(spec, options.out), "--out")  # before any work: never train and fail to save
    if (out / "checkpoints" / "last.npz").exists():
        raise UserError(f"{out} already holds a run", f"resume it with cnn train --resume {out}, or choose another --out")
    prepared = prepare(spec, settings, options.data)
    run = Run(spec, prepared, out, report, weights=options.weights)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint.write_text_atomic(out / "spec.yaml", spec.source)
    checkpoint.write_text_atomic(out / "run.json", json.dumps({
        "spec_file": str(spec_path), "data": options.data, "data_path": prepared.data_path,
        "settings": settings.to_json(), "weights": run.weights, "threads": _threads(),
        "tensorboard_every": options.tensorboard_every}, indent=2) + "\n")
    report.message(f"data: {prepared.dataset.source}")
    report.message(f"run directory: {out}")
    if run.weights:
        for line in describe_weights(run.weights):
            report.message(line)
    if frozen:
        report.message(f"frozen: {', '.join(frozen)} ({spec.frozen_params(frozen):,} parameters fixed)")
    run.log = _tensorboard(out, spec, options.tensorboard_every)
    return run.fit()


def _tensorboard(out: Path, spec: Spec, every: int | None):
    return tensorboard_log.TensorBoardLog(out / "tensorboard", spec.source, every) if every else None


def resume(run: Path, report, options: Options | None = None, spec_path: Path | None = None) -> dict[str, Any]:
    """Continue an interrupted run, or extend a finished one (`--epochs N`: N epochs in total).
    Only settings marked resumable may change; anything else is refused by name."""
    options = options or Options()
    run = Path(run)
    ck = checkpoint.load(run / "checkpoints" / "last.npz") if run.is_dir() else checkpoint.load(run)
    out = run if run.is_dir() else ck.path.parent.parent
    for given, option in ((options.out, "--out"), (options.weights, "--weights")):
        if given is not None:
            raise UserError(f"{option} cannot be used with --resume: the run continues in {out} from its own weights",
                            f"to start a new run from these weights: cnn train SPEC --weights {out}")
    spec = ck.spec
    _check_training_state(ck)
    stored = TrainSettings.from_json(ck.meta["train"])
    base = stored
    if spec_path is not None:
        base = _spec_changes(spec_path, spec, stored, out)
    settings = options.settings(base)
    _check_resumable(stored, settings, ck.meta, out)
    memory.require_for(spec, settings.batch, f"training {spec.file}")
    _set_threads(options.threads or (settings.threads if settings.threads != stored.threads else None) or ck.meta.get("threads"))
    run_info = _run_info(out / "run.json")
    prepared = prepare(spec, settings, options.data or stored_data(ck.meta))
    if options.data:
        _check_same_data(prepared, ck, options.data, out)
    report.message(f"resuming {out} at epoch {ck.meta['epoch'] + 1}, step {ck.meta['step'] + 1}"
                   + (f", to {settings.epochs} epochs" if settings.epochs != stored.epochs else ""))
    log = _tensorboard(out, spec, run_info.get("tensorboard_every"))  # a logged run goes on logging
    return Run(spec, prepared, out, report, resume=ck, log=log).fit()


RESUME_STATE = {"epoch": int, "step": int, "global_step": int, "bad_epochs": int, "optimizer": dict, "schedule": dict,
                "partial_epoch": dict, "history": list, "data": dict}


def _check_training_state(ck: checkpoint.Checkpoint) -> None:
    """What resuming reads from the metadata must be there, with the right types."""
    for key, kind in RESUME_STATE.items():
        value = ck.meta.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise damaged(ck.path, "cnncli checkpoint", f"its training state is incomplete ('{key}' is "
                          f"{'missing' if key not in ck.meta else type(value).__name__}); it cannot be resumed")


def _run_info(path: Path) -> dict[str, Any]:
    """The run directory's run.json (what `cnn train` was given), {} when there is none."""
    if not path.exists():
        return {}
    try:
        check_regular(path, "run.json file")
        with open(path, "rb") as f:
            info = json.loads(f.read(1 << 20).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise UserError(f"{path} is damaged ({type(exc).__name__}: {exc})",
                        "repair it, or delete it and give the data again with --data") from None
    if not isinstance(info, dict):
        raise UserError(f"{path} is damaged: it holds no JSON object", "repair it, or delete it")
    return info


def _spec_changes(spec_path: Path, spec: Spec, stored: TrainSettings, out: Path) -> TrainSettings:
    """A spec given with --resume: its network must be the run's; the train settings it names are
    changes, checked like command-line ones."""
    from . import spec as specs

    given = specs.load(spec_path)
    layers = [(n.name, n.kind.name, n.shape, n.info.params) for n in given.nodes]
    if layers != [(n.name, n.kind.name, n.shape, n.info.params) for n in spec.nodes] or given.input != spec.input:
        raise UserError(f"{spec_path} describes another network than the run in {out}",
                        f"resume without a spec (the run keeps {out / 'spec.yaml'}), or start a new run from its "
                        f"weights: cnn train {spec_path} --weights {out}")
    settings = stored.copy()
    settings.update(given.train)
    return settings


def _check_resumable(stored: TrainSettings, settings: TrainSettings, meta: dict[str, Any], out: Path) -> None:
    before, after = stored.to_json(), settings.to_json()  # as JSON: a spec's (3, 6) equals a stored [3, 6]
    changed = [k for k in SETTINGS if before[k] != after[k]]
    refused = [k for k in changed if not SETTINGS[k].resumable]
    old_stop, new_stop = stored.early_stop or {}, settings.early_stop or {}
    if "early_stop" in changed and old_stop.get("metric") != new_stop.get("metric"):
        refused.append("early_stop")  # the best checkpoint so far was chosen by the old metric
    if refused:
        what = "; ".join(f"{k} {stored.describe(k)} -> {settings.describe(k)} ({settings.where.get(k)})" for k in refused)
        can = ", ".join(k for k, s in SETTINGS.items() if s.resumable)
        raise UserError(f"cannot change {what} when resuming {out}",
                        f"a resumed run continues exactly as it started; only {can} (its patience and min_delta) may "
                        f"change. To train with other settings, start a new run from its weights: "
                        f"cnn train SPEC --weights {out}")
    done = meta["epoch"] + (1 if meta["step"] else 0)
    if settings.epochs < done:
        raise UserError(f"{out} has already trained {done} epochs; it cannot be resumed to {settings.epochs}",
                        f"give --epochs {done + 1} or more to train on", settings.where.get("epochs"))
    if meta["epoch"] >= settings.epochs:
        raise UserError(f"{out} has already trained all {meta['epoch']} epochs",
                        f"train it on with cnn train --resume {out} --epochs {meta['epoch'] + 5} (epochs in total)")
    patience = new_stop.get("patience")
    if patience is not None and not meta["step"] and meta["bad_epochs"] >= patience:
        raise UserError(f"{out} stopped early at epoch {meta['epoch']}: {new_stop['metric']} had not improved for "
                        f"{meta['bad_epochs']} epochs",
                        f"train on with more patience, e.g. --set early_stop='{new_stop['metric']} "
                        f"patience={meta['bad_epochs'] + 3}'")


def _check_same_data(prepared: Prepared, ck: checkpoint.Checkpoint, argument: str, out: Path) -> None:
    """--data with --resume may point at the same data in a new place, never at other data."""
    norm, counts = ck.meta["normalisation"], ck.meta["data"]
    same = (np.array_equal(np.asarray(norm["mean"], np.float32), prepared.mean.astype(np.float32))
            and np.array_equal(np.asarray(norm["std"], np.float32), prepared.std.astype(np.float32))
            and counts.get("train_samples") == len(prepared.train_index)
            and counts.get("val_samples") == len(prepared.val_index))
    if not same:
        raise UserError(f"--data {argument} is not the data {out} was trained on ({counts.get('source')})",
                        "a resumed run needs the same training data (it may have moved); to train on other data, "
                        f"start a new run from its weights: cnn train SPEC --weights {out} --data {argument}")


def load_weights(model, source: Path) -> dict[str, Any]:
    """Copy parameters and buffers from a run (its best checkpoint) or a checkpoint into the model,
    by name where the shapes match. Returns what was loaded, new (not in the checkpoint) and skipped."""
    ck = checkpoint.load(source)
    stored = {key.split("/", 1)[1]: value for key, value in ck.arrays.items() if key.startswith(("param/", "buffer/"))}
    loaded, new, skipped = [], [], []
    for name, target in {**model.params(), **model.buffers()}.items():
        value = stored.get(name)
        if value is None:
            new.append(name)
        elif value.shape != target.shape:
            skipped.append({"name": name, "checkpoint": list(value.shape), "network": list(target.shape)})
        else:
            target[...] = value
            loaded.append(name)
    if not loaded:
        raise UserError(f"--weights {source}: no parameter of this network has a name and shape in {ck.path}",
                        "names are the layer names of cnn shapes (conv1.weight, ...); the network must share layers "
                        "with the one that was trained")
    return {"from": str(ck.path), "loaded": loaded, "new": new, "skipped": skipped}


def describe_weights(weights: dict[str, Any]) -> list[str]:
    """The messages `cnn train --weights` prints: layers loaded, new and skipped."""
    def layers(names):
        seen = []
        for name in names:
            layer = name.rpartition(".")[0]
            if layer not in seen:
                seen.append(layer)
        return f"{', '.join(seen)} ({len(names)} tensors)"

    lines = [f"weights from {weights['from']}: loaded {layers(weights['loaded'])}"]
    if weights["new"]:
        lines.append(f"  new (not in the checkpoint, initialised): {layers(weights['new'])}")
    if weights["skipped"]:
        lines.append("  skipped (shape differs, initialised): " + ", ".join(
            f"{s['name']} {'x'.join(map(str, s['checkpoint']))} -> {'x'.join(map(str, s['network']))}"
            for s in weights["skipped"]))
    return lines


def _set_threads(count) -> None:
    if count:
        from .ops.threads import set_threads

        set_threads(int(count))
