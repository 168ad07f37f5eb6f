"""What `cnn sweep` shows: a live table of trials on stderr in a terminal (a line per finished trial
when piped), then the best trial and the parameter importances on stdout."""

from __future__ import annotations

from typing import Any

from rich.live import Live
from rich.markup import escape
from rich.table import Table

from . import console


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _printable(text: str) -> str:
    """Control characters from the sweep file shown escaped, never sent to the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _params(params: dict[str, Any]) -> str:
    return _printable("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()))


class SweepReport:
    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.err = console(stderr=True)
        self.live: Live | None = None
        self.rows: dict[int, dict[str, Any]] = {}
        self.metric = ""

    def message(self, text: str) -> None:
        if not self.quiet:
            self.err.print(text, markup=False, highlight=False)

    def start(self, study, sweep) -> None:
        self.metric = sweep.metric
        for t in study.get_trials(deepcopy=False):
            if t.state.is_finished():
                self.rows[t.number] = {"number": t.number, "state": t.state.name, "params": t.params,
                                       "value": t.value, "worker": t.user_attrs.get("worker")}
        if self.err.is_terminal and not self.quiet:
            self.live = Live(self._table(), console=self.err, refresh_per_second=4)
            self.live.start()

    def trial_started(self, trial) -> None:
        self.rows[trial.number] = {"number": trial.number, "state": "RUNNING", "params": trial.params,
                                   "value": None, "worker": None}
        self._update()

    def trial_done(self, record: dict[str, Any]) -> None:
        self.rows[record["number"]] = record
        self._update()
        if self.live is None and not self.quiet:
            line = (f"trial {record['number']} {record['state']}  {self.metric} {_value(record['value'])}  "
                    f"{_params(record['params'])}  worker {_printable(str(record['worker']))}")
            if record.get("error"):
                line += f"  ({_printable(record['error'])})"
            self.err.print(line, markup=False, highlight=False)

    def _update(self) -> None:
        if self.live is not None:
            self.live.update(self._table())

    def _table(self) -> Table:
        table = Table(title="cnn sweep")
        for column in ("trial", "state", self.metric, "params", "worker"):
            table.add_column(column, justify="right" if column in ("trial", self.metric) else "left")
        for number in sorted(self.rows):
            row = self.rows[number]
            table.add_row(str(number), row["state"], _value(row["value"]), escape(_params(row["params"])),
                          escape(_printable(str(row["worker"] or ""))))
        return table

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


def show(result: dict[str, Any]) -> None:
    """The outcome on stdout: the best trial, its parameters and run directory, the importances."""
    out = console()
    states: dict[str, int] = {}
    for t in result["trials"]:
        states[t["state"]] = states.get(t["state"], 0) + 1
    out.print(f"{len(result['trials'])} trials (" + ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items()))
              + f"); sweep directory {result['sweep']}", markup=False)
    best = result["best"]
    if best is None:
        out.print("no trial finished", markup=False)
        return
    out.print(f"best: trial {best['number']}, {result['metric']} {best['value']:.4f}", markup=False)
    out.print(f"  params: {_params(best['params'])}", markup=False)
    out.print(f"  run directory: {best['run']}", markup=False)
    if result["importances"]:
        shown = ", ".join(f"{k} {v:.2f}" for k, v in result["importances"].items())
        out.print(f"importances: {shown}", markup=False)
    for path in result["plots"]:
        out.print(f"plot: {path}", markup=False)
