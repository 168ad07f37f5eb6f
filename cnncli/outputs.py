"""Where commands write: checked before any work, so an hour of training never ends unable to save.

A missing directory is fine when it can be created (as `mkdir -p` would, later, by the writer): the
nearest existing ancestor must be a directory we may create files in. Checked by creating (and at once
removing) a temporary file there, which also answers correctly for root and read-only file systems.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import UserError


def check_directory(path: str | Path, option: str) -> Path:
    """`path` is (or can be created as) a directory we can write files into; else a UserError."""
    path = Path(path)
    _check_directory(path, option, path)
    return path


def check_file(path: str | Path, option: str, name_in_directory: str) -> Path:
    """The file to write for `option PATH`: PATH itself, or PATH/name_in_directory when PATH is a
    directory (or ends with a slash: one to create); its directory must be writable (or creatable)."""
    given = str(path)
    path = Path(path)
    if path.is_dir() or given.endswith(("/", os.sep)):
        path = path / name_in_directory
    _check_directory(path.parent, option, path)
    return path


def _check_directory(directory: Path, option: str, given: Path) -> None:
    existing = directory
    try:
        while not existing.exists() and existing.parent != existing:
            existing = existing.parent
        is_dir = existing.is_dir()
    except OSError as exc:
        raise UserError(f"{option} {given}: cannot look at {existing} ({exc.strerror})", None) from None
    if not is_dir:
        what = "is a file" if existing == given else f"cannot be created: {existing} is a file"
        raise UserError(f"{option} {given} {what}, not a directory",
                        "give a directory that exists or can be created")
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".cnncli-probe-"):
            pass
    except OSError as exc:
        where = "" if existing == given else f" (in {existing})"
        raise UserError(f"{option} {given}: cannot write there{where}: {exc.strerror}",
                        "choose a directory you can write to") from None
