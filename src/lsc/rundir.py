"""The directory a run holds: proved writable before any work, locked for one process,
cleared of lsc's own files for a fresh start (docs/reliability.md; docs/design.md section 0).

**One run per directory.** :func:`hold_directory` takes an OS-level lock (``filelock``) on
``DIR/.lsc.lock`` for the whole run and records the holder's pid, so a second process
given the same directory is refused with that pid.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

LOCK, OWNER = ".lsc.lock", ".lsc.owner"


class DirectoryBusyError(ValueError):
    """Another process holds the run lock of a directory."""


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
        raise ValueError(
            f"cannot write to {folder} ({reason}); choose another {what} directory or fix its permissions"
        ) from None
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


def refuse_other_run(folder: str | Path, names: Iterable[str], other: str, this: str) -> None:
    """A ValueError when ``folder`` holds any of ``names``, files that only the command
    ``other`` writes: ``this`` command would mix its files with that run's (and its
    ``--force`` would clear only its own), so it uses another directory; nothing is deleted."""
    found = [name for name in names if (Path(folder) / name).exists()]
    if found:
        raise ValueError(
            f"{folder} holds a run of {other} ({', '.join(found)}); {this} does not write into it, not even with "
            "--force: use another --out directory"
        )


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
    if (folder / LOCK).is_symlink():
        raise ValueError(
            f"{folder / LOCK} is a symbolic link; lsc does not write through links it did not make: "
            "remove it (it holds nothing) and run again"
        )
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
