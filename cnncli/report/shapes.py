"""The `cnn shapes` table: one row per layer in execution order, branches drawn as a tree."""

from __future__ import annotations

from rich.console import Console

from ..errors import printable
from ..layers.base import describe_shape
from ..spec import Identity, Node, Spec
from . import human, human_bytes, plain


def _rf(node: Node) -> str:
    size = str(node.rf[0]) if node.rf[0] == node.rf[1] else f"{node.rf[0]}x{node.rf[1]}"
    jump = str(node.jump[0]) if node.jump[0] == node.jump[1] else f"{node.jump[0]}x{node.jump[1]}"
    return f"{size} /{jump}"


def _rows(items, prefix: str, rows: list) -> None:
    for item in items:
        if isinstance(item, Identity):
            continue
        if isinstance(item, Node):
            rows.append((prefix, item, None))
            continue
        merge = item.node
        what = "sum" if merge.kind.name == "add" else "channel concatenation"
        rows.append((prefix + "┌ ", None, f"{merge.name}: {what} of {len(item.branches)} branches"))
        for i, branch in enumerate(item.branches):
            only_id = all(isinstance(x, Identity) for x in branch)
            label = f"branch {i + 1}" + (": identity" if only_id else "")
            rows.append((prefix + "├ ", None, label))
            _rows(branch, prefix + "│   ", rows)
        rows.append((prefix + "└ ", merge, None))


COLUMNS = (("layer", "left"), ("as written", "left"), ("output", "right"), ("params", "right"),
           ("MACs", "right"), ("RF /jump", "right"))
WRITTEN_MAX = 48  # the "as written" column folds beyond this width
_TREE_CHARS = str.maketrans("", "", "┌├│└")


def _cells(spec: Spec) -> list[tuple[str, tuple[str, ...]]]:
    """(style, the six cells) per table row; style is "dim", "branch" or ""."""
    out = [("dim", ("input", "", describe_shape(spec.input), "", "", "1 /1"))]
    rows: list = []
    _rows(spec.tree, "", rows)
    for prefix, node, label in rows:
        if node is None:
            out.append(("branch", (prefix + label, "", "", "", "", "")))
            continue
        out.append(("", (
            printable(prefix + node.name),
            printable(node.text if not node.kind.is_merge else node.kind.name),
            describe_shape(node.shape),
            f"{node.info.params:,}" if node.info.params else "-",
            human(node.info.macs) if node.info.macs else "-",
            _rf(node),
        )))
    return out


def table(spec: Spec, ascii_only: bool = False):
    from rich import box
    from rich.table import Table
    from rich.text import Text

    t = Table(box=box.ASCII2 if ascii_only else box.SIMPLE_HEAD, pad_edge=False, show_edge=False,
              title=plain(_title(spec)), title_justify="left")
    for name, justify in COLUMNS:
        if name == "as written":
            t.add_column(name, overflow="fold", max_width=WRITTEN_MAX)
        else:
            t.add_column(name, justify=justify, no_wrap=True)
    for style, cells in _cells(spec):
        if style == "branch":
            t.add_row(Text(cells[0], style="cyan"), *cells[1:])
        else:
            t.add_row(*map(plain, cells), style=style or None)  # never read as rich markup
    return t


def layout(spec: Spec, width: int, ascii_only: bool) -> list[tuple[str, str, int]] | None:
    """The table as rich draws it (ASCII borders, or a terminal's header rule), laid out directly:
    a network of a few hundred layers takes milliseconds instead of a third of a second. Each line
    is (text, style, how many leading characters the style covers). None when a cell would need
    wrapping or is not plain ASCII text: rich's own table handles those."""
    rows = _cells(spec)
    header = tuple(name for name, _ in COLUMNS)
    for _, cells in rows:
        for cell in cells:
            if not (cell.translate(_TREE_CHARS).isascii() and cell.isprintable()):
                return None
    widths = [max(len(cells[i]) for cells in [header, *(cells for _, cells in rows)]) for i in range(len(COLUMNS))]
    gap = " | " if ascii_only else "   "
    total = sum(widths) + len(gap) * (len(COLUMNS) - 1)
    title = _title(spec)
    if widths[1] > WRITTEN_MAX or total > width or len(title) > total or not (title.isascii() and title.isprintable()):
        return None

    def line(cells) -> str:
        return gap.join(cell.ljust(w) if justify == "left" else cell.rjust(w)
                        for cell, w, (_, justify) in zip(cells, widths, COLUMNS))

    if ascii_only:
        rule = "+".join("-" * (w + (1 if i in (0, len(widths) - 1) else 2)) for i, w in enumerate(widths))
    else:
        rule = "─" * total
    out = [(title.ljust(total), "italic", total), (line(header), "bold", total), (rule, "", 0)]
    for style, cells in rows:
        text = line(cells)
        if style == "branch":
            out.append((text, "cyan", len(cells[0])))
        else:
            out.append((text, style, total if style else 0))
    return out


def _title(spec: Spec) -> str:
    return printable(f"{spec.name}  ({spec.file})")


def totals(spec: Spec, batch: int) -> list[str]:
    mem = spec.memory(batch)
    opt = (spec.train.optimizer or {"name": "adam"})["name"]
    target = f" (classes: {spec.classes})" if spec.classes else f" (output: {spec.output})" if spec.output else ""
    lines = [
        f"input {describe_shape(spec.input)} -> output {describe_shape(spec.output_shape)}{target}",
        f"parameters: {spec.total_params:,} (trainable {spec.trainable_params:,}, non-trainable "
        f"{spec.total_params - spec.trainable_params:,}), counted as PyTorch does",
    ]
    if spec.buffers:
        lines.append(f"buffers: {spec.buffers:,} (BN running mean/var; Keras lists them as non-trainable parameters)")
    lines += [
        f"MACs: {spec.total_macs:,} per sample ({human(spec.total_macs)}); FLOPs = 2 x MACs = {human(2 * spec.total_macs)}"
        " (conv and fc multiply-adds; bias and element-wise layers not counted)",
        f"activations: {spec.activations_per_sample:,} values = {human_bytes(spec.activations_per_sample * 4)} per sample (float32)",
        f"training step at batch {batch} ({opt}, float32): {human_bytes(mem['total'])} = weights "
        f"{human_bytes(mem['weights'])} + gradients {human_bytes(mem['gradients'])} + optimizer state "
        f"{human_bytes(mem['optimizer_state'])}" + (f" + buffers {human_bytes(mem['buffers'])}" if mem["buffers"] else ""),
        f"  + activations {human_bytes(mem['activations'])} + their gradients {human_bytes(mem['activation_gradients'])}"
        f" + workspace {human_bytes(mem['workspace'])}",
    ]
    return lines


def show(spec: Spec, out: Console, batch: int) -> None:
    lines = layout(spec, out.width, ascii_only=not out.is_terminal)
    if lines is None:
        out.print(table(spec, ascii_only=not out.is_terminal))
    elif not out.is_terminal:
        out.file.write("".join(text + "\n" for text, _, _ in lines))
    else:
        from rich.text import Text

        block = Text()
        for text, style, span in lines:
            block.append(text[:span], style=style or None)
            block.append(text[span:] + "\n")
        out.print(block, end="", soft_wrap=True)
    out.print()
    for line in totals(spec, batch):
        out.print(line, markup=False)
