"""IDX files (MNIST, Fashion-MNIST, KMNIST, EMNIST), gzip-compressed or plain."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ..errors import UserError

_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"no such file: {path}", None) from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}", None) from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise UserError(f"{path} is a damaged gzip file ({exc})", "download or copy the file again") from None
    return raw


def read_idx(path: str | Path) -> np.ndarray:
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _TYPES:
        found = data[:4].hex() if data else "an empty file"
        raise UserError(f"{path} is not an IDX file: expected magic number 0x0000TTDD, found {found}",
                        "IDX files start with two zero bytes, a type code and the number of dimensions "
                        "(MNIST images: 00000803, labels: 00000801)")
    dtype = np.dtype(_TYPES[data[2]])
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise UserError(f"{path} is truncated: its header needs {header} bytes, the file has {len(data)}", None)
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise UserError(
            f"{path} is {'truncated' if len(data) < expected else 'too long'}: the header promises "
            f"{'x'.join(map(str, shape))} values ({expected:,} bytes), the file has {len(data):,} bytes",
            "download or copy the file again",
        )
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(array: np.ndarray) -> bytes:
    code = _CODES[array.dtype]
    head = bytes([0, 0, code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return head + np.ascontiguousarray(array).tobytes()
