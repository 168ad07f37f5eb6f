"""TensorBoard event files for a training run, written with TensorBoard's own writer and protocol
buffers (the optional extra `cnncli[tensorboard]`; no TensorFlow needed).

What a run logs into RUN/tensorboard/: per epoch the scalars `epoch/loss`, `epoch/acc`,
`epoch/val_loss`, `epoch/val_acc` and `epoch/lr`, and per parameter a histogram of its values
(`weights/NAME`) and of its last gradient (`gradients/NAME`); every N steps `step/loss`; once,
the spec text (`spec`, in the Text tab). `tensorboard --logdir runs/` shows every run side by side.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import UserError

BUCKETS = 30


def require() -> None:
    """Refuse before any work is done when the extra is missing."""
    try:
        import tensorboard.summary.writer.event_file_writer  # noqa: F401
    except ImportError:
        raise UserError("--tensorboard needs the tensorboard package", "pip install 'cnncli[tensorboard]'") from None


class TensorBoardLog:
    def __init__(self, folder: Path, spec_text: str, every: int):
        require()
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._event, self._summary = event_pb2.Event, summary_pb2
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.every = folder, every
        self.writer = EventFileWriter(str(folder))
        self.text("spec", spec_text, 0)

    def _write(self, value, step: int) -> None:
        self.writer.add_event(self._event(wall_time=time.time(), step=int(step),
                                          summary=self._summary.Summary(value=[value])))

    def scalar(self, tag: str, value: float, step: int) -> None:
        self._write(self._summary.Summary.Value(tag=tag, simple_value=float(value)), step)

    def histogram(self, tag: str, values: np.ndarray, step: int) -> None:
        from tensorboard.compat.proto.summary_pb2 import HistogramProto

        v = np.asarray(values, dtype=np.float64).ravel()
        if not v.size or not np.isfinite(v).all():
            return
        counts, edges = np.histogram(v, bins=BUCKETS)
        proto = HistogramProto(min=float(v.min()), max=float(v.max()), num=float(v.size), sum=float(v.sum()),
                               sum_squares=float(np.dot(v, v)), bucket_limit=edges[1:].tolist(),
                               bucket=counts.astype(float).tolist())
        self._write(self._summary.Summary.Value(tag=tag, histo=proto), step)

    def text(self, tag: str, text: str, step: int) -> None:
        from tensorboard.compat.proto import tensor_pb2, tensor_shape_pb2, types_pb2

        metadata = self._summary.SummaryMetadata(plugin_data=self._summary.SummaryMetadata.PluginData(plugin_name="text"))
        tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[text.encode("utf-8")],
                                        tensor_shape=tensor_shape_pb2.TensorShapeProto(
                                            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1)]))
        self._write(self._summary.Summary.Value(tag=tag, metadata=metadata, tensor=tensor), step)

    # -- what the training loop calls

    def step(self, global_step: int, loss: float) -> None:
        if global_step % self.every == 0:
            self.scalar("step/loss", loss, global_step)

    def epoch(self, row: dict, model) -> None:
        epoch = row["epoch"]
        for key in ("loss", "acc", "val_loss", "val_acc", "lr"):
            if row.get(key) is not None:
                self.scalar(f"epoch/{key}", row[key], epoch)
        for name, value in model.params().items():
            self.histogram(f"weights/{name}", value, epoch)
        for name, value in model.grads().items():
            self.histogram(f"gradients/{name}", value, epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
