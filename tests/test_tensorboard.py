"""`cnn train --tensorboard`: event files that TensorBoard's own reader reads back, equal to metrics.jsonl."""

from __future__ import annotations

import json
import sys

import pytest

from cnncli import train as trainer
from cnncli.errors import UserError
from cnncli.report.progress import TrainReport

from .test_cli_shapes import cnn

pytest.importorskip("tensorboard")

SPEC = ("name: tiny\ninput: 1x28x28\nclasses: 10\nnet: conv k=4 f=5 p=2 -> bn -> relu -> pool 2 -> fc 10\n"
        "train:\n  data: fashion-mnist-sample\n  epochs: 2\n  batch: 128\n  val: 300\n")


def _events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_event_files_match_metrics(tmp_path):
    (tmp_path / "tiny.yaml").write_text(SPEC)
    trainer.start(tmp_path / "tiny.yaml", trainer.Options(None, tmp_path / "run", {}, None, tensorboard_every=5),
                  TrainReport(quiet=True))
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    acc = _events(tmp_path / "run" / "tensorboard")
    for key in ("loss", "acc", "val_loss", "val_acc", "lr"):
        logged = [(e.step, e.value) for e in acc.Scalars(f"epoch/{key}")]
        assert logged == [(row["epoch"], pytest.approx(row[key], rel=1e-6)) for row in rows], key
    steps = [e.step for e in acc.Scalars("step/loss")]
    assert steps and all(s % 5 == 0 for s in steps) and steps == sorted(steps)
    tags = acc.Tags()
    for name in ("conv1.weight", "bn1.weight", "fc1.bias"):
        assert f"weights/{name}" in tags["histograms"] and f"gradients/{name}" in tags["histograms"]
    histogram = acc.Histograms("weights/conv1.weight")
    assert [h.step for h in histogram] == [1, 2] and histogram[0].histogram_value.num == 4 * 25
    spec_text = acc.Tensors("spec")[0].tensor_proto.string_val[0].decode()
    assert spec_text == SPEC


def test_cli_flag_is_documented():
    r = cnn("train", "--help")
    assert "--tensorboard" in r.stdout and "--log-every" in r.stdout


def test_missing_tensorboard_is_refused_before_any_work(tmp_path, monkeypatch):
    (tmp_path / "tiny.yaml").write_text(SPEC)
    monkeypatch.setitem(sys.modules, "tensorboard.summary.writer.event_file_writer", None)
    with pytest.raises(UserError) as info:
        trainer.start(tmp_path / "tiny.yaml", trainer.Options(None, tmp_path / "run", {}, None, 10), TrainReport(quiet=True))
    assert "pip install 'cnncli[tensorboard]'" in str(info.value)
    assert not (tmp_path / "run").exists()
