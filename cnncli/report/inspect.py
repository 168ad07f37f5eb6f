"""The `cnn inspect` report."""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from ..errors import printable
from . import pictures, plain, wants_colour
from . import shapes as shapes_report

SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    if hi == lo:
        return SPARK[0] * len(values)
    return "".join(SPARK[int((v - lo) / (hi - lo) * (len(SPARK) - 1))] for v in values)


def _table(out: Console, title, columns) -> Table:
    t = Table(box=box.SIMPLE_HEAD if out.is_terminal else box.ASCII2, show_edge=False, pad_edge=False,
              title=title, title_justify="left")
    for col in columns:
        t.add_column(col, justify="left" if col in ("layer", "parameter", "type", "shape") else "right")
    return t


def show(r, out: Console) -> None:
    colour = wants_colour(out)  # else a ramp of characters: blocks without colour are solid
    shapes_report.show(r.spec, out, batch=64)
    out.print()
    meta = r.meta
    if meta and meta.get("history"):
        h = meta["history"]
        t = _table(out, "training history", ["epoch", "loss", "acc", "val_loss", "val_acc", "lr", "seconds"])
        for row in h:
            t.add_row(*(f"{row[k]:.4g}" if isinstance(row.get(k), float) else str(row.get(k, "-"))
                        for k in ("epoch", "loss", "acc", "val_loss", "val_acc", "lr", "seconds")))
        out.print(t)
        for key in ("loss", "val_loss", "acc", "val_acc"):
            values = [row[key] for row in h if key in row]
            if len(values) > 1:
                out.print(f"{key:>8} {sparkline(values)}  {values[0]:.4f} -> {values[-1]:.4f}", markup=False)
        best = meta.get("best")
        total = sum(row.get("seconds", 0) for row in h)
        out.print(f"trained on {printable(meta['data']['source'])}; {len(h)} epochs, {total:.1f} s"
                  + (f"; best {best['metric']} {best['value']:.4f} at epoch {best['epoch']}" if best else ""),
                  markup=False)
        out.print()
    elif meta is None:
        out.print("a bare spec: the weights below are the initial ones (seed 0)", markup=False)
    t = _table(out, "parameters", ["parameter", "shape", "mean", "std", "min", "max", "zeros"])
    for p in r.params:
        t.add_row(p["name"], "x".join(map(str, p["shape"])), f"{p['mean']:.4g}", f"{p['std']:.4g}", f"{p['min']:.4g}",
                  f"{p['max']:.4g}", f"{100 * p['zeros']:.1f}%")
    out.print(t)
    if r.activations:
        t = _table(out, plain(f"activations on a batch of {r.data_source}"),
                   ["layer", "type", "mean", "std", "min", "max", "zeros", "dead units"])
        for a in r.activations:
            t.add_row(a["name"], a["type"], f"{a['mean']:.4g}", f"{a['std']:.4g}", f"{a['min']:.4g}", f"{a['max']:.4g}",
                      f"{100 * a['zeros']:.1f}%", f"{100 * a['dead']:.1f}%" if "dead" in a else "")
        out.print(t)
        out.print("dead units: ReLU outputs that are zero for every sample of the batch", markup=False)
    if r.filters is not None:
        out.print(f"\nfilters of {r.filters_layer} ({r.filters.shape[0]}; blue negative, red positive)", markup=False)
        signed = r.filters.ndim == 3
        out.print(pictures.terminal(pictures.grid(r.filters, signed=signed), signed=signed, colour=colour))
    if r.maps is not None:
        out.print(printable(f"feature maps of {r.maps_layer} for {r.maps_input}"), markup=False)
        columns = max(1, min(8, 96 // (r.maps.shape[-1] + 1)))  # fits a 100-column terminal
        out.print(pictures.terminal(pictures.grid(r.maps, columns=columns), colour=colour))


def write_pngs(r, folder: Path) -> dict[str, str]:
    """Filters, feature maps (beside their input) and training curves as titled matplotlib PNGs."""
    from . import plots

    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    if r.filters is not None:
        path = folder / "filters.png"
        plots.filter_grid(r.filters if r.filters.ndim == 4 else r.filters[:, None], r.filters_layer, path)
        written["filters"] = str(path)
    if r.maps is not None:
        path = folder / f"maps-{r.maps_layer}.png"
        plots.feature_maps(r.maps, r.maps_layer, r.maps_image, r.maps_input, path)
        written["maps"] = str(path)
    if r.meta and r.meta.get("history"):
        path = folder / "curves.png"
        plots.training_curves(r.meta["history"], f"{r.spec.name}: training curves", path)
        written["curves"] = str(path)
    return written
