"""Every example in a command's --help runs as written, in a fresh directory, in the order shown."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
import typer.main

from cnncli.cli import app

from .helpers import ROOT

EXAMPLE = re.compile(r"^[A-Za-z][\w ,-]*: (cnn .+)$")


def examples() -> list[tuple[str, str]]:
    """(command, example line) from every command's epilog, commands in the order --help lists them."""
    group = typer.main.get_command(app)
    out = []
    for name, command in group.commands.items():
        for paragraph in (command.epilog or "").split("\n\n"):
            m = EXAMPLE.match(paragraph.strip())
            if m:
                out.append((name, m.group(1)))
    return out


def test_every_command_has_a_runnable_example():
    named = {name for name, _ in examples()}
    assert named == set(typer.main.get_command(app).commands)


def test_help_examples_run(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    from cnncli.data import resolve

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "cnn"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m cnncli "$@"\n')
    shim.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    pil.fromarray(resolve("fashion-mnist-sample").x_test[0, 0]).save(work / "shoe.png")  # the file predict names
    shutil.copytree(ROOT / "examples", work / "examples")  # the sweep example runs in a checkout
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
           "CNNCLI_THREADS": "2"}
    for name, line in examples():
        r = subprocess.run(line, shell=True, cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"cnn {name} --help: {line}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
        assert "Traceback" not in r.stderr
    assert (work / "runs" / "tutorial" / "checkpoints" / "best.npz").exists()
    assert (work / "confusion.png").stat().st_size > 0 and (work / "pictures" / "maps-relu2.png").exists()
    assert '"total_params": 269722' in (work / "shapes.json").read_text()
