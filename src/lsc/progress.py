"""Progress bars: tqdm when asked for (or on a terminal) and installed, else nothing."""

from __future__ import annotations

import sys


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
