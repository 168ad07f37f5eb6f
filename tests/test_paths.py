"""Where runs and pictures are written: refused up front when impossible, files with the user's
umask, and a run's data found again from any directory."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from cnncli import checkpoint
from cnncli.errors import UserError
from cnncli.outputs import check_directory, check_file

from .helpers import ROOT
from .test_cli_shapes import cnn

TINY = "input: 1x8x8\nclasses: 3\nnet: conv k=2 f=3 p=1 -> relu -> pool 2 -> fc 3\n" \
       "train:\n  epochs: 1\n  batch: 20\n  val: 20\n"


def _unwritable(tmp_path):
    """A directory this process cannot create files in (root may write anywhere: use /proc there)."""
    if os.geteuid() == 0:
        if not os.path.isdir("/proc/self"):
            pytest.skip("running as root without /proc: no unwritable directory to test with")
        return "/proc/cnncli-nowhere"
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    return str(locked / "out")


@pytest.fixture()
def npz(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (100, 1, 8, 8), dtype=np.uint8)
    y = rng.integers(0, 3, 100)
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "d.npz", x=x[:80], y=y[:80], x_test=x[80:], y_test=y[80:])
    (tmp_path / "tiny.yaml").write_text(TINY)
    return tmp_path / "data" / "d.npz"


def test_train_refuses_an_out_it_cannot_write_before_loading_data(tmp_path):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "tiny.yaml").write_text(TINY)
    cases = {str(tmp_path / "afile"): f"error: --out {tmp_path / 'afile'} is a file, not a directory",
             str(tmp_path / "afile" / "run"): f"cannot be created: {tmp_path / 'afile'} is a file",
             _unwritable(tmp_path): "cannot write there"}
    for out, message in cases.items():
        # the data does not exist either: refusing the output first shows nothing was loaded
        r = cnn("train", str(tmp_path / "tiny.yaml"), "--data", str(tmp_path / "missing.npz"), "--out", out)
        assert r.returncode == 2 and r.stdout == "" and "Traceback" not in r.stderr, r.stderr
        assert message in r.stderr and len([x for x in r.stderr.splitlines() if x.startswith("error:")]) == 1


def test_the_output_checks_by_themselves(tmp_path):
    assert check_directory(tmp_path / "new" / "deeper", "--out") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # nothing is created by checking
    assert check_file(tmp_path, "--png", "confusion.png") == tmp_path / "confusion.png"
    assert check_file(tmp_path / "c.png", "--png", "confusion.png") == tmp_path / "c.png"
    (tmp_path / "f").write_text("")
    with pytest.raises(UserError, match="is a file, not a directory"):
        check_file(tmp_path / "f" / "c.png", "--png", "confusion.png")


def test_eval_and_inspect_png_paths(tmp_path, npz):
    run = tmp_path / "run"
    r = cnn("train", str(tmp_path / "tiny.yaml"), "--data", str(npz), "--out", str(run), "--quiet")
    assert r.returncode == 0, r.stderr
    nowhere = _unwritable(tmp_path)
    for command in ("eval", "inspect"):
        r = cnn(command, str(run), "--png", nowhere)
        assert r.returncode == 2 and "Traceback" not in r.stderr and r.stdout == "", r.stderr
        assert r.stderr.startswith(f"error: --png {nowhere}") and "cannot write there" in r.stderr
    (tmp_path / "afile").write_text("")
    r = cnn("inspect", str(run), "--png", str(tmp_path / "afile"))
    assert r.returncode == 2 and f"--png {tmp_path / 'afile'} is a file, not a directory" in r.stderr
    # a missing directory is created when it can be, for both commands; eval writes confusion.png in a directory
    pytest.importorskip("PIL")
    r = cnn("inspect", str(run), "--png", str(tmp_path / "pics" / "run1"))
    assert r.returncode == 0 and (tmp_path / "pics" / "run1" / "filters.png").exists(), r.stderr
    r = cnn("eval", str(run), "--png", str(tmp_path / "pics" / "run1"))
    assert r.returncode == 0 and (tmp_path / "pics" / "run1" / "confusion.png").exists(), r.stderr
    r = cnn("eval", str(run), "--png", str(tmp_path / "new" / "c.png"))
    assert r.returncode == 0 and (tmp_path / "new" / "c.png").exists(), r.stderr
    r = cnn("eval", str(run), "--png", f"{tmp_path / 'made'}/")  # a directory to create, by its slash
    assert r.returncode == 0 and (tmp_path / "made" / "confusion.png").exists(), r.stderr


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_atomic_files_get_the_users_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        checkpoint.write_text_atomic(tmp_path / "a" / "run.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a" / "run.json").stat().st_mode) == 0o666 & ~umask
    assert os.umask(old) == old  # writing does not change the process's umask


def test_run_files_are_readable_by_others_under_umask_022(tmp_path, npz):
    code = "import os, sys; os.umask(0o022); from cnncli.cli import run; sys.argv[0] = 'cnn'; run()"
    r = subprocess.run([sys.executable, "-c", code, "train", str(tmp_path / "tiny.yaml"), "--data", str(npz),
                        "--out", str(tmp_path / "run"), "--quiet"], capture_output=True, text=True, cwd=ROOT,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"spec.yaml", "run.json", "metrics.jsonl", "metrics.csv", "last.npz", "best.npz"}
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {oct(0o644)}


def test_relative_data_is_found_from_another_directory(tmp_path, npz):
    r = cnn("train", "../tiny.yaml", "--data", "d.npz", "--out", "../run", "--quiet", cwd=tmp_path / "data")
    assert r.returncode == 0, r.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = cnn("eval", "../run", "--json", cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["samples"] == 20
    r = cnn("inspect", "../run", "--json", cwd=elsewhere)
    assert r.returncode == 0 and json.loads(r.stdout)["activations"], r.stderr
    r = cnn("train", "--resume", "../run", "--epochs", "2", "--quiet", cwd=elsewhere)  # extend: reloads the data
    assert r.returncode == 0, r.stderr
    run_json = json.loads((tmp_path / "run" / "run.json").read_text())  # the argument as written, and absolute
    assert run_json["data"] == "d.npz" and run_json["data_path"] == str(npz.resolve())
    meta = checkpoint.load(tmp_path / "run").meta
    assert meta["data"]["argument"] == "d.npz" and meta["data"]["path"] == str(npz.resolve())
