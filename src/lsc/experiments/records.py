"""Run records: the evidence a report is rebuilt from (docs/design.md section 18).

Every finished run of a preset writes one compact JSON record,
``RECORDS/<experiment>/<preset>/<run id>.json``, holding what a reader needs to recompute
any table without the run's directory (no weights):

* ``config`` (the run's settings, seed included), ``state``, ``seconds``, ``error`` (its
  last line), ``started`` / ``finished`` (UTC, ISO 8601);
* ``code``: the lsc version and the git commit of the source the run imported, with a
  ``dirty`` flag (tracked files changed since that commit), or ``None`` outside a checkout;
* ``result``: the final metrics (for training runs: best-validation and test metric, the
  dense-checked init radii and flag, the pre-training summary);
* ``rows``: the per-epoch / per-point rows the run logged (its curves).

One file per run, so runs made on several machines and sittings merge without conflicts,
and ``lsc experiment run`` skips a run whose record is already there with the same config.
A damaged record is named in a warning and the run counts as not run yet.
"""

from __future__ import annotations

import datetime
import json
import math
import subprocess
import warnings
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..files import write_atomic

FORMAT = 1
"""Version of the record layout."""


def record_path(root: Path, experiment: str, preset: str, run_id: str) -> Path:
    """Where the record of one run lives under ``root``."""
    return Path(root) / experiment / preset / f"{run_id}.json"


@lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """The lsc version and the git commit (with a dirty flag) of the source this process
    imported; ``commit`` is ``None`` when that source is not a git checkout."""
    from .. import __version__

    src = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(src), *args], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".") if commit else None
    return {"version": __version__, "commit": commit, "dirty": bool(status) if commit else None}


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def clean(obj: object) -> object:
    """NaN/inf -> None so a record is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    return obj


def make_record(
    *,
    experiment: str,
    preset: str,
    run_id: str,
    config: Mapping[str, Any],
    state: str,
    seconds: float,
    error: str | None,
    result: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    started: str,
    finished: str,
) -> dict[str, Any]:
    """One run's record (module docstring)."""
    last: list[str | None] = [*(error or "").strip().splitlines()[-1:]] or [None]
    return {
        "format": FORMAT,
        "experiment": experiment,
        "preset": preset,
        "run_id": run_id,
        "config": json.loads(json.dumps(dict(config))),
        "state": state,
        "seconds": round(seconds, 3),
        "error": last[0],
        "started": started,
        "finished": finished,
        "code": code_version(),
        "result": clean(dict(result)),
        "rows": clean([dict(r) for r in rows]),
    }


def write_record(root: Path, record: Mapping[str, Any]) -> Path:
    """Write ``record`` atomically to its place under ``root``; return the path."""
    path = record_path(root, record["experiment"], record["preset"], record["run_id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n")
    return path


def read_record_file(path: Path) -> dict[str, Any] | None:
    """The record at ``path``; ``None`` (and a warning naming the file) when it is missing
    or damaged: that run is then not run yet, and ``lsc experiment run`` makes it again."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict) or record.get("format") != FORMAT or "config" not in record:
            raise ValueError("not an lsc run record")
    except (OSError, ValueError) as exc:
        warnings.warn(
            f"{path} is damaged ({exc}); its run counts as not run yet: delete the file or run the "
            "preset again (lsc experiment run) to rewrite it",
            stacklevel=2,
        )
        return None
    return record
