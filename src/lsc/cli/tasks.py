"""``lsc tasks``: every task, its shapes, metric and where its data is read from."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .. import tasks as task_registry


def add_command(sub: Any) -> None:
    t = sub.add_parser(
        "tasks",
        help="list the tasks lsc can train on, their shapes and where their data comes from",
        description="List every task: input and output shapes, metric, and where its data is read from now "
        "(files are looked for in the path option, $LSC_DATA/<folder> and system folders; nothing is downloaded).",
    )
    t.add_argument("--json", action="store_true", help="print the list as JSON (with each task's options)")
    t.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    rows = []
    for name in task_registry.available():
        entry = task_registry.info(name)
        rows.append(
            {
                "name": name,
                "summary": entry.summary,
                "input": entry.input,
                "output": entry.output,
                "metric": entry.metric,
                "data": entry.data(),
                "options": task_registry.options(name),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    cols = ("name", "input", "output", "metric", "data")
    width = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols[:-1]}
    print("  ".join(c.ljust(width[c]) for c in cols[:-1]) + "  data")
    for r in rows:
        print("  ".join(str(r[c]).ljust(width[c]) for c in cols[:-1]) + f"  {r['data']}")
    print(
        f"\nData directory: ${task_registry.ENV}/<folder> or --data. "
        "Options: `lsc tasks --json`, set with -o key=value."
    )
    return 0
