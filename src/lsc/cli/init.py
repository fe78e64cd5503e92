"""``lsc init``: the named initialisations and where each comes from."""

from __future__ import annotations

import argparse
from typing import Any

from ..init import available


def add_command(sub: Any) -> None:
    i = sub.add_parser(
        "init",
        help="list the named initialisations",
        description="List the named initialisations (use one with --init NAME on measure, pretrain or train).",
    )
    i.add_argument("--list", action="store_true", help="list the inits with their source paper (the default)")
    i.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for info in available().values():
        print(info)
    return 0
