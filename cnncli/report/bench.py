"""The `cnn bench` report."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from ..layers.base import describe_shape
from . import plain


def show(r: dict, out: Console) -> None:
    t = Table(box=box.SIMPLE_HEAD if out.is_terminal else box.ASCII2, show_edge=False, pad_edge=False,
              title=plain(f"{r['name']}: batch {r['batch']}, {r['threads']} threads, mean of {r['steps']} steps"),
              title_justify="left")
    for col, justify in (("layer", "left"), ("type", "left"), ("output", "right"), ("forward ms", "right"),
                         ("backward ms", "right"), ("GFLOP/s fwd", "right"), ("bwd", "right"), ("share", "right")):
        t.add_column(col, justify=justify, no_wrap=True)
    for layer in r["layers"]:
        if layer["fused_into"]:
            t.add_row(layer["name"], layer["type"], describe_shape(layer["output"]), f"in {layer['fused_into']}", "", "", "",
                      "")
            continue
        t.add_row(layer["name"], layer["type"], describe_shape(layer["output"]), f"{layer['forward_ms']:.3f}",
                  f"{layer['backward_ms']:.3f}", _rate(layer["forward_gflop_per_s"]), _rate(layer["backward_gflop_per_s"]),
                  f"{100 * layer['share']:.1f}%")
    out.print(t)
    if any(layer["fused_into"] for layer in r["layers"]):
        out.print("'in X': computed in the same pass as layer X (bn -> relu -> max pool and add -> relu are fused)", markup=False)
    out.print()
    lines = [
        f"training step: {r['train_step_ms']:.2f} ms = {r['train_samples_per_s']:,.0f} samples/s, "
        f"{r['train_gflop_per_s']:.1f} GFLOP/s (loss and optimizer {r['loss_and_optimizer_ms']:.2f} ms)",
        f"inference:     {r['inference_ms']:.2f} ms = {r['inference_samples_per_s']:,.0f} samples/s, "
        f"{r['inference_gflop_per_s']:.1f} GFLOP/s",
        f"first step:    {r['first_step_s']:.2f} s (model build, Numba compilation or cache load, first run)",
        f"BLAS:          {r['blas']}",
        f"CPU:           {r['cpu']['name']}, {r['cpu']['vector']}, {r['cpu']['cores']} usable cores",
    ]
    for line in lines:
        out.print(line, markup=False)


def _rate(gflop_per_s: float | None) -> str:
    return "-" if gflop_per_s is None else f"{gflop_per_s:.1f}"
