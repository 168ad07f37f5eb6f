"""One trial, as it runs on a worker (a local process or a Dask worker on another machine).

A trial is an ordinary `cnn train` run in DIR/trials/NNNN/ plus params.json. It trains in-process
through the training API: the worker process already gives the isolation a trial needs (a worker
that dies takes only its own trial), and in-process training reports each epoch's metric to the
pruner without parsing output. If the directory holds a checkpoint from an interrupted attempt,
the retried trial resumes from it instead of starting again.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checkpoint import write_text_atomic
from ..errors import UserError

STUDY = "sweep"
JOURNAL = "study.journal"


@dataclass
class Job:
    """What a worker needs to run one trial; plain data, so it pickles by value to any worker."""

    sweep_dir: str
    number: int
    trial_id: int
    params: dict[str, Any]
    overrides: dict[str, str]  # train settings, as --set
    variables: dict[str, Any]  # the spec's vars
    spec_text: str
    data: str | None
    metric: str
    maximize: bool
    pruner: str | None
    threads: int | None  # None: this worker's cores divided by its Dask threads
    local: bool


class Pruned(Exception):
    pass


def trial_dir(sweep_dir: str | Path, number: int) -> Path:
    return Path(sweep_dir) / "trials" / f"{number:04d}"


def storage(sweep_dir: str | Path):
    """The study's store: Optuna's journal file in DIR, safe for several processes (and shared disks)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(Path(sweep_dir) / JOURNAL)))


def make_pruner(name: str | None):
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    return optuna.pruners.NopPruner()


class TrialReport:
    """Receives the training loop's progress: each epoch's metric goes to the pruner, nothing is printed."""

    def __init__(self, job: Job):
        self.job, self.trial = job, None
        if job.pruner:
            import optuna

            study = optuna.load_study(study_name=STUDY, storage=storage(job.sweep_dir), pruner=make_pruner(job.pruner))
            self.trial = optuna.Trial(study, job.trial_id)

    def epoch_end(self, row: dict) -> None:
        if self.trial is None or self.job.metric not in row:
            return
        self.trial.report(float(row[self.job.metric]), row["epoch"])
        if self.trial.should_prune():
            raise Pruned(f"pruned after epoch {row['epoch']}")

    def message(self, text: str) -> None: ...
    def epoch_start(self, epoch: int, epochs: int, steps: int, done: int) -> None: ...
    def step(self, done: int, loss: float, acc: float | None, rate: float) -> None: ...
    def close(self) -> None: ...


def run(job: Job) -> dict[str, Any]:
    """Train one trial; returns its state (COMPLETE, PRUNED or FAIL), value, run directory and worker."""
    from .. import train as trainer
    from .config import spec_with_vars

    out = trial_dir(job.sweep_dir, job.number)
    out.mkdir(parents=True, exist_ok=True)
    result = {"number": job.number, "run": str(out), "worker": _worker(job), "value": None, "error": None}
    write_text_atomic(out / "params.json", json.dumps(
        {"number": job.number, "params": job.params, "set": job.overrides, "vars": job.variables}, indent=2) + "\n")
    spec_path = out / "spec.yaml"
    if not (out / "checkpoints" / "last.npz").exists():
        write_text_atomic(spec_path, spec_with_vars(job.spec_text, job.variables))
    try:
        train(spec_path, job.data, job.overrides, out, _threads(job), TrialReport(job))
        result["state"] = "COMPLETE"
    except Pruned as exc:
        result["state"], result["error"] = "PRUNED", str(exc)
    except (UserError, trainer.LossDiverged) as exc:
        result["state"], result["error"] = "FAIL", str(exc).splitlines()[0]
    result["value"] = best_value(out, job.metric, job.maximize)
    if result["state"] == "COMPLETE" and result["value"] is None:
        result["state"], result["error"] = "FAIL", f"no {job.metric} in {out / 'metrics.jsonl'}"
    return result


def train(spec_path: Path, data: str | None, overrides: dict[str, str], out: Path, threads: int | None, report) -> None:
    """The one place a trial touches the training API: start the run, or resume an interrupted attempt."""
    from .. import checkpoint
    from .. import train as trainer

    last = out / "checkpoints" / "last.npz"
    if last.exists():
        meta = checkpoint.load(last).meta
        if meta["epoch"] >= meta["train"]["epochs"]:  # it finished before the sweep heard of it
            return
        trainer.resume(out, report, trainer.Options(threads=threads))
    else:
        trainer.start(spec_path, trainer.Options(data, out, overrides, threads), report)


def best_value(run_dir: Path, metric: str, maximize: bool) -> float | None:
    """The best value of `metric` over the epochs in the run's metrics.jsonl."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return None
    values = [row[metric] for row in map(json.loads, path.read_text().splitlines()) if metric in row]
    return (max(values) if maximize else min(values)) if values else None


def _worker(job: Job) -> str:
    if job.local:
        return "local"
    from distributed import get_worker

    return get_worker().address


def _threads(job: Job) -> int:
    if job.threads:
        return job.threads
    from distributed import get_worker

    return max(1, (os.cpu_count() or 1) // max(1, get_worker().state.nthreads))
