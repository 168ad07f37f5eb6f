"""Input paths: only regular files (and directories where a folder is meant) are read.

A FIFO would block forever, /dev/zero never ends, a socket cannot be read: such paths are refused
before they are opened.
"""

from __future__ import annotations

import stat
from pathlib import Path

from .errors import UserError


def check_regular(path: Path, what: str, directory: bool = False) -> None:
    """Refuse (UserError) unless `path` is a regular file (or, with `directory`, a directory)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise UserError(f"no such file: {path}", None) from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}", None) from None
    if stat.S_ISREG(mode) or (directory and stat.S_ISDIR(mode)):
        return
    kind = ("a directory" if stat.S_ISDIR(mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "not a regular file")
    raise UserError(f"{path} is {kind}, not a {what}",
                    "give a regular file" + (" or a directory" if directory else ""))


def open_maybe_gzip(path: Path, what: str):
    """A binary stream of the file's bytes, decompressed when it is gzip (by its magic number)."""
    import gzip

    check_regular(path, what)
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}", None) from None
    if f.read(2) == b"\x1f\x8b":
        f.seek(0)
        return gzip.GzipFile(fileobj=f, mode="rb")
    f.seek(0)
    return f


def read_exactly(f, nbytes: int):
    """Up to `nbytes` from stream `f`, in 4 MiB pieces straight into one uint8 array (never more, and
    never a second copy); returns the array and how many bytes arrived."""
    import numpy as np

    raw = np.empty(nbytes, np.uint8)
    view, filled = memoryview(raw), 0
    while filled < nbytes:
        got = f.readinto(view[filled : filled + (1 << 22)])
        if not got:
            break
        filled += got
    return raw, filled


def read_bounded(path: Path, what: str, expansion: float = 1.0) -> bytes:
    """The whole (decompressed) file, refused before it outgrows the memory: `expansion` is how many
    bytes of memory each byte of it takes once parsed. Decompression stops at that bound."""
    import gzip
    import zlib

    from . import memory

    free = memory.available()
    limit = None if free is None else int(free / (1 + expansion))
    with open_maybe_gzip(path, what) as f:
        if limit is not None and not isinstance(f, gzip.GzipFile):
            memory.require(int(path.stat().st_size * (1 + expansion)), f"reading {path}")
        try:
            data = f.read(-1 if limit is None else limit + 1)
        except (OSError, EOFError, zlib.error) as exc:
            raise UserError(f"{path}: damaged gzip file ({exc})", "copy or download the file again") from None
    if limit is not None and len(data) > limit:
        memory.require(int(len(data) * (1 + expansion)), f"reading {path} (more than {len(data):,} bytes once "
                       "decompressed)")
    return data


def image_error(path: Path, exc: Exception) -> UserError:
    """The message for an image file Pillow refused: damaged, or a decompression bomb."""
    from PIL import Image

    if isinstance(exc, Image.DecompressionBombError):
        return UserError(f"{path}: refused: {exc}".rstrip("."),
                         "Pillow's limit on image size protects the memory; cnncli trains on small images")
    return UserError(f"{path}: not a readable image ({exc})", "give PNG or JPEG files")
