"""Run I/O shared by training and pre-training: the files lsc writes and reads back,
the directory a run holds, optimisers by name, progress bars and interrupt deferral.

Four guarantees about files (docs/reliability.md):

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
* **One run per directory.** :func:`hold_directory` takes an OS-level lock (``filelock``) on
  ``DIR/.lsc.lock`` for the whole run and records the holder's pid, so a second process
  given the same directory is refused with that pid.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import pickle
import shutil
import signal
import sys
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from .checks import unknown_name

FORMAT = 1
"""Version of the wrapper :func:`write_state` puts around every payload."""
LOCK, OWNER = ".lsc.lock", ".lsc.owner"


class DamagedFileError(ValueError):
    """A file lsc wrote cannot be read back as it was written (or was never lsc's)."""

    def __init__(self, path: str | Path, reason: str, remedy: str = "") -> None:
        self.path = Path(path)
        remedy = remedy or "delete it (or run again with --force to start afresh)"
        super().__init__(f"{self.path} is damaged or not an lsc file: {reason}; {remedy}")


class DirectoryBusyError(ValueError):
    """Another process holds the run lock of a directory."""


def digest(obj: object) -> str:
    """SHA-256 of a nested payload: a canonical walk over its types, keys, numbers,
    strings and tensors (dtype, shape and raw bytes), so any change of a value changes it."""
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def _feed(h: "hashlib._Hash", obj: object) -> None:
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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
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
            raise DamagedFileError(path, "it asks to run code or build objects that lsc never writes (refused; nothing was run)",
                                   "delete it (or run again with --force to start afresh); never load files of unknown origin") from None
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        after = [lines[i + 1] for i, line in enumerate(lines[:-1]) if line.endswith("error:")]  # torch's own reason
        raise DamagedFileError(path, f"unreadable ({(after or lines or [type(exc).__name__])[0][:200]})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError, AttributeError, TypeError,
            UnicodeDecodeError, IndexError, MemoryError, OverflowError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise DamagedFileError(path, f"unreadable ({first})") from None


def read_state(path: str | Path, kind: str, map_location: str | torch.device | None = "cpu") -> dict[str, object]:
    """The payload :func:`write_state` saved at ``path`` as ``kind``, after checking the
    wrapper and the checksum. Raises :class:`DamagedFileError` otherwise."""
    return unwrap(load_untrusted(path, map_location), path, kind)


def unwrap(blob: object, path: str | Path, kind: str) -> dict[str, object]:
    """The payload of a loaded lsc file after checking its wrapper and checksum (see :func:`read_state`)."""
    if not isinstance(blob, dict) or "lsc" not in blob or "payload" not in blob:
        raise DamagedFileError(path, f"it is not an lsc {kind} file (no lsc wrapper; written by another program "
                                     "or an older lsc)")
    if blob.get("lsc") != FORMAT:
        raise DamagedFileError(path, f"unknown lsc file format {blob.get('lsc')!r} (this lsc reads {FORMAT})",
                               "use the lsc version that wrote it, or delete it")
    if blob.get("kind") != kind:
        raise DamagedFileError(path, f"it is an lsc {blob.get('kind')!r} file, not a {kind!r} file",
                               "pass the right file, or delete it")
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


def prepare_directory(folder: str | Path, what: str = "--out") -> Path:
    """Create ``folder`` and prove it writable before any work is done, so nothing is
    computed that cannot be saved."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".lsc-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ValueError(f"cannot write to {folder} ({reason}); choose another {what} directory or fix its permissions") from None
    return folder


def remove_run_files(folder: str | Path, names: Iterable[str]) -> list[Path]:
    """Delete the files (and folders) of ``names`` that lsc wrote in ``folder``, for a
    fresh start (``--force``); nothing else in the directory is touched."""
    removed = []
    for name in names:
        path = Path(folder) / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        removed.append(path)
    return removed


@contextlib.contextmanager
def hold_directory(folder: str | Path | None, what: str = "--out") -> Iterator[Path | None]:
    """Hold ``folder`` for this process for the duration of the block (re-entrant
    within a process; ``None``: nothing to hold). A second process is refused at once,
    with the holder's pid. The directory is created and proved writable first."""
    from filelock import FileLock, Timeout

    if folder is None:
        yield None
        return
    folder = prepare_directory(folder, what)
    lock = FileLock(str(folder / LOCK), timeout=0, is_singleton=True)
    try:
        lock.acquire()
    except Timeout:
        holder = _holder(folder)
        raise DirectoryBusyError(
            f"{folder} is in use by another lsc process{holder}; wait for it to finish or use another {what} directory"
        ) from None
    outer = lock.lock_counter == 1
    try:
        if outer:
            with contextlib.suppress(OSError):
                (folder / OWNER).write_text(f"{os.getpid()}\n")
        yield folder
    finally:
        if outer:
            with contextlib.suppress(OSError):
                (folder / OWNER).unlink()
        lock.release()


def _holder(folder: Path) -> str:
    try:
        pid = int((folder / OWNER).read_text().strip())
    except (OSError, ValueError):
        return ""
    return f" (pid {pid})"


def _pytorch_optimizer():  # type: ignore[no-untyped-def]
    try:
        import pytorch_optimizer
    except ImportError:
        raise ValueError("the AdaBelief optimisers come from the pytorch-optimizer package: "
                         "pip install 'lsc[optimizers]' (or pytorch-optimizer)") from None
    return pytorch_optimizer


def adabelief(params: Iterable[nn.Parameter], lr: float, **options: object) -> torch.optim.Optimizer:
    """AdaBelief (Zhuang et al. 2020) from ``pytorch-optimizer``, with the reference code's
    TF-Addons settings: betas (0.9, 0.999), eps 1e-14, rectified (SMA threshold 5),
    decoupled weight decay (docs/design.md A2.3, A4.5)."""
    settings = {"betas": (0.9, 0.999), "eps": 1e-14, "rectify": True, "n_sma_threshold": 5,
                "weight_decouple": True, **options}
    return _pytorch_optimizer().AdaBelief(params, lr=lr, **settings)


def adabelief_lookahead(params: Iterable[nn.Parameter], lr: float, *, k: int = 6, alpha: float = 0.5,
                        **options: object) -> torch.optim.Optimizer:
    """:func:`adabelief` inside Lookahead (Zhang et al. 2019; sync period 6, slow step 0.5),
    the reference code's optimiser, both from ``pytorch-optimizer``."""
    return _pytorch_optimizer().Lookahead(adabelief(params, lr, **options), k=k, alpha=alpha)


class NoStep(torch.optim.Optimizer):
    """No gradient step at all: pre-training by the reference's weight heuristics alone
    (``rescale``, ``shuffle``), its method for LRU stacks (docs/design.md section 13)."""

    def __init__(self, params: Iterable[nn.Parameter], lr: float = 0.0) -> None:
        super().__init__(params, {"lr": lr})

    def step(self, closure: Callable[[], float] | None = None) -> None:  # type: ignore[override]
        return None


OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "none": NoStep,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
    "adabelief": adabelief,
    "adabelief-lookahead": adabelief_lookahead,
}
"""Optimisers by name, for training and pre-training alike (the AdaBelief ones need the
``optimizers`` extra)."""


def make_optimizer(
    spec: str | Callable[..., torch.optim.Optimizer], params: Iterable[nn.Parameter], lr: float, **options: object
) -> torch.optim.Optimizer:
    """``OPTIMIZERS[spec](params, lr=lr, **options)``, or ``spec(params, lr=lr, **options)`` for a callable."""
    if isinstance(spec, str):
        if spec not in OPTIMIZERS:
            raise unknown_name("optimizer", spec, OPTIMIZERS)
        return OPTIMIZERS[spec](params, lr=lr, **options)
    if not callable(spec):
        raise ValueError(f"optimizer must be a name ({', '.join(OPTIMIZERS)}) or a callable (params, lr=...) -> Optimizer, "
                         f"got {spec!r}")
    return spec(params, lr=lr, **options)


def progress_bar(enabled: bool | None, total: int, desc: str, unit: str, leave: bool = False) -> object | None:
    """A tqdm bar, or ``None``: when ``enabled`` is False, or is ``None`` and standard
    error is no terminal, or the ``progress`` extra (tqdm) is not installed."""
    if enabled is False or (enabled is None and not sys.stderr.isatty()):
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the progress extra is not installed: stay quiet
        return None
    return tqdm(total=total, desc=desc, unit=unit, leave=leave, dynamic_ncols=True)


class interrupts_deferred:
    """Hold a Ctrl-C until the block is done (main thread only), then raise it: an update and
    its bookkeeping happen together or not at all."""

    def __enter__(self) -> "interrupts_deferred":
        self.hit, self.previous = False, None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._note)
        return self

    def _note(self, *_: object) -> None:
        self.hit = True

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        if self.hit:
            raise KeyboardInterrupt
