"""Print `lsc train` runs side by side: python examples/compare_runs.py DIR [DIR ...]

Reads each DIR/result.json (and DIR/pretrain.json, DIR/metrics.jsonl when present), as
written by `lsc train --out DIR`, and prints one column per run: the validation and test
metric at the best epoch, the per-epoch validation curve, and the pre-training result.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def load(run: Path) -> dict[str, object]:
    result = json.loads((run / "result.json").read_text())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    pre = json.loads((run / "pretrain.json").read_text()) if (run / "pretrain.json").exists() else None
    config = json.loads((run / "config.json").read_text())
    return {"result": result, "rows": rows, "pretrain": pre, "config": config}


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    runs = {Path(a).name: load(Path(a)) for a in argv}
    metric = next(iter(runs.values()))["result"]["metric"]  # type: ignore[index]
    rows: list[tuple[str, list[str]]] = [("", list(runs))]
    cli = [r["config"].get("cli", {}) for r in runs.values()]  # type: ignore[union-attr]
    rows.append(("model", [f"{c.get('cell')} {c.get('layers')}x{c.get('width')}" for c in cli]))
    rows.append(
        (
            "pre-training",
            [
                "none"
                if r["pretrain"] is None
                else f"{r['pretrain']['stopped']}, {r['pretrain']['steps']} steps, {r['pretrain']['seconds']:.0f} s"  # type: ignore[index]
                for r in runs.values()
            ],
        )
    )
    epochs = max(len(r["rows"]) for r in runs.values())  # type: ignore[arg-type]
    for e in range(epochs):
        rows.append(
            (
                f"epoch {e + 1} val {metric}",
                [
                    f"{r['rows'][e][f'val_{metric}']:.4f}" if e < len(r["rows"]) else ""
                    for r in runs.values()  # type: ignore[index,arg-type]
                ],
            )
        )
    rows.append((f"best val {metric}", [f"{r['result']['val']:.4f}" for r in runs.values()]))  # type: ignore[index]
    rows.append((f"test {metric} (best val)", [f"{r['result']['test']:.4f}" for r in runs.values()]))  # type: ignore[index]
    rows.append(("training time", [f"{r['result']['seconds']:.0f} s" for r in runs.values()]))  # type: ignore[index]
    label = max(len(r[0]) for r in rows)
    width = max(len(c) for _, cells in rows for c in cells)
    for name, cells in rows:
        print(f"{name:<{label}}" + "".join(f"  {c:>{width}}" for c in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
