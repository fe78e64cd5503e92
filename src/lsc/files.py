"""The files lsc writes and reads back: never executed, checksummed, atomic
(docs/reliability.md; docs/design.md section 0).

Three guarantees:

* **Nothing in a file runs.** Every ``.pt`` file is read with
  ``torch.load(weights_only=True)``: PyTorch's restricted unpickler admits tensors,
  numbers, strings and containers and refuses anything that would call code.
* **Damage is named.** :func:`write_state` wraps the payload as
  ``{"lsc": FORMAT, "kind": kind, "sha256": digest(payload), "payload": payload}``;
  :func:`read_state` recomputes the SHA-256 of the payload (tensor bytes included), so
  a truncated, empty, random, foreign or bit-rotten file is a :class:`DamagedFileError`
  that names the file and what to do, never a traceback or wrong weights.
* **Nothing is half-written.** Files go to a temporary name in the same directory, are
  flushed to disk and renamed over the old one (:func:`write_atomic`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import math
import os
import pickle
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

FORMAT = 1
"""Version of the wrapper :func:`write_state` puts around every payload."""
AFRESH = "on the command line, lsc train and lsc pretrain start afresh with --force"
"""How to start a run afresh, true wherever a message is raised: the library's functions
(``lsc.train``, ``lsc.pretrain``) have no ``force``, these two commands have ``--force``."""


class WriteError(OSError):
    """A file could not be written; the file it would have replaced is intact."""

    def __str__(self) -> str:
        return str(self.strerror)


class DamagedFileError(ValueError):
    """A file lsc wrote cannot be read back as it was written (or was never lsc's)."""

    def __init__(self, path: str | Path, reason: str, remedy: str = "") -> None:
        self.path = Path(path)
        remedy = remedy or f"delete it and make it again ({AFRESH})"
        super().__init__(f"{self.path} is damaged or not an lsc file: {reason}; {remedy}")


def digest(obj: object) -> str:
    """SHA-256 of a nested payload: a canonical walk over its types, keys, numbers,
    strings and tensors (dtype, shape and raw bytes), so any change of a value changes it."""
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def _feed(h: hashlib._Hash, obj: object) -> None:
    if isinstance(obj, Tensor):
        t = obj.detach().to("cpu").contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, Mapping):
        h.update(f"D{len(obj)}".encode())
        for key, value in obj.items():
            _feed(h, key)
            _feed(h, value)
    elif isinstance(obj, (list, tuple)):
        h.update(f"{'L' if isinstance(obj, list) else 'U'}{len(obj)}".encode())
        for item in obj:
            _feed(h, item)
    elif isinstance(obj, float):
        h.update(b"F" + (repr(obj) if not math.isnan(obj) else "nan").encode())
    elif obj is None or isinstance(obj, (bool, int, str)):
        h.update(f"{type(obj).__name__}:{obj!r}".encode())
    elif isinstance(obj, (torch.dtype, torch.device, torch.Size)):
        h.update(f"{type(obj).__name__}:{obj}".encode())
    else:
        raise TypeError(f"lsc files hold tensors, numbers, strings and containers, not {type(obj).__name__}")


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one,
    never a part: a temporary file in the same directory, fsync, rename."""
    path = Path(path)
    if path.is_dir():
        raise WriteError(errno.EISDIR, f"cannot write {path}: a directory is in its place; move it away and run again")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise WriteError(
            exc.errno, f"cannot write {path} ({exc.strerror or exc}); check the directory exists and is writable"
        ) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, WriteError):
            full = exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
            reason = "the disk is full or a file-size limit was hit" if full else (exc.strerror or str(exc))
            raise WriteError(
                exc.errno,
                f"could not write {path} ({reason}); "
                + ("the previous file there is intact" if path.exists() else "nothing was written there")
                + (": free some space and run again (a run resumes from its last checkpoint)" if full else ""),
            ) from exc
        raise
    _sync_directory(path.parent)


def _sync_directory(folder: Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_state(path: str | Path, kind: str, payload: Mapping[str, object]) -> None:
    """Save ``payload`` (tensors, numbers, strings, containers) atomically as an lsc file of ``kind``."""
    blob = {"lsc": FORMAT, "kind": kind, "sha256": digest(payload), "payload": dict(payload)}
    buffer = io.BytesIO()
    torch.save(blob, buffer)
    write_atomic(path, buffer.getvalue())


def load_untrusted(path: str | Path, map_location: str | torch.device | None = "cpu") -> object:
    """``torch.load`` with ``weights_only=True``: nothing in the file is executed. Any
    failure to read it is a :class:`DamagedFileError` naming the file."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist") from None
    if size == 0:
        raise DamagedFileError(path, "the file is empty")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Unsupported global" in text or "GLOBAL" in text or "REDUCE" in text:
            raise DamagedFileError(
                path,
                "it asks to run code or build objects that lsc never writes (refused; nothing was run)",
                f"delete it and make it again ({AFRESH}); never load files of unknown origin",
            ) from None
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        after = [lines[i + 1] for i, line in enumerate(lines[:-1]) if line.endswith("error:")]  # torch's own reason
        raise DamagedFileError(path, f"unreadable ({(after or lines or [type(exc).__name__])[0][:200]})") from None
    except (
        RuntimeError,
        EOFError,
        OSError,
        ValueError,
        zipfile.BadZipFile,
        KeyError,
        AttributeError,
        TypeError,
        UnicodeDecodeError,
        IndexError,
        MemoryError,
        OverflowError,
    ) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise DamagedFileError(path, f"unreadable ({first})") from None


def read_state(path: str | Path, kind: str, map_location: str | torch.device | None = "cpu") -> dict[str, object]:
    """The payload :func:`write_state` saved at ``path`` as ``kind``, after checking the
    wrapper and the checksum. Raises :class:`DamagedFileError` otherwise."""
    return unwrap(load_untrusted(path, map_location), path, kind)


def unwrap(blob: object, path: str | Path, kind: str) -> dict[str, object]:
    """The payload of a loaded lsc file after checking its wrapper and checksum (see :func:`read_state`)."""
    if not isinstance(blob, dict) or "lsc" not in blob or "payload" not in blob:
        raise DamagedFileError(
            path, f"it is not an lsc {kind} file (no lsc wrapper; written by another program or an older lsc)"
        )
    if blob.get("lsc") != FORMAT:
        raise DamagedFileError(
            path,
            f"unknown lsc file format {blob.get('lsc')!r} (this lsc reads {FORMAT})",
            "use the lsc version that wrote it, or delete it",
        )
    if blob.get("kind") != kind:
        raise DamagedFileError(
            path, f"it is an lsc {blob.get('kind')!r} file, not a {kind!r} file", "pass the right file, or delete it"
        )
    payload = blob["payload"]
    try:  # the wrapper's own keys are not covered: a changed kind or format is caught above
        ok = isinstance(payload, dict) and digest(payload) == blob.get("sha256")
    except TypeError:
        ok = False
    if not ok:
        raise DamagedFileError(path, "its checksum does not match its contents (the file changed after lsc wrote it)")
    return payload


def require(payload: Mapping[str, object], path: str | Path, *keys: str) -> None:
    """A :class:`DamagedFileError` unless ``payload`` has every key."""
    missing = [k for k in keys if k not in payload]
    if missing:
        raise DamagedFileError(path, f"it lacks {', '.join(missing)}")
