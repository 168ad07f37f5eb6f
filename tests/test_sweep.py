"""`cnn sweep`: SWEEP.yaml checking, local and Dask-cluster sweeps, a worker dying, --resume after Ctrl-C.

Trials train a tiny network for one or two epochs on 600 samples of the shipped Fashion-MNIST sample,
so a whole sweep takes seconds; the Dask clusters listen on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from cnncli.errors import UserError
from cnncli.spec import load as load_spec
from cnncli.report.sweep import show
from cnncli.sweep import config

from .helpers import ROOT

optuna = pytest.importorskip("optuna")
pytest.importorskip("distributed")

SPEC = ("name: tiny\ninput: 1x28x28\nclasses: 10\nvars: {width: 4}\n"
        "net: conv k=$width f=5 p=2 -> relu -> pool 4 -> fc 10\n"
        "train:\n  epochs: 1\n  batch: 50\n  val: 100\n  optimizer: adam lr=0.005\n")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """600 training and 100 test samples of the shipped sample, as an .npz."""
    from cnncli.data import resolve

    ds = resolve("fashion-mnist-sample")
    path = tmp_path_factory.mktemp("data") / "subset.npz"
    np.savez(path, x=ds.x_train[:600], y=ds.y_train[:600], x_test=ds.x_test[:100], y_test=ds.y_test[:100])
    return path


def write_sweep(tmp_path: Path, data: Path, body: str) -> Path:
    (tmp_path / "tiny.yaml").write_text(SPEC)
    path = tmp_path / "sweep.yaml"
    path.write_text(f"spec: tiny.yaml\ndata: {data}\n{body}")
    return path


def cnn(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnncli", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout, env={**os.environ, **(env or {})})


def metrics(run: str | Path) -> list[dict]:
    return [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]


def sweep_error(text: str, tmp_path: Path, data: Path) -> UserError:
    (tmp_path / "tiny.yaml").write_text(SPEC)
    with pytest.raises(UserError) as info:
        config.loads(f"spec: tiny.yaml\ndata: {data}\n{text}", "s.yaml", tmp_path)
    return info.value


# ----------------------------------------------------------------------------- SWEEP.yaml


def test_the_issue_form_loads_as_written():
    path = ROOT / "examples" / "sweep-tutorial.yaml"
    body = [line.split("#")[0].rstrip() for line in path.read_text().splitlines() if not line.startswith("#")]
    assert body == ["spec: fashion-tutorial", "data: fashion-mnist-sample", "metric: val_acc max", "sampler: tpe",
                    "trials: 8", "set: {epochs: 2}", "space:", "  lr: loguniform 1e-4 1e-1",
                    "  batch: choice 32 64 128", "  optimizer: choice adam sgd"]
    sweep = config.load(path)
    assert Path(sweep.spec_file).name == "fashion-tutorial.yaml" and "fc 10" in sweep.spec_text
    assert (sweep.data, sweep.metric, sweep.maximize, sweep.sampler, sweep.pruner, sweep.trials) == \
        ("fashion-mnist-sample", "val_acc", True, "tpe", None, 8)
    assert sweep.fixed == {"epochs": "2"}
    lr, batch, opt = sweep.space
    assert (lr.kind, lr.low, lr.high, lr.log) == ("loguniform", 1e-4, 1e-1, True)
    assert batch.choices == [32, 64, 128] and opt.choices == ["adam", "sgd"]
    overrides, variables = sweep.trial_settings({"lr": 1e-05, "batch": 64, "optimizer": "sgd"})
    assert overrides == {"epochs": "2", "lr": "1.0e-05", "batch": "64", "optimizer": "sgd"} and variables == {}


def test_space_forms_and_variables(tmp_path, data):
    path = write_sweep(tmp_path, data, "sampler: grid\nspace:\n  $width: int 4 12 step=4\n  batch: [20, 40]\n"
                       "  optimizer: choice 'sgd lr=0.1 momentum=0.9' adam\n")
    sweep = config.load(path)
    width, batch, opt = sweep.space
    assert (width.target, width.grid()) == ("var", [4, 8, 12])
    assert batch.grid() == [20, 40] and opt.choices == ["sgd lr=0.1 momentum=0.9", "adam"]
    assert sweep.trials == 12  # a grid's size
    overrides, variables = sweep.trial_settings({"width": 8, "batch": 20, "optimizer": "adam"})
    assert variables == {"width": 8} and overrides == {"batch": "20", "optimizer": "adam"}
    trial_spec = config.spec_with_vars(SPEC, variables)
    from cnncli.spec import loads

    assert loads(trial_spec, "t.yaml").node("conv1").shape == (8, 28, 28)


@pytest.mark.parametrize("body, message, line", [
    ("space:\n  lr: uniform 0 1\nsamplr: tpe\n", "unknown sweep setting 'samplr'", 5),
    ("space:\n  lr: uniform 0.1 0.1\n", "space.lr: the range 0.1 .. 0.1 is empty", 4),
    ("space:\n  lr: loguniform 1e-1 1e-4\n", "space.lr: the range 1e-1 .. 1e-4 is empty", 4),
    ("space:\n  batch: choice\n", "space.batch: choice needs at least one value", 4),
    ("space: {}\n", "space: must map settings or $variables to ranges, not a mapping", 3),
    ("sampler: annealing\nspace:\n  lr: uniform 0 1\n", "unknown sampler 'annealing'", 3),
    ("pruner: sometimes\nspace:\n  lr: uniform 0 1\n", "unknown pruner 'sometimes'", 3),
    ("space:\n  lr: normal 0 1\n", "space.lr: unknown range 'normal'", 4),
    ("space:\n  lrr: uniform 0 1\n", "'lrr' is neither a train setting nor a variable of the spec", 4),
    ("space:\n  $depth: int 1 3\n", "the spec has no variable $depth", 4),
    ("space:\n  batch: uniform 10 20\n", "space.batch = 10.0: train.batch must be a whole number, not the number 10.0", 4),
    ("space:\n  optimizer: choice adam sgdd\n", "space.optimizer = sgdd: unknown optimizer 'sgdd'", 4),
    ("space:\n  $width: int 0 4 step=2\n", "space.width = 0: k=0 is not valid: must be at least 1", 4),
    ("set: {epoch: 2}\nspace:\n  lr: uniform 0 1\n", "set.epoch: unknown train setting 'epoch'", 3),
    ("sampler: grid\nspace:\n  lr: uniform 0 1\n", "sampler grid needs choice or int ranges, but space.lr is uniform", 5),
    ("metric: accuracy\nspace:\n  lr: uniform 0 1\n", "metric must be one of val_loss, val_acc, loss, acc, "
     "optionally followed by max or min, not 'accuracy'", 3),
])
def test_bad_sweep_files_name_the_line(tmp_path, data, body, message, line):
    e = sweep_error(body, tmp_path, data)
    assert e.message == message
    assert e.where.file == "s.yaml" and e.where.line == line


def test_bad_sweep_file_and_cluster_address_exit_2_with_one_error_line(tmp_path, data):
    bad = write_sweep(tmp_path, data, "space:\n  lr: uniform 0 1\nsamplr: tpe\n")
    r = cnn("sweep", bad, "--out", tmp_path / "out")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines()[0] == f"error: {bad}:5:9: unknown sweep setting 'samplr'"
    assert [line for line in r.stderr.splitlines() if line.startswith("error:")] == r.stderr.splitlines()[:1]
    assert "Traceback" not in r.stderr and not (tmp_path / "out").exists()
    good = write_sweep(tmp_path, data, "space:\n  lr: uniform 0.001 0.01\n")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    r = cnn("sweep", good, "--cluster", f"tcp://127.0.0.1:{port}", "--out", tmp_path / "out")
    assert r.returncode == 2 and time.monotonic() - started < 60
    assert r.stderr.startswith(f"error: cannot reach the Dask scheduler at tcp://127.0.0.1:{port}")
    assert "Traceback" not in r.stderr
    r = cnn("sweep", good, "--cluster", "127.0.0.1:8786")
    assert r.returncode == 2 and r.stderr.startswith("error: --cluster '127.0.0.1:8786' is not a scheduler address")
    r = cnn("sweep", good, "--cluster", "tcp://127.0.0.1:8786", "--workers", "2")
    assert r.returncode == 2 and r.stderr.startswith("error: --workers sets the local worker processes")
    r = cnn("sweep", "--resume", tmp_path)
    assert r.returncode == 2 and r.stderr.startswith(f"error: {tmp_path} holds no sweep (no sweep.json)")


# ----------------------------------------------------------------------------- a local sweep


def test_local_grid_sweep_with_two_workers(tmp_path, data, capsys):
    path = write_sweep(tmp_path, data, "metric: val_acc\nsampler: grid\nspace:\n  lr: choice 0.001 0.01\n"
                       "  width: int 4 8 step=4\n")
    out = tmp_path / "out"
    r = cnn("sweep", path, "--workers", "2", "--out", out, "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    trials = result["trials"]
    assert len(trials) == 4 and {t["state"] for t in trials} == {"COMPLETE"}
    assert sorted((t["params"]["lr"], t["params"]["width"]) for t in trials) == \
        [(0.001, 4), (0.001, 8), (0.01, 4), (0.01, 8)]  # exactly the grid, each point once
    for t in trials:
        assert t["worker"] == "local" and Path(t["run"]) == out / "trials" / f"{t['number']:04d}"
        assert t["value"] == max(row["val_acc"] for row in metrics(t["run"]))
        assert json.loads((Path(t["run"]) / "params.json").read_text())["params"] == t["params"]
        assert load_spec(Path(t["run"]) / "spec.yaml").node("conv1").shape == (t["params"]["width"], 28, 28)
        assert metrics(t["run"])[-1]["lr"] == t["params"]["lr"]
    best = result["best"]
    assert best["value"] == max(t["value"] for t in trials)
    assert best["value"] == max(row["val_acc"] for row in metrics(best["run"]))
    assert set(result["importances"]) == {"lr", "width"}
    assert abs(sum(result["importances"].values()) - 1) < 1e-3
    for png in ("history.png", "parallel.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(result["plots"]) == [str(out / "history.png"), str(out / "parallel.png")]
    assert sum(line.startswith("trial ") for line in r.stderr.splitlines()) == 4  # plain lines when piped
    assert not (out / "dask").exists()  # the local workers' scratch space is gone
    # a trial is an ordinary run directory: cnn eval's code works on it
    from cnncli import evaluate

    evaluated = evaluate.evaluate(evaluate.load_trained(Path(best["run"])), None, 5)
    assert evaluated["samples"] == 100 and 0.0 <= evaluated["accuracy"] <= 1.0
    # the text summary names the best trial, its parameters and run directory
    show(result)
    text = capsys.readouterr().out
    assert f"best: trial {best['number']}, val_acc {best['value']:.4f}" in text
    assert f"run directory: {best['run']}" in text
    assert "importances: " + ", ".join(f"{k} {v:.2f}" for k, v in result["importances"].items()) in text
    assert f"params: lr={best['params']['lr']:.4g}  width={best['params']['width']}" in text


def test_pruner_stops_a_trial_below_the_median(tmp_path):
    from cnncli.sweep.trial import STUDY, Job, Pruned, TrialReport, storage

    study = optuna.create_study(study_name=STUDY, storage=storage(tmp_path), direction="maximize")
    for value in (0.8, 0.9, 0.85):
        t = study.ask()
        t.report(value, 1)
        study.tell(t, value)
    t = study.ask()
    job = Job(str(tmp_path), t.number, t._trial_id, {}, {}, {}, "", None, "val_acc", True, "median", 1, True)
    report = TrialReport(job)
    with pytest.raises(Pruned, match="pruned after epoch 1"):
        report.epoch_end({"epoch": 1, "val_acc": 0.5})
    t2 = study.ask()
    job2 = Job(str(tmp_path), t2.number, t2._trial_id, {}, {}, {}, "", None, "val_acc", True, "median", 1, True)
    TrialReport(job2).epoch_end({"epoch": 1, "val_acc": 0.95})  # above the median: goes on
    assert study.trials[t2.number].intermediate_values == {1: 0.95}


# ----------------------------------------------------------------------------- Ctrl-C and --resume


def test_resume_after_sigint_does_not_rerun_finished_trials(tmp_path, data):
    path = write_sweep(tmp_path, data, "sampler: random\ntrials: 4\nset: {epochs: 20}\nspace:\n"
                       "  lr: loguniform 1e-3 1e-2\n")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "cnncli", "sweep", str(path), "--workers", "1", "--out", str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not _finished(out) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert f"continue with: cnn sweep --resume {out}" in err
    study = _study(out)
    done = {t.number: t for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))}
    assert 1 <= len(done) < 4
    stamps = {n: (out / "trials" / f"{n:04d}" / "checkpoints" / "last.npz").stat().st_mtime_ns for n in done}
    interrupted = [t.number for t in study.get_trials(states=(optuna.trial.TrialState.RUNNING,))]
    assert interrupted  # the worker was training the next trial when Ctrl-C came

    r = cnn("sweep", "--resume", out, "--workers", "2", "--json")
    assert r.returncode == 0, r.stderr
    trials = json.loads(r.stdout)["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2, 3] and {t["state"] for t in trials} == {"COMPLETE"}
    for n, stamp in stamps.items():  # finished trials were not run again
        assert (out / "trials" / f"{n:04d}" / "checkpoints" / "last.npz").stat().st_mtime_ns == stamp
        assert trials[n]["value"] == done[n].value
    for n in interrupted:  # an interrupted trial ran again under its own number, with its parameters
        assert f"trial {n} was interrupted; it runs again" in r.stderr
        assert len(metrics(trials[n]["run"])) == 20


def _study(out: Path):
    from cnncli.sweep.trial import STUDY, storage

    return optuna.load_study(study_name=STUDY, storage=storage(out))


def _finished(out: Path) -> bool:
    """Has the sweep finished a trial and begun training the next? (Optuna's journal allows readers while it runs.)"""
    if not (out / "study.journal").exists():
        return False
    try:
        states = [t.state for t in _study(out).get_trials()]
    except KeyError:  # the study is not created yet
        return False
    if optuna.trial.TrialState.COMPLETE not in states:
        return False
    running = [n for n, state in enumerate(states) if state == optuna.trial.TrialState.RUNNING]
    # a running trial with at least 10 of its 20 epochs to go cannot finish before Ctrl-C lands
    def epochs_done(n: int) -> int:
        path = out / "trials" / f"{n:04d}" / "metrics.jsonl"
        return len(path.read_text().splitlines()) if path.exists() else 0
    return any((out / "trials" / f"{n:04d}" / "run.json").exists() and epochs_done(n) < 10 for n in running)


# ----------------------------------------------------------------------------- a Dask cluster on 127.0.0.1


@contextmanager
def dask_cluster(tmp_path: Path, workers: int = 2, tls: dict | None = None):
    """A scheduler and worker processes on 127.0.0.1, importing this checkout's cnncli; stopped at the end.
    `tls`: Dask configuration (as environment variables) for a tls:// cluster."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **(tls or {})}
    info = tmp_path / "scheduler.json"
    protocol = ["--protocol", "tls"] if tls else []
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--no-dashboard", "--scheduler-file", str(info), *protocol],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 60
        while not info.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        worker_procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--host",
                                          "127.0.0.1", "--nthreads", "1", "--no-nanny", "--no-dashboard"],
                                         cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        for _ in range(workers)]
        procs += worker_procs
        import dask
        from distributed import Client

        settings = {k.removeprefix("DASK_").lower().replace("__", "."): v for k, v in (tls or {}).items()}
        with dask.config.set(settings), Client(address, timeout="30s") as client:
            client.wait_for_workers(workers, timeout=60)
            by_pid = {pid: a for a, pid in client.run(os.getpid).items()}
        yield address, [(p, by_pid[p.pid]) for p in worker_procs]
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def tls_settings(tmp_path: Path) -> dict[str, str]:
    """A CA and one certificate for 127.0.0.1, as Dask's TLS configuration in environment variables."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def pem_key(key, name):
        path = tmp_path / name
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        return str(path)

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False).sign(ca_key, hashes.SHA256()))
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file = pem_key(key, "key.pem")
    out = {"DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
           "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(tmp_path / "ca.pem")}
    for role in ("SCHEDULER", "WORKER", "CLIENT"):
        out[f"DASK_DISTRIBUTED__COMM__TLS__{role}__CERT"] = str(tmp_path / "cert.pem")
        out[f"DASK_DISTRIBUTED__COMM__TLS__{role}__KEY"] = key_file
    return out


def test_tls_cluster_uses_dasks_tls_settings(tmp_path, data):
    pytest.importorskip("cryptography")
    tls = tls_settings(tmp_path)
    path = write_sweep(tmp_path, data, "sampler: random\ntrials: 1\nspace:\n  lr: loguniform 1e-3 1e-2\n")
    with dask_cluster(tmp_path, workers=1, tls=tls) as (address, workers):
        assert address.startswith("tls://127.0.0.1:")
        r = cnn("sweep", path, "--cluster", address, "--out", tmp_path / "out", "--json", env=tls)
        assert r.returncode == 0, r.stderr
        (trial,) = json.loads(r.stdout)["trials"]
        assert trial["state"] == "COMPLETE" and trial["worker"] == workers[0][1]
        r = cnn("sweep", path, "--cluster", address, "--out", tmp_path / "no-certificate", timeout=120)
        assert r.returncode == 2 and r.stderr.startswith(f"error: cannot reach the Dask scheduler at {address}")
        assert "Traceback" not in r.stderr and not (tmp_path / "no-certificate").exists()


def test_sweep_on_a_local_dask_cluster_survives_a_worker_dying(tmp_path, data):
    """Every trial runs on a worker and names it; SIGKILL to a busy worker loses only its trial, which reruns."""
    path = write_sweep(tmp_path, data, "sampler: tpe\npruner: median\ntrials: 4\nset: {epochs: 2}\nspace:\n"
                       "  lr: loguniform 1e-3 1e-2\n  batch: choice 25 50\n")
    out = tmp_path / "out"
    with dask_cluster(tmp_path) as (address, workers):
        proc = subprocess.Popen([sys.executable, "-m", "cnncli", "sweep", str(path), "--cluster", address,
                                 "--out", str(out), "--json"], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            while len(list(out.glob("trials/*/run.json"))) < 2 and time.monotonic() < deadline:  # both busy
                time.sleep(0.05)
            (victim, _), (_, survivor) = workers
            victim.kill()  # SIGKILL: no goodbye to the scheduler
            stdout, stderr = proc.communicate(timeout=300)
        finally:
            proc.kill()
    assert proc.returncode == 0, stderr
    result = json.loads(stdout)
    trials = result["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2, 3]
    assert all(t["state"] in ("COMPLETE", "PRUNED") for t in trials)  # every trial finished
    assert all(t["worker"] == survivor for t in trials)  # the killed worker's trial ran again on the other
    for t in trials:
        if t["state"] == "COMPLETE":
            assert t["value"] == max(row["val_acc"] for row in metrics(t["run"]))
            assert len(metrics(t["run"])) == 2
    assert result["best"]["worker"] == survivor


def test_live_table_lists_every_trial_and_escapes_control_characters():
    from rich.console import Console

    from cnncli.report.sweep import SweepReport

    report = SweepReport()
    report.metric = "val_acc"

    class Asked:  # what study.ask() returns, as far as the table reads it
        number, params = 1, {"lr": 0.01, "optimizer": "adam\x1b[31m"}

    report.trial_started(Asked)
    report.trial_done({"number": 0, "state": "COMPLETE", "params": {"lr": 0.001, "optimizer": "sgd"},
                       "value": 0.8125, "worker": "tcp://127.0.0.1:4242"})
    console = Console(record=True, width=200, color_system=None)
    console.print(report._table())
    lines = console.export_text().splitlines()
    row0 = next(line for line in lines if "COMPLETE" in line)
    row1 = next(line for line in lines if "RUNNING" in line)
    assert "0.8125" in row0 and "lr=0.001  optimizer=sgd" in row0 and "tcp://127.0.0.1:4242" in row0
    assert "optimizer=adam\\x1b[31m" in row1 and "\x1b" not in console.export_text()
    assert lines.index(row0) < lines.index(row1)
