"""`cnn layers`: the layer registry as documentation."""

from __future__ import annotations

import json

from rich import box
from rich.console import Console
from rich.table import Table

from ..errors import UserError
from ..layers import KINDS, lookup
from ..layers.base import REQUIRED, LayerKind
from ..spec.chain import suggest


def _default(param) -> str:
    if param.default is REQUIRED:
        return "required"
    if param.default is None:
        return "-"
    if isinstance(param.default, bool):
        return str(param.default).lower()
    return str(param.default)


def describe(kind: type[LayerKind]) -> dict:
    return {
        "name": kind.name,
        "aliases": list(kind.aliases),
        "family": kind.family,
        "summary": kind.summary,
        "example": kind.example,
        "params": [
            {"name": p.name, "type": p.describe_type(), "default": _default(p), "positional": p.positional, "doc": p.doc}
            for p in kind.all_params()
        ],
    }


def _show_block(block, out: Console, json_out: bool) -> None:
    body = " ; ".join(text.value for text in block.body)
    if json_out:
        out.file.write(json.dumps([{"block": block.name, "signature": block.signature(), "body": body}], indent=2) + "\n")
        return
    out.print(f"{block.signature()}: a block every spec may call (a spec's own block of that name wins)", markup=False)
    out.print(f"  = {body}", markup=False)


def show(name: str | None, out: Console, json_out: bool) -> None:
    from ..spec.sections import shipped_blocks

    blocks = shipped_blocks()
    if name is not None and lookup(name) is None and name in blocks:
        _show_block(blocks[name], out, json_out)
        return
    if name is not None:
        kind = lookup(name)
        if kind is None:
            close = suggest(name, [*KINDS, *blocks])
            raise UserError(f"unknown layer kind '{name}'",
                            (f"did you mean '{close}'? " if close else "") + "cnn layers lists them all")
        kinds = [kind]
    else:
        kinds = list(KINDS.values())
    if json_out:
        out.file.write(json.dumps([describe(k) for k in kinds], indent=2) + "\n")
        return
    if name is None:
        t = Table(box=box.SIMPLE_HEAD if out.is_terminal else box.ASCII2, show_edge=False, pad_edge=False)
        for col in ("kind", "also", "family", "what it does", "example"):
            t.add_column(col, overflow="fold")
        for k in kinds:
            t.add_row(k.name, ", ".join(k.aliases), k.family, k.summary, k.example)
        out.print(t)
        out.print("Shipped blocks, callable from every spec: " + ", ".join(b.signature() for b in blocks.values()),
                  markup=False)
        out.print("cnn layers KIND shows a kind's parameters (or a block's definition).", markup=False)
        return
    kind = kinds[0]
    out.print(f"{kind.name}: {kind.summary}", markup=False)
    if kind.aliases:
        out.print("also written: " + ", ".join(kind.aliases), markup=False)
    out.print(f"example: {kind.example}", markup=False)
    t = Table(box=box.SIMPLE_HEAD if out.is_terminal else box.ASCII2, show_edge=False, pad_edge=False)
    for col in ("parameter", "takes", "default", "positional", "meaning"):
        t.add_column(col, overflow="fold")
    for p in kind.all_params():
        t.add_row(p.name, p.describe_type(), _default(p), "yes" if p.positional else "", p.doc)
    out.print(t)
