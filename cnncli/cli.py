"""The `cnn` command. One small function per command; the work happens in the modules they call.

Nothing here imports numba at module level, so `cnn shapes` and `--help` answer instantly.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Optional

import typer

from . import __version__
from .errors import UserError

app = typer.Typer(
    name="cnn",
    help="Check, train and inspect convolutional networks written as a few lines of YAML.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


def _fail(exc: UserError) -> None:
    from .report import console

    console(stderr=True).print(f"error: {exc}", markup=False)
    raise typer.Exit(exc.exit_code)


def _count(text: str | None, option: str) -> int | None:
    """'25557032', '25.6M', '4G', '1_000' -> an integer."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*([0-9][0-9_,]*(?:\.[0-9]+)?)\s*([kKmMgGtT]?)\s*", text)
    if not m:
        raise UserError(f"{option} {text} is not a number", f"write e.g. {option} 5000000 or {option} 5M")
    scale = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}[m.group(2).lower()]
    return int(float(m.group(1).replace("_", "").replace(",", "")) * scale)


def _version(value: bool) -> None:
    if value:
        print(f"cnncli {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Check, train and inspect convolutional networks written as a few lines of YAML."""


@app.command(epilog="Example: cnn shapes architectures/fashion-tutorial.yaml --batch 64\n\n"
             "CI gate: cnn shapes arch.yaml --strict --max-params 5M --json > shapes.json")
def shapes(
    spec: Path = typer.Argument(..., help="The spec file (YAML).", show_default=False),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of the table."),
    strict: bool = typer.Option(False, "--strict", help="Make warnings (input dropped by flooring) errors."),
    batch: int = typer.Option(64, "--batch", min=1, help="Batch size for the training-memory estimate."),
    max_params: Optional[str] = typer.Option(None, "--max-params", help="Exit 1 if the parameters exceed N (e.g. 5M)."),
    max_macs: Optional[str] = typer.Option(None, "--max-macs", help="Exit 1 if the MACs per sample exceed N (e.g. 2G)."),
) -> None:
    """Check a spec and show every layer's output shape, parameters, MACs and receptive field.

    Exit codes: 0 valid; 1 over a --max-params/--max-macs budget; 2 invalid spec.
    """
    from . import spec as specs
    from .report import console
    from .report import shapes as report

    try:
        limits = {"parameters": (_count(max_params, "--max-params"), "--max-params"),
                  "MACs per sample": (_count(max_macs, "--max-macs"), "--max-macs")}
        net = specs.load(spec, strict=strict)
    except UserError as exc:
        _fail(exc)
    err = console(stderr=True)
    for warning in net.warnings:
        err.print(f"warning: {warning}", markup=False)
    if json_out:
        sys.stdout.write(json.dumps(net.summary(batch), indent=2) + "\n")
    else:
        report.show(net, console(), batch)
    over = False
    for what, figure in (("parameters", net.total_params), ("MACs per sample", net.total_macs)):
        limit, option = limits[what]
        if limit is not None and figure > limit:
            err.print(f"error: {spec}: {what} {figure:,} exceed {option} {limit:,}", markup=False)
            over = True
    if over:
        raise typer.Exit(1)


@app.command(epilog="Example: cnn layers conv")
def layers(
    kind: Optional[str] = typer.Argument(None, help="Show one layer kind in detail."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the layer kinds a spec can use, with their parameters and defaults."""
    from .report import console
    from .report import layers as report

    try:
        report.show(kind, console(), json_out)
    except UserError as exc:
        _fail(exc)


def run() -> None:
    app()
