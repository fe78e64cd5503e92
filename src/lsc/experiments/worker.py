"""``python -m lsc.experiments.worker EXPERIMENT --run-id ID --out DIR [--preset P --records ROOT]
--config JSON``: run one experiment run in this process, write DIR/config.json,
metrics.jsonl, result.json and status.json (each atomically; see
:mod:`lsc.experiments.base`) and, with ``--preset`` and ``--records``, the run's record
under ROOT (:mod:`lsc.experiments.records`). Exit status 0 for an ``ok`` or ``diverged``
run, 1 for a failed one."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import traceback
from pathlib import Path
from shlex import join as quote

from ..files import write_atomic
from .base import CONFIG, METRICS, RESULT, STATUS, Logger, Run, dumps
from .records import clean, make_record, utc_now, write_record
from .registry import get


def _clear_other_run(out: Path, config: dict) -> None:
    """Empty ``out`` when it holds a run made with another config (a stale run): its files,
    e.g. an ``lsc train`` checkpoint, would otherwise be resumed or refused as another run."""
    if not (out / CONFIG).exists():
        return
    try:
        stored = json.loads((out / CONFIG).read_text()).get("config")
    except ValueError:
        stored = None
    if stored != json.loads(json.dumps(config)):
        for path in out.iterdir():  # the runner's open stdout/stderr logs of this attempt stay
            if path.name not in ("stdout.log", "stderr.log"):
                shutil.rmtree(path) if path.is_dir() else path.unlink()


def run_one(
    experiment: str, run_id: str, config: dict, out: Path, *, preset: str | None = None, records: Path | None = None
) -> str:
    """Execute one run, write its files (and its record under ``records`` when ``preset``
    and ``records`` are given); return its state (ok | diverged | failed)."""
    import torch

    torch.set_num_threads(1)
    exp = get(experiment)
    _clear_other_run(out, config)
    out.mkdir(parents=True, exist_ok=True)
    (out / STATUS).unlink(missing_ok=True)
    command = quote(exp.command(Run(run_id, config), out, "python", preset=preset, records=records))
    write_atomic(
        out / CONFIG, dumps({"experiment": experiment, "run_id": run_id, "config": config, "command": command})
    )
    log = Logger(out / METRICS)
    started, start = utc_now(), time.perf_counter()
    error, result = None, {}
    try:
        result = exp.execute(dict(config), out, log)
        state = "diverged" if result.get("diverged") else "ok"
        write_atomic(out / RESULT, dumps(clean(result)))
    except (Exception, SystemExit):  # noqa: BLE001 - a failed run is recorded, not raised (argparse exits)
        state, error = "failed", traceback.format_exc()
        print(error, file=sys.stderr)
    seconds = time.perf_counter() - start
    write_atomic(out / STATUS, dumps({"state": state, "seconds": seconds, "error": error}))
    if preset is not None and records is not None:
        rows = [json.loads(line) for line in (out / METRICS).read_text().splitlines() if line.strip()]
        write_record(
            records,
            make_record(
                experiment=experiment,
                preset=preset,
                run_id=run_id,
                config=config,
                state=state,
                seconds=seconds,
                error=error,
                result=result,
                rows=rows,
                started=started,
                finished=utc_now(),
            ),
        )
    return state


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lsc.experiments.worker", description=__doc__)
    p.add_argument("experiment")
    p.add_argument("--run-id", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--preset", default=None, help="the preset the run belongs to (names its record)")
    p.add_argument(
        "--records",
        default=None,
        help="records directory: the run's record goes to RECORDS/EXPERIMENT/PRESET/RUN_ID.json",
    )
    p.add_argument("--config", required=True, help="the run's configuration as JSON")
    a = p.parse_args(argv)
    state = run_one(
        a.experiment,
        a.run_id,
        json.loads(a.config),
        Path(a.out),
        preset=a.preset,
        records=Path(a.records) if a.records else None,
    )
    return 0 if state != "failed" else 1


if __name__ == "__main__":
    raise SystemExit(main())
