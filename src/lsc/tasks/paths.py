"""Where data files are looked for, and the errors readers raise.

Every reader takes a ``path`` option. Without one it looks in ``$LSC_DATA/<folder>``,
then in ``$LSC_DATA`` itself, then in the data set's system folder if it has one (Debian's
``/usr/share/datasets/fashion-mnist``). When nothing is found, :class:`MissingDataError`
names the files and every folder that was searched, so the message says exactly what to
put where. Nothing is ever downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

ENV = "LSC_DATA"


class DataError(ValueError):
    """A data file exists but is not what its format promises (corrupt header, missing
    keys, empty text)."""


class MissingDataError(DataError):
    """The files a task needs are not where it looked."""


def candidates(path: str | Path | None, folder: str, system: Sequence[str | Path] = ()) -> list[Path]:
    """The folders searched, in order: ``path`` alone when given; else
    ``$LSC_DATA/<folder>``, ``$LSC_DATA`` and the ``system`` folders."""
    if path is not None:
        return [Path(path).expanduser()]
    out: list[Path] = []
    root = os.environ.get(ENV)
    if root:
        out += [Path(root).expanduser() / folder, Path(root).expanduser()]
    out += [Path(p) for p in system]
    return out


def find_file(folder: Path, name: str, *, gzip_ok: bool = True) -> Path | None:
    """``folder/name`` or, when ``gzip_ok``, ``folder/name.gz``; ``None`` if neither exists."""
    for candidate in (folder / name, folder / (name + ".gz")) if gzip_ok else (folder / name,):
        if candidate.is_file():
            return candidate
    return None


def locate(
    what: str,
    files: Sequence[str],
    path: str | Path | None,
    folder: str,
    *,
    system: Sequence[str | Path] = (),
    gzip_ok: bool = True,
    hint: str = "",
) -> dict[str, Path]:
    """The folder among :func:`candidates` that holds every one of ``files``; a
    :class:`MissingDataError` that names the files and the searched folders otherwise."""
    searched = candidates(path, folder, system)
    for place in searched:
        found = {name: find_file(place, name, gzip_ok=gzip_ok) for name in files}
        if all(f is not None for f in found.values()):
            return found  # type: ignore[return-value]
    raise MissingDataError(missing_message(what, files, searched, folder, path, gzip_ok, hint))


def missing_message(
    what: str,
    files: Sequence[str],
    searched: Sequence[Path],
    folder: str,
    path: str | Path | None,
    gzip_ok: bool = True,
    hint: str = "",
) -> str:
    names = ", ".join(files) + (" (each may be gzipped, name + .gz)" if gzip_ok else "")
    where = ", ".join(str(p) for p in searched) or f"nowhere (no path given and {ENV} unset)"
    if path is not None:
        put = f"put them in {Path(path).expanduser()}"
    else:
        put = f"put them in $LSC_DATA/{folder} (set {ENV}=/your/data/dir) or pass a path (--data DIR / path=DIR)"
    return f"{what} files not found: need {names}; searched {where}. To use it, {put}.{(' ' + hint) if hint else ''}"


def data_dir_note(folder: str) -> str:
    """A short "where this comes from" string for ``lsc tasks``."""
    root = os.environ.get(ENV)
    return f"${ENV}/{folder}" + (f" (= {Path(root) / folder})" if root else " (LSC_DATA unset)")
