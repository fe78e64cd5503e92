"""MkDocs hooks for lsc's docs site (loaded by ``hooks:`` in mkdocs.yml).

* The API reference: one page per module or package of ``src/lsc`` (a package's page
  renders its submodules too), generated at build time, so a module added to the code
  gets its page without editing this site. ``docs/api/index.md`` is the public front.
* ``docs/cli.md``: the marker ``<!-- lsc-help -->`` becomes ``lsc COMMAND --help`` of every
  command and subcommand, from the parser itself (``lsc.cli.build_parser``), so the
  reference cannot drift from the code.
* ``<!-- include FILE -->`` in a page is replaced by the repository's FILE
  (``docs/results.md``: ``RESULTS.md``; ``docs/changelog.md``: ``CHANGELOG.md``). Those
  files link from the repository root (``docs/results/...``), which is ``results/...``
  from a page: their links into ``docs/`` are rewritten as they are included.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "lsc"
SKIP = {"__init__", "__main__"}


def _modules() -> list[str]:
    """Top-level modules and packages of lsc, public ones, sorted."""
    names = []
    for path in sorted(PACKAGE.iterdir()):
        if path.name.startswith("_"):
            continue
        if path.is_dir() and (path / "__init__.py").exists():
            names.append(path.name)
        elif path.suffix == ".py" and path.stem not in SKIP:
            names.append(path.stem)
    return names


def _page(name: str) -> str:
    return f"# lsc.{name}\n\n::: lsc.{name}\n    options:\n      show_submodules: true\n      heading_level: 2\n"


def on_config(config, **kwargs):
    for entry in config["nav"] or []:
        if isinstance(entry, dict) and "API reference" in entry:
            front = entry["API reference"]
            entry["API reference"] = front + [{f"lsc.{n}": f"api/{n}.md"} for n in _modules()]
    return config


def on_files(files, config, **kwargs):
    for name in _modules():
        files.append(File.generated(config, f"api/{name}.md", content=_page(name)))
    return files


def _help() -> str:
    """Markdown with the ``--help`` text of every ``lsc`` command and subcommand."""
    import argparse
    import os
    import sys

    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal; the page should not depend on it
    sys.path.insert(0, str(ROOT / "src"))
    from lsc.cli import build_parser

    def subcommands(parser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                return action.choices
        return {}

    out = []

    def walk(parser, depth):
        out.append(f"{'#' * depth} `{parser.prog}`\n\n```\n{parser.format_help().rstrip()}\n```\n")
        for child in subcommands(parser).values():
            walk(child, depth + 1)

    for command in subcommands(build_parser()).values():
        walk(command, 3)
    return "\n".join(out)


def on_page_markdown(markdown, page, **kwargs):
    if "<!-- lsc-help -->" in markdown and page.file.src_uri == "cli.md":
        markdown = markdown.replace("<!-- lsc-help -->", _help())
    if page.file.src_uri == "results/before-records.md":  # its link to RESULTS.md is the site's results page
        markdown = markdown.replace("](../../RESULTS.md)", "](../results.md)")
    return INCLUDE.sub(_include, markdown)


INCLUDE = re.compile(r"^<!-- include (\S+) -->$", re.M)


def _include(match: re.Match) -> str:
    text = (ROOT / match.group(1)).read_text(encoding="utf-8")  # a missing file fails the build
    return re.sub(r"\]\(docs/", "](", text)
