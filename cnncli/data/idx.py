"""IDX files (MNIST, Fashion-MNIST, KMNIST, EMNIST), gzip-compressed or plain."""

from __future__ import annotations

import gzip
import zlib
from math import prod
from pathlib import Path

import numpy as np

from .. import memory
from ..errors import UserError
from ..files import open_maybe_gzip, read_exactly

_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file's array. The header is read first: its sizes are checked against the file (or,
    for gzip, against what the stream gives, never reading past them) and the available memory."""
    path = Path(path)
    try:
        with open_maybe_gzip(path, "IDX file") as f:
            compressed = isinstance(f, gzip.GzipFile)
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _TYPES:
                found = head.hex() if head else "an empty file"
                raise UserError(f"{path} is not an IDX file: expected magic number 0x0000TTDD, found {found}",
                                "IDX files start with two zero bytes, a type code and the number of dimensions "
                                "(MNIST images: 00000803, labels: 00000801)")
            dtype, ndim = np.dtype(_TYPES[head[2]]), head[3]
            if not 1 <= ndim <= 4:
                raise UserError(f"{path}: damaged IDX header: it claims {ndim} dimensions (images have 3, labels 1)",
                                "download or copy the file again")
            dims = f.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise UserError(f"{path} is truncated: its header needs {4 + 4 * ndim} bytes, the file has "
                                f"{4 + len(dims)}", "download or copy the file again")
            shape = tuple(int.from_bytes(dims[4 * i : 4 * i + 4], "big") for i in range(ndim))
            nbytes = prod(shape) * dtype.itemsize
            claim = f"its header claims {'x'.join(map(str, shape))} values ({nbytes:,} bytes)"
            if not compressed:
                held = path.stat().st_size - 4 - 4 * ndim
                if held != nbytes:  # a claim far beyond the file is a damaged header, not a short file
                    what = "too long" if held > nbytes else "truncated" if nbytes <= 2 * held else "damaged"
                    raise UserError(f"{path} is {what}: {claim}, the file holds {held:,} bytes after the header",
                                    "download or copy the file again")
            memory.require(nbytes, f"{path} ({claim})", "the file is damaged, or too big for this machine")
            raw, filled = read_exactly(f, nbytes)
            if filled < nbytes:
                raise UserError(f"{path} is truncated: {claim}, the {'decompressed ' if compressed else ''}"
                                f"data ends after {filled:,}", "download or copy the file again")
            if f.read(1):
                raise UserError(f"{path} is too long: {claim}, the decompressed data goes on beyond them",
                                "download or copy the file again")
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(f"{path} is a damaged gzip file ({exc})", "download or copy the file again") from None
    return raw.view(dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def write_idx(array: np.ndarray) -> bytes:
    code = _CODES[array.dtype]
    head = bytes([0, 0, code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return head + np.ascontiguousarray(array).tobytes()
