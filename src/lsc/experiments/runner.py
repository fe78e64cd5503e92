"""Running an experiment's runs as independent subprocesses (``--jobs N`` at a time),
each leaving its record under the records directory, skipping runs whose record is
already there (finished, same config: a long preset completes over several sittings and
machines), submitting them as Slurm jobs through ``submitit`` (the optional
extra ``cluster``), and emitting their commands for any other scheduler."""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from shlex import join as quote
from typing import Any

from ..rundir import hold_directory
from .base import FINISHED, RECORDS, Experiment, Run, read_record


def run_dir(out: Path, exp: Experiment, preset: str, run: Run) -> Path:
    return out / exp.name / preset / run.id


def select(exp: Experiment, preset: str, only: Sequence[str] | None = None) -> list[Run]:
    """The runs of ``preset`` whose id matches one of the glob patterns ``only`` (all when None)."""
    runs = exp.runs(preset)
    if only:
        runs = [r for r in runs if any(fnmatch.fnmatchcase(r.id, pat) for pat in only)]
    return runs


def commands(
    exp: Experiment,
    preset: str,
    out: Path,
    python: str = "python",
    only: Sequence[str] | None = None,
    records: Path | None = None,
) -> list[str]:
    """One shell command per run (for a SLURM array or any scheduler), each leaving its
    record under ``records`` (default ``OUT/records``)."""
    root = Path(records) if records is not None else out / RECORDS
    return [
        quote(exp.command(r, run_dir(out, exp, preset, r), python, preset=preset, records=root))
        for r in select(exp, preset, only)
    ]


def pending(exp: Experiment, preset: str, records: Path, only: Sequence[str] | None = None) -> list[Run]:
    """The runs of ``preset`` without a finished record of their config under ``records``."""
    return [r for r in select(exp, preset, only) if read_record(records, exp, preset, r).state not in FINISHED]


def run(
    exp: Experiment,
    preset: str,
    out: Path,
    jobs: int = 1,
    *,
    force: bool = False,
    threads: int = 1,
    only: Sequence[str] | None = None,
    say: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True),
    launcher: str = "local",
    cluster: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    records: Path | None = None,
) -> dict[str, int]:
    """Run every run of ``preset`` without a finished record under ``records`` (default
    ``OUT/records``; all with ``force``; only ids matching ``only``), ``jobs`` processes at a
    time, each in its directory under ``out``; return counts by state (and ``skipped``).

    ``launcher="submitit"`` submits each run as its own job through ``submitit``'s
    ``AutoExecutor`` (Slurm where there is one; ``cluster="local"`` runs the jobs as local
    processes, as the tests do) with ``parameters`` (e.g. ``slurm_partition``,
    ``timeout_min``, ``gpus_per_node``), and waits for them; ``jobs`` does not apply."""
    if launcher not in LAUNCHERS:
        raise ValueError(f"unknown launcher {launcher!r}; choose one of {', '.join(LAUNCHERS)}")
    if launcher == "submitit":
        try:
            import submitit  # noqa: F401
        except ImportError:
            raise ValueError("--launcher submitit needs the submitit package: pip install 'lsc[cluster]'") from None
    # one runner per experiment and preset: a second process on the same directory is refused
    root = Path(records) if records is not None else out / RECORDS
    with hold_directory(out / exp.name / preset):
        return _run_held(
            exp,
            preset,
            out,
            root,
            jobs=jobs,
            force=force,
            threads=threads,
            only=only,
            say=say,
            launch=_submitted(cluster, dict(parameters or {}), threads) if launcher == "submitit" else None,
        )


LAUNCHERS = ("local", "submitit")


def _submitted(cluster: str | None, parameters: dict[str, Any], threads: int):
    """A runner of one run's command as a submitit job: submit, wait, give its exit."""
    import submitit

    def launch(command: list[str], d: Path, env: dict[str, str]) -> None:
        executor = submitit.AutoExecutor(folder=d / "submitit", cluster=cluster)
        executor.update_parameters(**{"name": d.name, "cpus_per_task": threads, **parameters})
        job = executor.submit(submitit.helpers.CommandFunction(command, verbose=False, env=env))
        try:
            job.result()
        except Exception as exc:  # noqa: BLE001 - the run's own files say what happened; a lost job is "failed"
            (d / "stderr.log").write_text(f"submitit job {job.job_id}: {exc}\n")

    return launch


def _run_held(
    exp: Experiment,
    preset: str,
    out: Path,
    root: Path,
    *,
    jobs: int,
    force: bool,
    threads: int,
    only: Sequence[str] | None,
    say,
    launch=None,
) -> dict[str, int]:
    all_runs = select(exp, preset, only)
    todo = all_runs if force else pending(exp, preset, root, only)
    skipped = len(all_runs) - len(todo)
    if skipped:
        say(f"{exp.name}/{preset}: {skipped} of {len(all_runs)} runs already finished, skipped")
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    src = str(Path(__file__).resolve().parents[2])  # so the worker imports this lsc, installed or not
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    counts = {"ok": 0, "diverged": 0, "failed": 0, "skipped": skipped}
    done = 0
    start = time.perf_counter()

    def one(r: Run) -> str:
        d = run_dir(out, exp, preset, r)
        if not force and read_record(root, exp, preset, r).state in FINISHED:
            return "skipped"  # finished meanwhile
        if force and d.exists():
            shutil.rmtree(d)  # a run again from scratch: a kept checkpoint would just be resumed
        d.mkdir(parents=True, exist_ok=True)
        command = exp.command(r, d, sys.executable, preset=preset, records=root)
        if launch is not None:
            launch(command, d, env)
        else:
            with (d / "stdout.log").open("w") as so, (d / "stderr.log").open("w") as se:
                subprocess.run(command, stdout=so, stderr=se, env=env, check=False)
        state = read_record(root, exp, preset, r).state
        return state if state in FINISHED else "failed"  # no record: the worker died before writing one

    # submitted runs wait on their jobs: as many waiting threads as runs, the scheduler decides
    with ThreadPoolExecutor(max_workers=max(1, len(todo) if launch is not None else jobs)) as pool:
        for r, state in zip(todo, pool.map(one, todo)):
            state = state if state in counts else "failed"
            counts[state] += 1
            if state == "skipped":
                continue
            done += 1
            say(f"[{done}/{len(todo)}] {exp.name}/{preset}/{r.id}: {state} ({time.perf_counter() - start:.0f} s)")
    return counts
