"""Terminal output: rich in a terminal, plain lines when piped, no colour under NO_COLOR."""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.text import Text

from ..errors import printable


def console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    is_tty = stream.isatty()
    # Piped output must not wrap tables at 80 columns: a CI log or a file has no width.
    width = None if is_tty or os.environ.get("COLUMNS") else 200
    return Console(file=stream, width=width, highlight=False, soft_wrap=not is_tty and stderr,
                   no_color=bool(os.environ.get("NO_COLOR")) or None)


def wants_colour(out: Console) -> bool:
    """Colour only for a terminal that has it and a user who did not ask for none (NO_COLOR)."""
    return out.is_terminal and out.color_system is not None and not out.no_color


def plain(text: object, limit: int | None = None) -> Text:
    """Input shown in a table or title: escaped (errors.printable) and never read as rich markup."""
    return Text(printable(text, limit))


def human(n: float, unit: str = "") -> str:
    """1234567 -> '1.23 M'."""
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= factor:
            return f"{n / factor:.3g} {suffix}{unit}"
    return f"{n:g} {unit}".rstrip()


def human_bytes(n: float) -> str:
    for factor, suffix in ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= factor:
            return f"{n / factor:.3g} {suffix}"
    return f"{int(n)} B"
