"""A small reader for the IDX format used by MNIST and Fashion-MNIST (raw or gzip-compressed).

Layout: two zero bytes, a type code, the number of dimensions, one big-endian uint32 per dimension,
then the values in big-endian C order. Anything else is reported as a corrupt file, naming it.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from harness.errors import DataNotFoundError

_TYPE_CODES = ((0x08, ">u1"), (0x09, ">i1"), (0x0B, ">i2"), (0x0C, ">i4"), (0x0D, ">f4"), (0x0E, ">f8"))


def _corrupt(path: Path, reason: str) -> DataNotFoundError:
    return DataNotFoundError(
        f"{path} is not a valid IDX file ({reason}); replace it with an intact copy, "
        "or delete it and set data.download=true"
    )


def parse_idx(raw: bytes, path: Path) -> np.ndarray:
    """Decode IDX bytes into an array; `path` only names the file in error messages."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise _corrupt(path, "bad magic number")
    dtype = dict(_TYPE_CODES).get(raw[2])
    if dtype is None:
        raise _corrupt(path, f"unknown type code 0x{raw[2]:02x}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise _corrupt(path, "truncated header")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape)) * np.dtype(dtype).itemsize
    if len(raw) != expected:
        raise _corrupt(path, f"{len(raw)} bytes where dimensions {shape} need {expected}")
    values = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return values.astype(values.dtype.newbyteorder("="), copy=False)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file; a name ending in .gz is decompressed first."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise _corrupt(path, f"unreadable: {exc}") from exc
    return parse_idx(raw, path)
