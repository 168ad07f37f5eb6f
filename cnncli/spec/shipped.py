"""The networks shipped with cnncli, and the one place a spec argument becomes a file.

The specs live in the top-level ``architectures/`` folder of the source tree; pyproject.toml installs
that folder as the package data ``cnncli/architectures``. So an installed cnncli finds them inside the
package, and a source checkout (or an editable install) beside it. `cnn zoo` lists them (zoo.py).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .chain import suggest

SUFFIXES = (".yaml", ".yml")


def directory() -> Path:
    """Where the shipped specs are: inside the installed package, else beside it in a checkout."""
    package = Path(__file__).resolve().parent.parent
    installed = package / "architectures"
    return installed if installed.is_dir() else package.parent / "architectures"


def names() -> list[str]:
    return sorted(p.stem for p in directory().glob("*.yaml"))


def find(argument: str | Path) -> Path | None:
    """The shipped spec called `argument` ('resnet-50' or 'resnet-50.yaml'), or None."""
    text = str(argument)
    if not text or "/" in text or "\\" in text:
        return None
    stem = next((text[: -len(s)] for s in SUFFIXES if text.lower().endswith(s)), text)
    path = directory() / f"{stem}.yaml"
    return path if stem in names() else None


def resolve(argument: str | Path) -> Path:
    """A spec argument as a file: a path that exists wins, else a shipped network's name."""
    path = Path(argument)
    if path.exists():
        return path
    found = find(argument)
    if found is not None:
        return found
    text = str(argument)
    close = suggest(Path(text).stem, names()) if "/" not in text else None
    hint = (f"did you mean '{close}'? " if close else "check the path; ") + "`cnn zoo` lists the shipped networks, " \
        "which you may give by name (e.g. fashion-tutorial)"
    raise UserError(f"no such file: {text}" + ("" if "/" in text else " (and no shipped network of that name)"), hint)
