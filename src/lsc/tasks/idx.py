"""The idx format of the MNIST files (LeCun et al., http://yann.lecun.com/exdb/mnist/).

Header: two zero bytes, a type byte (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
0x0D float32, 0x0E float64), a byte with the number of dimensions d, then d big-endian
uint32 sizes; then the data, big-endian, in C order. Files may be gzipped. A header that
does not fit the file is an error that says so (never a silently misread array).
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from .paths import DataError

TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _raw(path: Path) -> bytes:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":  # gzip magic, whatever the suffix
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DataError(f"{path} looks gzipped but cannot be decompressed ({exc}); the file is corrupt") from None
    return data


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in the idx file ``path`` (native byte order)."""
    path = Path(path)
    data = _raw(path)
    if len(data) < 4:
        raise DataError(f"{path} is not an idx file: {len(data)} bytes, too short for a header")
    if data[0] != 0 or data[1] != 0 or data[2] not in TYPES:
        raise DataError(
            f"{path} is not an idx file: bad magic number 0x{data[:4].hex()} (expected 0x0000 + a type byte "
            f"{', '.join(hex(t) for t in TYPES)} + the number of dimensions)"
        )
    dtype, ndim = TYPES[data[2]], data[3]
    if ndim == 0:
        raise DataError(f"{path}: the idx header declares 0 dimensions; the file is corrupt")
    end = 4 + 4 * ndim
    if len(data) < end:
        raise DataError(f"{path}: the idx header declares {ndim} dimensions but the file ends inside the header")
    dims = struct.unpack(">" + "I" * ndim, data[4:end])
    want = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) - end != want:
        raise DataError(
            f"{path}: the idx header says shape {tuple(dims)} ({want} bytes of {dtype.name}) but the file holds "
            f"{len(data) - end} bytes after the header; it is truncated or corrupt"
        )
    return np.frombuffer(data, dtype=dtype, offset=end).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as an idx file (gzipped when ``path`` ends in ``.gz``)."""
    array = np.asarray(array)
    codes = {v.str.lstrip("<>|="): k for k, v in TYPES.items()}
    key = array.dtype.newbyteorder(">").str.lstrip("<>|=")
    if key not in codes:
        raise ValueError(
            f"idx cannot store dtype {array.dtype}; use one of uint8, int8, int16, int32, float32, float64"
        )
    big = array.astype(array.dtype.newbyteorder(">"))
    blob = bytes([0, 0, codes[key], array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape) + big.tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(blob) if path.suffix == ".gz" else blob)
