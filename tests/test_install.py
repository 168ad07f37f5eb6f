"""A fresh install followed by an editable one leaves a working `cnn` (the README's two commands in order),
and the shipped networks are reachable by name from any directory after either.

Numba used to cache compiled kernels in site-packages/cnncli/__pycache__; the editable install removed
the package but not that directory, which then shadowed the real package.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

from .helpers import ROOT


def _run(args: list, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    assert r.returncode == 0, f"{args}\n{r.stdout}\n{r.stderr}"
    return r


def test_fresh_install_then_editable_install_keeps_cnn_working(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", "build",
                                                               ".pytest_cache", ".hypothesis", "runs", ".venv"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True)  # numpy, numba, ... come from this interpreter's site
    bin_dir = env_dir / "bin"
    home = tmp_path / "home"
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "PYTHONNOUSERSITE": "1"}
    env.pop("NUMBA_CACHE_DIR", None)
    env.pop("PYTHONPATH", None)
    pip = [bin_dir / "python", "-m", "pip", "install", "-q", "--no-deps"]
    work = tmp_path / "work"
    work.mkdir()

    _run([*pip, str(source)], env, work)
    # the README's first command (one epoch), from a directory unrelated to the source: compiles kernels
    r = _run([bin_dir / "cnn", "train", "fashion-tutorial", "--data", "fashion-mnist-sample", "--epochs", "1",
              "--out", "run", "--json"], env, work)
    assert json.loads(r.stdout)["final"]["val_acc"] > 0.5 and (work / "run" / "checkpoints" / "best.npz").exists()
    site = Path(_run([bin_dir / "python", "-c", "import cnncli, os; print(os.path.dirname(cnncli.__file__))"],
                     env, work).stdout.strip())
    assert site.is_relative_to(env_dir), site
    cached_in_package = [p for p in site.rglob("*") if p.suffix in (".nbi", ".nbc")]
    assert cached_in_package == []
    assert any((home / ".cache" / "cnncli").rglob("*.nbi")), "kernels are cached in the per-user directory"
    def files(root):
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.suffix in (".py", ".yaml", ".gz"))
    assert files(site) == sorted(files(source / "cnncli") + [f"architectures/{p.name}" for p in
                                                              (source / "architectures").glob("*.yaml")]), \
        "pyproject.toml lists every package and its data"

    # the shipped networks are package data, reachable by name from any directory
    r = _run([bin_dir / "cnn", "shapes", "resnet-50"], env, work)
    assert "parameters: 25,557,032" in r.stdout
    shipped = json.loads(_run([bin_dir / "cnn", "shapes", "resnet-50", "--json"], env, work).stdout)
    assert shipped["file"] == str(site / "architectures" / "resnet-50.yaml")

    _run([*pip, "-e", str(source)], env, work)
    r = _run([bin_dir / "cnn", "--version"], env, work)
    assert r.stdout.startswith("cnncli ") and f"kernel cache: {home / '.cache' / 'cnncli'}" in r.stdout
    r = _run([bin_dir / "python", "-c", "import cnncli; print(cnncli.__file__)"], env, work)
    assert r.stdout.strip().startswith(str(source)), r.stdout
    r = _run([bin_dir / "cnn", "shapes", "fashion-tutorial", "--json"], env, work)  # editable: the top-level folder
    assert json.loads(r.stdout)["file"] == str(source / "architectures" / "fashion-tutorial.yaml")


def test_explicit_numba_cache_dir_is_honoured(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "kernels")}
    r = subprocess.run([sys.executable, "-m", "cnncli", "--version"], capture_output=True, text=True, env=env,
                       cwd=ROOT, timeout=60)
    assert r.returncode == 0 and f"kernel cache: {tmp_path / 'kernels'}" in r.stdout
