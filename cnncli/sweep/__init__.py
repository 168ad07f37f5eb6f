"""`cnn sweep`: a hyperparameter search. Optuna proposes each trial's parameters, keeps the study in
DIR (its journal file, so Ctrl-C or a crash loses nothing finished) and prunes poor trials; Dask runs
the trials, on local worker processes or on a cluster. cnncli adds only the glue: SWEEP.yaml
(config.py), one trial as a run directory (trial.py), and this loop that asks, submits and tells.

Directory layout: DIR/sweep.yaml (the file as given), DIR/sweep.json (the checked sweep, what
--resume reads), DIR/study.journal (Optuna), DIR/trials/NNNN/ (one run directory per trial), and
history.png / parallel.png when matplotlib is installed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import uuid
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from ..checkpoint import write_text_atomic
from ..errors import UserError
from ..spec.loader import read_spec_file
from . import config
from .trial import STUDY, Job, make_pruner, storage, trial_dir
from .trial import run as run_trial

EXTRA = "pip install 'cnncli[sweep]'"
_ADDRESS = re.compile(r"^(tcp|tls)://[^\s/:]+:\d{1,5}$")


class Interrupted(Exception):
    def __init__(self, path: Path, finished: int, signum: int):
        super().__init__(f"interrupted after {finished} finished trials")
        self.path, self.finished, self.signum = path, finished, signum


def default_workers() -> int:
    """Small networks train faster as several runs of a few threads than as one run on every core."""
    return max(1, (os.cpu_count() or 1) // 4)


def start(path: Path, out: Path | None, trials: int | None, workers: int | None, cluster: str | None,
          report) -> dict[str, Any]:
    _check_address(cluster, workers)
    sweep = config.load(path)
    _need_engines()
    if trials:
        sweep.trials = _capped(sweep, trials)
    out = Path(out) if out is not None else _default_dir(sweep)
    if (out / "sweep.json").exists():
        raise UserError(f"{out} already holds a sweep", f"continue it with cnn sweep --resume {out}, or choose another --out")
    client = _connect(cluster) if cluster else None  # before anything is written
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "sweep.yaml", read_spec_file(Path(path), "sweep"))
    write_text_atomic(out / "sweep.json", json.dumps(sweep.to_json(), indent=2) + "\n")
    report.message(f"sweep directory: {out}")
    return _run(out, sweep, workers, cluster, report, client)


def resume(out: Path, trials: int | None, workers: int | None, cluster: str | None, report) -> dict[str, Any]:
    _check_address(cluster, workers)
    out = Path(out)
    try:
        sweep = config.Sweep.from_json(json.loads((out / "sweep.json").read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise UserError(f"{out} holds no sweep (no sweep.json)", "give the DIR a cnn sweep wrote, or start one") from None
    except (ValueError, TypeError, KeyError) as exc:
        raise UserError(f"{out / 'sweep.json'} is damaged ({type(exc).__name__})",
                        "start the sweep again in another directory") from None
    _need_engines()
    client = _connect(cluster) if cluster else None
    if trials:
        sweep.trials = _capped(sweep, trials)
        write_text_atomic(out / "sweep.json", json.dumps(sweep.to_json(), indent=2) + "\n")
    return _run(out, sweep, workers, cluster, report, client)


def _capped(sweep: config.Sweep, trials: int) -> int:
    if sweep.sampler != "grid":
        return trials
    size = 1
    for dim in sweep.space:
        size *= len(dim.grid())
    return min(trials, size)


def _default_dir(sweep: config.Sweep) -> Path:
    name = Path(sweep.spec_file).stem
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path, n = Path("sweeps") / f"{name}-{stamp}", 1
    while path.exists():
        n += 1
        path = Path("sweeps") / f"{name}-{stamp}-{n}"
    return path


def _check_address(address: str | None, workers: int | None) -> None:
    if address is not None and workers is not None:
        raise UserError("--workers sets the local worker processes; a cluster's workers are its own",
                        "leave out --workers with --cluster (start more workers with dask worker ADDRESS)")
    if address is not None and not _ADDRESS.match(address):
        raise UserError(f"--cluster {address!r} is not a scheduler address",
                        "write tcp://HOST:PORT, or tls://HOST:PORT with Dask's TLS settings, e.g. tcp://127.0.0.1:8786")


def _need_engines() -> None:
    try:
        import distributed  # noqa: F401
        import optuna  # noqa: F401
    except ImportError as exc:
        raise UserError(f"cnn sweep needs Optuna and Dask distributed ({exc.name} is missing)", EXTRA) from None


# ----------------------------------------------------------------------------- the loop


def _run(out: Path, sweep: config.Sweep, workers: int | None, cluster: str | None, report, client=None) -> dict[str, Any]:
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = storage(out)
    study = optuna.create_study(study_name=STUDY, storage=store, sampler=_sampler(sweep),
                                pruner=make_pruner(sweep.pruner), load_if_exists=True,
                                direction="maximize" if sweep.maximize else "minimize")
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        store.set_trial_state_values(t._trial_id, TrialState.WAITING)  # asked again first, same number and params
        report.message(f"trial {t.number} was interrupted; it runs again")
    distributions = {dim.name: _distribution(dim) for dim in sweep.space}
    ended = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    finished = lambda: len(study.get_trials(deepcopy=False, states=ended))  # noqa: E731
    report.start(study, sweep)
    running: dict[Any, Any] = {}
    if finished() >= sweep.trials:
        report.close()
        if client is not None:
            client.close()
        return summary(study, sweep, out, report)
    try:
        with _stop_on_signals() as stop, _client(client, workers, out, report) as (client, slots, threads):
            from distributed import wait

            while not stop:
                while len(running) < max(1, slots()) and finished() + len(running) < sweep.trials:
                    trial = study.ask(distributions)
                    overrides, variables = sweep.trial_settings(trial.params)
                    job = Job(str(out.resolve()), trial.number, trial._trial_id, trial.params, overrides,
                              variables, sweep.spec_text, sweep.data, sweep.metric, sweep.maximize, sweep.pruner,
                              threads, cluster is None)
                    trial.set_user_attr("run", str(trial_dir(out, trial.number)))
                    key = f"cnn-sweep-trial-{trial.number}-{uuid.uuid4().hex[:8]}"
                    running[client.submit(run_trial, job, key=key, pure=False)] = trial
                    report.trial_started(trial)
                if not running:
                    break
                try:
                    done, _ = wait(list(running), timeout=0.2, return_when="FIRST_COMPLETED")
                except TimeoutError:
                    continue
                for future in done:
                    _tell(study, running.pop(future), _outcome(future), report)
            if stop:
                report.close()
                client.cancel(list(running))  # queued trials never start; on a cluster, running ones finish
    finally:
        report.close()
    if stop:
        raise Interrupted(out, finished(), stop[0])
    return summary(study, sweep, out, report)


@contextmanager
def _stop_on_signals():
    """Ctrl-C and SIGTERM only set a flag, which the loop reads between steps: a signal never lands in
    the middle of a write to the study's journal."""
    stop: list[int] = []
    handlers = {sig: signal.signal(sig, lambda signum, frame: stop.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _outcome(future) -> dict[str, Any]:
    try:
        return future.result()
    except Exception as exc:  # the trial's task failed for good (e.g. its workers kept dying)
        return {"state": "FAIL", "value": None, "worker": None, "error": f"{type(exc).__name__}: {exc}"}


def _tell(study, trial, result: dict[str, Any], report) -> None:
    from optuna.trial import TrialState

    trial.set_user_attr("worker", result.get("worker"))
    if result.get("error"):
        trial.set_user_attr("error", result["error"])
    state = TrialState[result["state"]]
    frozen = study.tell(trial, result["value"] if state == TrialState.COMPLETE else None,
                        state=state if state != TrialState.COMPLETE else None)
    report.trial_done(record(frozen))


@contextmanager
def _client(connected, workers: int | None, out: Path, report):
    """A Dask client: the one connected to a cluster, or one on a new local cluster of W worker processes.
    Yields (client, a function giving the number of trials to keep running, threads per trial or None)."""
    from distributed import Client, LocalCluster

    _quiet_dask()
    cluster = None
    try:
        if connected is None:
            count = workers or default_workers()
            threads = max(1, (os.cpu_count() or 1) // count)
            report.message(f"{count} local worker{'s' if count != 1 else ''}, {threads} thread{'s' if threads != 1 else ''} each")
            cluster = LocalCluster(n_workers=count, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address=None, silence_logs=logging.CRITICAL,
                                   local_directory=str(out / "dask"))
            client = Client(cluster)
            slots = lambda: count  # noqa: E731
        else:
            client, threads = connected, None
            slots = lambda: sum(client.nthreads().values())  # noqa: E731
            report.message(f"cluster {client.scheduler.address}: {len(client.nthreads())} workers, "
                           f"{slots()} trials at a time")
        try:
            yield client, slots, threads
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()
            shutil.rmtree(out / "dask", ignore_errors=True)  # the workers' scratch space


def _connect(address: str):
    from distributed import Client

    _quiet_dask()
    try:
        client = Client(address, timeout="5s")
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        hint = ("start a scheduler there (dask scheduler --host 127.0.0.1), or check the address"
                if address.startswith("tcp://") else
                "tls:// uses Dask's TLS settings: distributed.comm.tls.ca-file, client.cert and client.key")
        raise UserError(f"cannot reach the Dask scheduler at {address}: {detail[:200]}", hint) from None
    try:
        client.wait_for_workers(1, timeout=30)
    except TimeoutError:
        client.close()
        raise UserError(f"no Dask worker is connected to {address}", f"start one with: dask worker {address}") from None
    return client


def _quiet_dask() -> None:
    for name in ("distributed", "tornado", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _sampler(sweep: config.Sweep):
    import optuna

    if sweep.sampler == "grid":
        return _GridSampler({dim.name: dim.grid() for dim in sweep.space}, seed=sweep.seed)
    if sweep.sampler == "random":
        return optuna.samplers.RandomSampler(seed=sweep.seed)
    return optuna.samplers.TPESampler(seed=sweep.seed)


def _grid_sampler_class():
    import optuna

    class GridSampler(optuna.samplers.GridSampler):
        """Optuna's grid sampler, minus its study.stop() (allowed only inside study.optimize): the loop
        here stops by itself after the grid's size in trials."""

        def after_trial(self, study, trial, state, values) -> None:
            pass

    return GridSampler


def _GridSampler(*args, **kwargs):
    return _grid_sampler_class()(*args, **kwargs)


def _distribution(dim: config.Dimension):
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if dim.kind == "choice":
        return CategoricalDistribution(dim.choices)
    if dim.kind == "int":
        return IntDistribution(int(dim.low), int(dim.high), log=dim.log, step=int(dim.step or 1))
    return FloatDistribution(dim.low, dim.high, log=dim.log)


# ----------------------------------------------------------------------------- results


def record(t) -> dict[str, Any]:
    """A trial as `--json` shows it."""
    out = {"number": t.number, "state": t.state.name, "params": t.params, "value": t.value,
           "run": t.user_attrs.get("run"), "worker": t.user_attrs.get("worker")}
    if t.user_attrs.get("error"):
        out["error"] = t.user_attrs["error"]
    return out


def summary(study, sweep: config.Sweep, out: Path, report) -> dict[str, Any]:
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = study.best_trial if complete else None
    return {"sweep": str(out), "metric": sweep.metric, "direction": "max" if sweep.maximize else "min",
            "sampler": sweep.sampler, "pruner": sweep.pruner,
            "trials": [record(t) for t in study.get_trials(deepcopy=False)],
            "best": record(best) if best else None,
            "importances": _importances(study, complete), "plots": _plots(study, out, complete, report)}


def _importances(study, complete) -> dict[str, float]:
    """Optuna's default importance evaluator; it needs two finished trials that differ."""
    import optuna

    if len(complete) < 2:
        return {}
    try:
        return {k: round(float(v), 4) for k, v in optuna.importance.get_param_importances(study).items()}
    except (RuntimeError, ValueError):
        return {}


def _plots(study, out: Path, complete, report) -> list[str]:
    if not complete:
        return []
    from ..report import plots

    try:
        return plots.sweep_figures(study, out)
    except UserError:  # no matplotlib: the sweep itself is done
        report.message("no plots: pip install 'cnncli[plots]' to get history.png and parallel.png")
        return []
