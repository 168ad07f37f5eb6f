"""Tables for `cnn eval` and `cnn predict`."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from ..errors import printable
from . import plain


def _box(out: Console):
    return box.SIMPLE_HEAD if out.is_terminal else box.ASCII2


def show_eval(r: dict, out: Console) -> None:
    out.print(printable(f"{r['checkpoint']} on {r['data']}, split: {r['split']}, {r['samples']:,} samples"), markup=False)
    if "accuracy" not in r:
        out.print(f"MSE {r['mse']:.6g}   MAE {r['mae']:.6g}   R² {r['r2']:.4f}", markup=False)
        return
    top = next(k for k in r if k.startswith("top") and k.endswith("_accuracy"))
    out.print(f"loss {r['loss']:.4f}   accuracy {100 * r['accuracy']:.2f}%   "
              f"{top.replace('_accuracy', '')} accuracy {100 * r[top]:.2f}%", markup=False)
    t = Table(box=_box(out), show_edge=False, pad_edge=False)
    for col, justify in (("class", "left"), ("precision", "right"), ("recall", "right"), ("F1", "right"),
                         ("support", "right")):
        t.add_column(col, justify=justify)
    pc = r["per_class"]
    for i, name in enumerate(r["class_names"]):
        t.add_row(plain(name), f"{pc['precision'][i]:.3f}", f"{pc['recall'][i]:.3f}", f"{pc['f1'][i]:.3f}",
                  f"{pc['support'][i]:,}")
    t.add_section()
    for label in ("macro", "weighted"):
        avg = r[label]
        t.add_row(f"{label} avg", f"{avg['precision']:.3f}", f"{avg['recall']:.3f}", f"{avg['f1']:.3f}",
                  f"{r['samples']:,}")
    out.print(t)
    c = Table(box=_box(out), show_edge=False, pad_edge=False, title="confusion matrix", title_justify="left")
    c.add_column("true \\ predicted")
    names = r["class_names"]
    for j in range(len(names)):
        c.add_column(str(j), justify="right")
    for i, row in enumerate(r["confusion"]):
        cells = [(f"[bold]{v}[/]" if i == j else (str(v) if v else "·")) for j, v in enumerate(row)]
        c.add_row(plain(f"{i} {names[i]}"), *cells)
    out.print(c)


def show_predictions(results: list[dict], out: Console) -> None:
    for r in results:
        head = r["input"] + (f"  ({'; '.join(r['notes'])})" if r.get("notes") else "")
        if r.get("label") is not None:
            head += f"  true: {r['label']}"
        if r.get("target") is not None:
            head += "  target: " + "  ".join(f"{v:.6g}" for v in r["target"])
        out.print(printable(head), markup=False)
        if "values" in r:  # a regression model
            out.print("  predicted: " + "  ".join(f"{v:.6g}" for v in r["values"]), markup=False)
            continue
        for p in r["top"]:
            bar = "█" * int(round(20 * p["probability"]))
            out.print(f"  {printable(p['class']):<14} {100 * p['probability']:6.2f}%  {bar}", markup=False)
