"""cnn inspect: statistics, pictures in the terminal and as PNG, on a trained run and a bare spec."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rich.console import Console

from cnncli import train as trainer
from cnncli.inspect import inspect
from cnncli.report import inspect as report
from cnncli.report import pictures
from cnncli.report.progress import TrainReport

from .helpers import ARCHITECTURES
from .pictures import assert_picture
from .test_cli_shapes import cnn

SPEC = ("name: tiny\ninput: 1x28x28\nclasses: 10\nnet: conv k=6 f=5 p=2 -> relu -> pool 2 -> fc 10\n"
        "train:\n  data: fashion-mnist-sample\n  epochs: 2\n  batch: 64\n  val: 300\n")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inspect")
    (tmp / "tiny.yaml").write_text(SPEC)
    trainer.start(tmp / "tiny.yaml", trainer.Options(None, tmp / "run", {}), TrainReport(quiet=True))
    return tmp / "run"


def test_statistics_of_a_trained_run(run):
    r = inspect(run)
    conv = next(p for p in r.params if p["name"] == "conv1.weight")
    assert conv["shape"] == [6, 1, 5, 5] and conv["min"] <= conv["mean"] <= conv["max"]
    relu = next(a for a in r.activations if a["name"] == "relu1")
    assert 0 < relu["zeros"] < 1 and 0 <= relu["dead"] <= relu["zeros"] and relu["min"] == 0
    assert r.filters.shape == (6, 5, 5) and r.maps.shape == (6, 28, 28) and r.maps_layer == "conv1"
    assert len(r.meta["history"]) == 2


def test_dead_unit_share_is_exact(run):
    r = inspect(run, layer="relu1")
    relu = next(a for a in r.activations if a["name"] == "relu1")
    from cnncli.data import resolve
    from cnncli.data.augment import Batcher
    from cnncli.evaluate import load_trained
    from cnncli.model import Model

    trained = load_trained(run)
    plain = Model(trained.model.spec, np.float32, fuse=False)
    for name, value in trained.model.params().items():
        plain.set_param(name, value)
    norm = trained.meta["normalisation"]
    x = Batcher(resolve("fashion-mnist-sample").x_test, norm["mean"], norm["std"], [], 0)(np.arange(256))
    plain.forward_internal(x, train=False)
    out = plain.output_of(1)  # relu1, (C, H, W, N)
    assert relu["dead"] == pytest.approx(np.mean((out.reshape(-1, 256) == 0).all(axis=1)))
    assert r.maps.shape == (6, 28, 28) and r.maps.min() >= 0


def test_terminal_pictures_have_the_expected_size():
    maps = np.random.default_rng(0).random((6, 5, 4))
    image = pictures.grid(maps, columns=4)
    assert image.shape == (2 * 5 + 1, 4 * 4 + 3)  # 2 rows x 4 columns of 5x4 maps, 1-pixel gaps
    text = pictures.terminal(image)
    lines = text.plain.splitlines()
    assert len(lines) == 6 and all(len(line) == 19 for line in lines)  # ceil(11 / 2) lines
    console = Console(color_system="truecolor", width=100, file=None, force_terminal=True, record=True)
    console.print(text)
    assert "\x1b[38;2;" in console.export_text(styles=True)  # coloured half blocks
    plain = pictures.terminal(image, colour=False).plain
    assert set(plain) <= set(pictures.RAMP + "\n")


def test_cli_png_and_json(run, tmp_path):
    r = cnn("inspect", str(run), "--png", str(tmp_path / "pics"), "--layer", "relu1", "--sample", "3")
    assert r.returncode == 0, r.stderr
    assert "training history" in r.stdout and "dead units" in r.stdout and "filters of conv1" in r.stdout
    assert "feature maps of relu1 for sample 3" in r.stdout
    # sizes at 100 dpi from the figure sizes: 6 filters in a row; input + 6 maps; loss and accuracy panels
    assert_picture(tmp_path / "pics" / "filters.png", (780, 200))
    assert_picture(tmp_path / "pics" / "maps-relu1.png", (1100, 230))
    assert_picture(tmp_path / "pics" / "curves.png", (1100, 400))
    data = json.loads(cnn("inspect", str(run), "--json").stdout)
    assert [a["name"] for a in data["activations"]] == ["conv1", "relu1", "pool1", "fc1"]


def test_bare_spec_and_errors(tmp_path):
    r = cnn("inspect", str(ARCHITECTURES / "lenet-5.yaml"))
    assert r.returncode == 0 and "initial ones" in r.stdout and "filters of conv1" in r.stdout
    r = cnn("inspect", str(ARCHITECTURES / "fashion-tutorial.yaml"), "--data", "fashion-mnist-sample",
            "--layer", "fc1")
    assert r.returncode == 2 and "gives a flat vector" in r.stderr
    r = cnn("inspect", str(ARCHITECTURES / "fashion-tutorial.yaml"), "--data", "fashion-mnist-sample",
            "--layer", "conv9")
    assert r.returncode == 2 and "no layer named 'conv9'" in r.stderr


def test_report_renders(run):
    console = Console(width=120, record=True, file=open("/dev/null", "w"))
    report.show(inspect(run), console)
    text = console.export_text()
    assert "parameters" in text and "conv1.weight" in text and "loss" in text


def _in_a_terminal(args: list[str], env: dict) -> str:
    """Run this checkout's cnn with its stdout on a pseudo-terminal, as a user at a terminal sees it."""
    import os
    import subprocess
    import sys

    from .helpers import ROOT

    leader, follower = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "cnncli", *args], stdout=follower, stderr=subprocess.PIPE,
                            cwd=ROOT, env={**os.environ, "COLUMNS": "120", "TERM": "xterm-256color", **env})
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=120)
    os.close(leader)
    return out.decode("utf-8", "replace")


def _filters(text: str) -> str:
    start = text.index("filters of conv1")
    return text[start : start + 400]


def test_no_color_draws_the_character_ramp_in_a_terminal():
    coloured = _filters(_in_a_terminal(["inspect", str(ARCHITECTURES / "lenet-5.yaml")], {}))
    assert "▀" in coloured and "\x1b[38;" in coloured  # coloured half blocks
    plain = _filters(_in_a_terminal(["inspect", str(ARCHITECTURES / "lenet-5.yaml")], {"NO_COLOR": "1"}))
    assert "▀" not in plain and "▄" not in plain and "\x1b[38;" not in plain
    picture = plain.split("\n", 1)[1].splitlines()[:3]
    assert all(line.strip() and set(line.strip()) <= set(pictures.RAMP) for line in picture), picture


def test_report_uses_the_ramp_whenever_colour_is_not_wanted(run):
    for console in (Console(color_system="truecolor", force_terminal=True, no_color=True, width=120, record=True,
                            file=open("/dev/null", "w")),
                    Console(color_system="truecolor", force_terminal=False, width=120, record=True,
                            file=open("/dev/null", "w"))):
        report.show(inspect(run), console)
        text = console.export_text()
        assert "▀" not in text and "▄" not in text
        grid = text[text.index("filters of conv1"):].split("\n")[1]
        assert set(grid.strip()) <= set(pictures.RAMP) and grid.strip()
