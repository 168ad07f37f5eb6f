"""The `cnn gradcheck` report."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table


def show(results, tolerance: float, out: Console) -> None:
    t = Table(box=box.SIMPLE_HEAD if out.is_terminal else box.ASCII2, show_edge=False, pad_edge=False)
    for col in ("layer", "type", "worst rel. error", "entries", "kinks", "where", ""):
        t.add_column(col, no_wrap=True)
    for r in results:
        ok = r.worst <= tolerance
        t.add_row(r.name, r.kind, f"{r.worst:.2e}", str(r.checked), str(r.kinks), r.worst_where,
                  "ok" if ok else "[bold red]FAIL[/]")
    out.print(t)
    bad = sum(r.worst > tolerance for r in results)
    out.print(f"{len(results) - bad} of {len(results)} layers within {tolerance:g}"
              + (f"; {bad} failed" if bad else ""), markup=False)
    kinks = sum(r.kinks for r in results)
    if kinks:
        out.print(f"{kinks} entries skipped where the loss has a kink (relu at 0, max-pool ties): finite "
                  "differences cannot measure a gradient there", markup=False)
