"""What `cnn train` shows: a progress bar in a terminal, one line per epoch, plain when piped."""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from ..errors import printable
from . import console


def epoch_line(row: dict, epochs: int) -> str:
    parts = [f"epoch {row['epoch']}/{epochs}", f"loss {row['loss']:.4f}"]
    if "acc" in row:
        parts.append(f"acc {100 * row['acc']:.2f}%")
    if "val_loss" in row:
        parts.append(f"val_loss {row['val_loss']:.4f}")
    if "val_acc" in row:
        parts.append(f"val_acc {100 * row['val_acc']:.2f}%")
    parts += [f"lr {row['lr']:.3g}", f"{row['seconds']:.1f} s", f"{row['samples_per_s']:,.0f} samples/s"]
    return "  ".join(parts)


class TrainReport:
    def __init__(self, quiet: bool = False, json_mode: bool = False):
        self.quiet, self.json_mode = quiet, json_mode
        self.out, self.err = console(), console(stderr=True)
        self.live = self.err.is_terminal and not quiet
        self.progress: Progress | None = None
        self.task = None
        self.epochs = 0

    def message(self, text: str) -> None:
        if not self.quiet:
            self.err.print(printable(text), markup=False, highlight=False)

    def epoch_start(self, epoch: int, epochs: int, steps: int, done: int) -> None:
        self.epochs = epochs
        if not self.live:
            return
        self.progress = Progress(TextColumn(f"epoch {epoch + 1}/{epochs}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[stats]}"), TimeRemainingColumn(), console=self.err,
                                 transient=True)
        self.progress.start()
        self.task = self.progress.add_task("train", total=steps, completed=done, stats="")

    def step(self, done: int, loss: float, acc: float | None, rate: float) -> None:
        if self.progress is None:
            return
        stats = f"loss {loss:.4f}" + (f"  acc {100 * acc:.1f}%" if acc is not None else "") + f"  {rate:,.0f}/s"
        self.progress.update(self.task, completed=done, stats=stats)

    def epoch_end(self, row: dict) -> None:
        self.close()
        if self.quiet:
            return
        line = epoch_line(row, self.epochs)
        (self.err if self.json_mode else self.out).print(line, markup=False, highlight=False)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
