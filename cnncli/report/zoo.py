"""`cnn zoo`: the shipped networks, one line each."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from . import human


def show(networks: list[dict], out: Console) -> None:
    t = Table(box=box.SIMPLE_HEAD if out.is_terminal else box.ASCII2, show_edge=False, pad_edge=False)
    for col, justify in (("name", "left"), ("input", "right"), ("params", "right"), ("MACs", "right"),
                         ("description", "left")):
        t.add_column(col, justify=justify)
    for n in networks:
        t.add_row(n["name"], "x".join(map(str, n["input"])), f"{n['params']:,}", human(n["macs"]), n["description"])
    out.print(t)
