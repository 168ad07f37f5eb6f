"""`cnn bench` and `cnn gradcheck` from the command line."""

from __future__ import annotations

import json

from .helpers import ARCHITECTURES
from .test_cli_shapes import cnn

TINY = "input: 2x8x8\nclasses: 3\nnet: conv k=4 f=3 p=1 -> bn -> relu -> pool 2 -> conv k=4 f=3 -> tanh -> fc 3\n"


def test_bench_json_reports_layers_throughput_and_first_step(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    r = cnn("bench", str(spec), "--batch", "8", "--steps", "2", "--warmup", "1", "--threads", "1", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["batch"] == 8 and data["threads"] == 1
    assert [layer["name"] for layer in data["layers"]] == ["conv1", "bn1", "relu1", "pool1", "conv2", "tanh1", "fc1"]
    assert data["train_step_ms"] > 0 and data["inference_samples_per_s"] > 0 and data["first_step_s"] > 0
    assert abs(data["train_samples_per_s"] - 8 / (data["train_step_ms"] / 1000)) < 1e-6 * data["train_samples_per_s"]
    assert all(0 <= layer["share"] <= 1 for layer in data["layers"])


def test_bench_table():
    r = cnn("bench", str(ARCHITECTURES / "fashion-tutorial.yaml"), "--batch", "4", "--steps", "1", "--warmup", "0")
    assert r.returncode == 0, r.stderr
    assert "training step:" in r.stdout and "samples/s" in r.stdout and "first step:" in r.stdout
    assert any(line.startswith("conv2 ") for line in r.stdout.splitlines())


def test_gradcheck_passes_and_fails_by_tolerance(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    r = cnn("gradcheck", str(spec), "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["passed"] and len(data["layers"]) == 7
    assert max(layer["worst_relative_error"] for layer in data["layers"]) < 1e-5
    r = cnn("gradcheck", str(spec), "--tolerance", "1e-30")
    assert r.returncode == 1 and "FAIL" in r.stdout


def test_gradcheck_input_override_and_errors():
    r = cnn("gradcheck", str(ARCHITECTURES / "resnet-20-cifar.yaml"), "--input", "3x8x8", "--batch", "4", "--entries", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "70 of 70 layers within 1e-05" in r.stdout
    r = cnn("gradcheck", str(ARCHITECTURES / "resnet-20-cifar.yaml"), "--input", "3x4")
    assert r.returncode == 2 and "input must be C x H x W" in r.stderr


def test_gradcheck_refuses_a_negative_seed_without_a_traceback():
    r = cnn("gradcheck", str(ARCHITECTURES / "fashion-tutorial.yaml"), "--input", "1x8x8", "--seed", "-5")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "--seed" in r.stderr and r.stdout == ""
