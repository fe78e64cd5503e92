"""The README and the docs site: short README, no broken relative links, a strict build."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")  # [text](target) and ![alt](target)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)


def _pages() -> list[Path]:
    pages = [README, ROOT / "CHANGELOG.md"]
    pages += [
        p
        for p in sorted(DOCS.rglob("*.md"))
        if "_ext" not in p.parts and "results" not in p.relative_to(DOCS).parts[:1]
    ]
    return pages


def _relative_links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))  # code blocks hold no links
    text = re.sub(r"`[^`\n]*`", "", text)
    out = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "/")):
            continue  # a URL, an anchor on the same page or an absolute path
        out.append(target.split("#", 1)[0])
    return out


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 220, f"README.md has {len(lines)} lines; the rest belongs in docs/"


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_exist(page):
    missing = [t for t in _relative_links(page) if not (page.parent / t).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to files that do not exist: {missing}"


def _exported() -> list[str]:
    """``lsc.__all__``, read from the source."""
    tree = ast.parse((ROOT / "src" / "lsc" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
    return []


def _have(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


@pytest.mark.integration
@pytest.mark.skipif(
    not _have("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"),
    reason="the docs extra is not installed (pip install -e '.[docs]')",
)
def test_mkdocs_build_strict(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    exported = _exported()
    front = ["lsc.measure", "lsc.pretrain", "lsc.Monitor", "lsc.load"] + (
        ["lsc.compare"] if "compare" in exported else []
    )
    for name in front:
        assert f'id="{name}"' in api, f"{name} is missing from the API reference"
    for name, params in {
        "lsc.measure": ("model", "target", "time_points"),
        "lsc.pretrain": ("target", "max_steps"),
    }.items():
        entry = api.split(f'id="{name}"', 1)[1][:60000]  # its signature and parameters section
        for param in params:
            assert f"<code>{param}</code>" in entry or f">{param}<" in entry, f"{name}: parameter {param} not shown"
