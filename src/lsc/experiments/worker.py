"""``python -m lsc.experiments.worker EXPERIMENT --run-id ID --out DIR --config JSON``:
run one experiment run in this process and write DIR/config.json, metrics.jsonl,
result.json and status.json (see :mod:`lsc.experiments.base`). Exit status 0 for an
``ok`` or ``diverged`` run, 1 for a failed one."""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
import traceback
from pathlib import Path

from .base import CONFIG, METRICS, RESULT, STATUS, Logger, Run, dumps, get, quote


def _clean(obj: object) -> object:
    """NaN/inf -> None so result.json is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


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


def run_one(experiment: str, run_id: str, config: dict, out: Path) -> str:
    """Execute one run, write its files; return its state (ok | diverged | failed)."""
    import torch

    torch.set_num_threads(1)
    exp = get(experiment)
    _clear_other_run(out, config)
    out.mkdir(parents=True, exist_ok=True)
    (out / STATUS).unlink(missing_ok=True)
    command = quote(exp.command(Run(run_id, config), out, "python"))
    (out / CONFIG).write_text(dumps({"experiment": experiment, "run_id": run_id, "config": config, "command": command}))
    log = Logger(out / METRICS)
    start = time.perf_counter()
    error = None
    try:
        result = exp.execute(dict(config), out, log)
        state = "diverged" if result.get("diverged") else "ok"
        (out / RESULT).write_text(dumps(_clean(result)))
    except (Exception, SystemExit):  # noqa: BLE001 - a failed run is recorded, not raised (argparse exits)
        state, error = "failed", traceback.format_exc()
        print(error, file=sys.stderr)
    seconds = time.perf_counter() - start
    (out / STATUS).write_text(dumps({"state": state, "seconds": seconds, "error": error}))
    return state


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lsc.experiments.worker", description=__doc__)
    p.add_argument("experiment")
    p.add_argument("--run-id", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--config", required=True, help="the run's configuration as JSON")
    a = p.parse_args(argv)
    state = run_one(a.experiment, a.run_id, json.loads(a.config), Path(a.out))
    return 0 if state != "failed" else 1


if __name__ == "__main__":
    raise SystemExit(main())
