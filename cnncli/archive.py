""".npz archives (data sets and checkpoints) read safely: every header first, then the arrays.

An .npz is a zip of .npy files. Before anything is decompressed, the zip's directory and each
array's .npy header (shape and dtype, a few hundred bytes) are read and checked: numbers only (no
pickled objects, no text), sizes that agree with what the zip declares, and a total that fits in
memory. A 13 MB file that would expand to 3 GB is thus refused from its headers, and a damaged file
(truncated, bit-flipped, with a broken directory) ends in one message instead of a zipfile error.
Decompression never goes past the size the zip declares.
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from math import prod
from pathlib import Path

import numpy as np

from . import memory
from .errors import UserError
from .files import check_regular, read_exactly

# what goes wrong inside zipfile and numpy's .npy reader on a damaged file
DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, RuntimeError, NotImplementedError,
          OverflowError, KeyError)
NUMBERS = "biuf"  # bool, signed and unsigned integers, floats


@dataclass(frozen=True)
class Entry:
    """One array as its headers describe it."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    nbytes: int
    info: zipfile.ZipInfo


class Archive:
    """An open .npz whose headers have been checked. Use as a context manager."""

    def __init__(self, path: Path, zf: zipfile.ZipFile, entries: dict[str, Entry], what: str):
        self.path, self._zip, self.entries, self.what = path, zf, entries, what

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc) -> None:
        self._zip.close()

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self.entries.values())

    def read(self, name: str) -> np.ndarray:
        """The array `name`, decompressed in chunks straight into its final buffer."""
        entry = self.entries[name]
        try:
            with self._zip.open(entry.info) as f:
                _read_header(f)
                raw, filled = read_exactly(f, entry.nbytes)
        except DAMAGE as exc:
            raise damaged(self.path, self.what, f"array '{name}' cannot be read ({_reason(exc)})") from None
        if filled != entry.nbytes:
            raise damaged(self.path, self.what, f"array '{name}' is cut short ({filled:,} of {entry.nbytes:,} bytes)")
        return raw.view(entry.dtype).reshape(entry.shape, order="F" if entry.fortran else "C")


def damaged(path: Path, what: str, detail: str) -> UserError:
    return UserError(f"{path}: damaged {what}: {detail}", "the file is truncated or corrupted; copy or create it again")


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 120 else text[:117] + "..."


def _read_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) from a .npy header; ValueError if it is none."""
    version = np.lib.format.read_magic(f)
    if version not in ((1, 0), (2, 0), (3, 0)):
        raise ValueError(f"unknown .npy format version {version}")
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return reader(f, max_header_size=10_000)


def open_npz(path: str | Path, what: str, not_zip_hint: str | None = None) -> Archive:
    """Open an .npz and check every array's header: numbers only, consistent sizes, fits in memory.

    `what` names the kind of file in messages ("data file", "checkpoint")."""
    path = Path(path)
    check_regular(path, what)
    with open(path, "rb") as f:
        start = f.read(4)
    if start[:2] != b"PK":
        raise UserError(f"{path} is not {_a(what)}: an .npz is a zip archive, and this file is not one",
                        not_zip_hint)
    try:
        zf = zipfile.ZipFile(path)
    except DAMAGE:
        raise damaged(path, what, "its zip directory is missing or damaged (is the file cut short?)") from None
    try:
        entries = {}
        for info in zf.infolist():
            if not info.filename.endswith(".npy") or info.is_dir():
                continue
            entries[info.filename[:-4]] = _entry(path, zf, info, what)
        need = sum(e.nbytes for e in entries.values())
        memory.require(need, f"{path}: its arrays", "the file is damaged or too big for this machine")
    except BaseException:
        zf.close()
        raise
    return Archive(path, zf, entries, what)


def _entry(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, what: str) -> Entry:
    name = info.filename[:-4]
    try:
        with zf.open(info) as f:
            shape, fortran, dtype = _read_header(f)
            offset = f.tell()
    except DAMAGE as exc:
        raise damaged(path, what, f"the header of array '{name}' cannot be read ({_reason(exc)})") from None
    if dtype.hasobject:
        raise UserError(f"{path}: array '{name}' holds Python objects, which cnncli never loads (they would be "
                        "unpickled, which can run code)", "save plain numeric arrays")
    if dtype.kind not in NUMBERS or dtype.subdtype is not None or dtype.names:
        raise UserError(f"{path}: array '{name}' has dtype {dtype.str} ({_kind(dtype)}), not numbers",
                        "save numeric arrays (e.g. uint8 images, int64 labels)")
    nbytes = prod(shape) * dtype.itemsize
    if info.file_size != offset + nbytes:
        dims = "x".join(map(str, shape)) or "a single value"
        raise damaged(path, what, f"array '{name}' claims {dims} values of {dtype.str} ({nbytes:,} bytes), but the "
                      f"archive says it holds {max(info.file_size - offset, 0):,} bytes")
    return Entry(name, tuple(shape), dtype, fortran, nbytes, info)


def _a(what: str) -> str:
    return ("an " if what[0] in "aeiou." else "a ") + what


def _kind(dtype: np.dtype) -> str:
    return {"U": "text", "S": "bytes", "c": "complex numbers", "M": "dates", "m": "time spans",
            "V": "raw records"}.get(dtype.kind, dtype.kind)
