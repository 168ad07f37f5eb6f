"""`cnn shapes` and `cnn layers` as a user and a CI script run them: exit codes, streams, JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import ARCHITECTURES, ROOT

TUTORIAL = str(ARCHITECTURES / "fashion-tutorial.yaml")


def cnn(*args: str, env: dict | None = None, cwd=ROOT) -> subprocess.CompletedProcess:
    """Run this checkout's `cnn` (from any working directory)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "cnncli", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": path, **(env or {})}, timeout=120)


def test_shapes_table_on_stdout():
    r = cnn("shapes", TUTORIAL)
    assert r.returncode == 0 and r.stderr == ""
    lines = r.stdout.splitlines()
    conv2 = next(line for line in lines if line.startswith("conv2"))
    assert "conv k=32 f=5 p=2" in conv2 and "32x14x14" in conv2 and "12,832" in conv2 and "14 /2" in conv2
    assert "parameters: 29,034 (trainable 29,034, non-trainable 0)" in r.stdout
    assert "MACs: 2,838,080 per sample" in r.stdout and "FLOPs = 2 x MACs" in r.stdout
    assert "\x1b[" not in r.stdout  # no colour codes when piped


def test_shapes_json_is_the_documented_object():
    r = cnn("shapes", TUTORIAL, "--json", "--batch", "100")
    data = json.loads(r.stdout)
    assert data["name"] == "fashion-tutorial" and data["input"] == [1, 28, 28]
    assert data["total_params"] == data["trainable_params"] == 29_034
    assert data["total_macs"] == 2_838_080 and data["buffers"] == 96
    assert [layer["name"] for layer in data["layers"]] == [
        "conv1", "bn1", "relu1", "pool1", "conv2", "bn2", "relu2", "pool2", "fc1"]
    assert data["layers"][3] | {} == {**data["layers"][3], "type": "pool", "spec": "pool 2", "output": [16, 14, 14],
                                      "params": 0, "macs": 0, "rf": {"size": 6, "jump": 2, "size_hw": [6, 6], "jump_hw": [2, 2]}}
    memory = data["train_step_bytes"]
    assert memory["batch"] == 100
    parts = ["weights", "gradients", "optimizer_state", "buffers", "activations", "activation_gradients", "workspace"]
    assert set(memory) == {"batch", "total", *parts} and memory["total"] == sum(memory[p] for p in parts)
    assert memory["workspace"] > 0 and memory["activation_gradients"] > 0


def test_residual_tree_is_drawn():
    r = cnn("shapes", str(ARCHITECTURES / "resnet-20-cifar.yaml"))
    assert "┌ down1.add1: sum of 2 branches" in r.stdout
    assert "├ branch 2: identity" in r.stdout
    assert any(line.startswith("│   down1.shortcut1") for line in r.stdout.splitlines())


def test_error_is_one_message_on_stderr_with_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: 1x28x28\nnet: conv k=16 f=5 -> rleu -> fc 10\n")
    r = cnn("shapes", str(bad))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith(f"error: {bad}:2:23: layer 'rleu': unknown layer kind 'rleu'")
    assert "did you mean 'relu'?" in r.stderr and "Traceback" not in r.stderr


def test_missing_file():
    r = cnn("shapes", "nope.yaml")
    assert r.returncode == 2 and "no such file: nope.yaml" in r.stderr and "Traceback" not in r.stderr


def test_warnings_go_to_stderr_and_strict_fails(tmp_path):
    spec = tmp_path / "drop.yaml"
    spec.write_text("input: 1x28x28\nnet: conv k=4 f=3 s=2 -> fc 10\n")
    r = cnn("shapes", str(spec))
    assert r.returncode == 0 and r.stderr.startswith("warning: ") and "floors to 13" in r.stderr
    r = cnn("shapes", str(spec), "--strict")
    assert r.returncode == 2 and r.stderr.startswith("error: ") and r.stdout == ""


def test_budgets_exit_1_with_the_figure():
    r = cnn("shapes", TUTORIAL, "--max-params", "20k")
    assert r.returncode == 1 and "parameters 29,034 exceed --max-params 20,000" in r.stderr
    assert cnn("shapes", TUTORIAL, "--max-params", "29034", "--max-macs", "3M").returncode == 0
    r = cnn("shapes", TUTORIAL, "--max-macs", "2.5M")
    assert r.returncode == 1 and "MACs per sample 2,838,080 exceed --max-macs 2,500,000" in r.stderr
    r = cnn("shapes", TUTORIAL, "--max-params", "lots")
    assert r.returncode == 2 and "--max-params lots is not a number" in r.stderr


def test_shapes_and_help_do_not_import_numba():
    code = ("import sys; from cnncli.cli import app; sys.argv = ['cnn'] + sys.argv[1:]\n"
            "try:\n    app()\nexcept SystemExit:\n    pass\n"
            "assert 'numba' not in sys.modules, 'numba was imported'\nprint('clean')")
    for args in (["shapes", str(ARCHITECTURES / "resnet-50.yaml")], ["shapes", "resnet-50"], ["--help"],
                 ["shapes", "--help"], ["layers"], ["zoo"], ["zoo", "--json"], ["train", "--help"], ["inspect", "--help"],
                 ["export", "--help"], ["import", "--help"], ["sweep", "--help"]):
        r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert r.stdout.rstrip().endswith("clean"), (args, r.stderr)


@pytest.mark.parametrize("command", ["shapes", "zoo", "layers", "train", "eval", "predict", "inspect", "bench",
                                     "gradcheck", "export", "import", "sweep"])
def test_help_has_an_example(command):
    r = cnn(command, "--help")
    assert r.returncode == 0 and "Example: cnn " + command in r.stdout


def test_layers_lists_the_registry():
    r = cnn("layers")
    for kind in ("conv", "pool", "avgpool", "l2pool", "gap", "gmp", "bn", "lrn", "relu6", "lrelu", "elu",
                 "softmax", "dropout", "flatten", "fc", "add", "cat", "shortcut", "silu", "hardswish", "hardsigmoid",
                 "gelu", "mul"):
        assert any(line.startswith(kind + " ") for line in r.stdout.splitlines()), kind
    detail = cnn("layers", "conv", "--json")
    params = {p["name"]: p for p in json.loads(detail.stdout)[0]["params"]}
    assert params["f"]["default"] == "required" and params["s"]["default"] == "1" and params["k"]["positional"]
    assert "se(c, r, act=relu, gate=sigmoid)" in r.stdout
    r = cnn("layers", "se")
    assert r.returncode == 0 and "mul(id | gap -> conv k=$r f=1 bias=true" in r.stdout
    r = cnn("layers", "conf")
    assert r.returncode == 2 and "did you mean 'conv'?" in r.stderr


def test_no_color_and_version():
    r = cnn("shapes", TUTORIAL, env={"NO_COLOR": "1", "TERM": "xterm"})
    assert "\x1b[" not in r.stdout
    assert cnn("--version").stdout.startswith("cnncli ")


def test_shapes_input_override_matches_the_spec_written_for_that_input(tmp_path):
    small = cnn("shapes", str(ARCHITECTURES / "resnet-50.yaml"), "--input", "3x64x64", "--json")
    assert small.returncode == 0, small.stderr
    text = (ARCHITECTURES / "resnet-50.yaml").read_text().replace("input: 3x224x224", "input: 3x64x64")
    (tmp_path / "r64.yaml").write_text(text)
    written = json.loads(cnn("shapes", str(tmp_path / "r64.yaml"), "--json").stdout)
    data = json.loads(small.stdout)
    assert data["input"] == [3, 64, 64] and data["layers"][-1]["output"] == [1000]
    assert data["total_macs"] == written["total_macs"] < 4_089_184_256 and data["total_params"] == 25_557_032
    r = cnn("shapes", TUTORIAL, "--input", "1x28")
    assert r.returncode == 2 and r.stderr.startswith("error: --input: input must be C x H x W")


def test_option_values_are_checked_without_pydantic():
    pytest.importorskip("typer._coercion", reason="this typer converts values through click, not pydantic")
    from typer._click.exceptions import BadParameter

    from cnncli import cliparams
    from cnncli.cliparams import convert, light
    from typer.models import OptionInfo

    assert convert(int, OptionInfo(min=1), "3") == 3 and convert(float, OptionInfo(), "1e-3") == 0.001
    assert convert(bool, OptionInfo(), "yes") is True and convert(Path, OptionInfo(), "a/b") == Path("a/b")
    for annotation, info, value, message in ((int, OptionInfo(min=1), "0", "0 is less than the minimum 1"),
                                             (int, OptionInfo(), "x", "'x' is not an integer"),
                                             (float, OptionInfo(max=1.0), "2", "2.0 is more than the maximum 1.0"),
                                             (float, OptionInfo(), "nan", "'nan' is not a finite number")):
        with pytest.raises(BadParameter, match=message):
            convert(annotation, info, value)
    assert not light(list[str], OptionInfo()) and not light(Path, OptionInfo(exists=True))
    assert not light(str, OptionInfo(parser=str))
    cliparams.install()  # twice is once
    r = cnn("shapes", TUTORIAL, "--batch", "0")
    assert r.returncode == 2 and "Invalid value for '--batch'" in r.stderr and "minimum 1" in r.stderr


@pytest.mark.parametrize("args,says", [
    (("train", "fashion-tutorial", "--epochs", "abc"), "error: cnn train: Invalid value for '--epochs': 'abc' is not an integer; see 'cnn train --help'"),
    (("shapes",), "error: cnn shapes: Missing argument 'spec'; see 'cnn shapes --help'"),
    (("nosuch",), "error: cnn: No such command 'nosuch'; see 'cnn --help'"),
    (("shapes", TUTORIAL, "--bogus\x1b[2J"), "error: cnn shapes: No such option: --bogus\\x1b[2J; see 'cnn shapes --help'"),
])
def test_usage_mistakes_end_in_one_error_line(args, says):
    """Like every other user mistake: one line on stderr, exit code 2, the input's control
    characters escaped, no box drawn around it."""
    r = cnn(*args)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [says]


def test_bare_cnn_still_shows_the_help():
    r = cnn()
    assert r.returncode == 2 and "Usage: cnn [OPTIONS] COMMAND" in r.stdout + r.stderr and "shapes" in r.stdout + r.stderr
