"""MkDocs hooks for lsc's docs site (loaded by ``hooks:`` in mkdocs.yml).

* The API reference: one page per module or package of ``src/lsc`` (a package's page
  renders its submodules too), generated at build time, so a module added to the code
  gets its page without editing this site. ``docs/api/index.md`` is the public front.
* ``docs/results.md`` includes the repository's ``RESULTS.md`` (pymdownx.snippets);
  its images are linked from the repository root (``docs/results/...``), which is
  ``results/...`` from the page: the links are rewritten on that page only.
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
    return (
        f"# lsc.{name}\n\n"
        f"::: lsc.{name}\n"
        "    options:\n"
        "      show_submodules: true\n"
        "      heading_level: 2\n"
    )


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


def on_page_markdown(markdown, page, **kwargs):
    if page.file.src_uri == "results.md":
        markdown = re.sub(r"\]\(docs/", "](", markdown)
    return markdown
