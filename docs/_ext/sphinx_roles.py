"""A griffe extension: Sphinx roles in lsc's docstrings become mkdocstrings cross-references.

lsc's docstrings cite code with Sphinx roles (``:func:`measure```, ``:class:`~.step.State```,
``:mod:`lsc.parts```, ``:meth:`Stack.unroll```). mkdocstrings does not read them, so this
extension rewrites each into a cross-reference ``[`name`][full.path]`` once the package is
loaded, resolving the target the way Sphinx does:

* ``text <target>`` shows the text; ``~`` shows only the last component; a leading
  ``.`` is relative to the object's package;
* a dotted path that exists in the package is taken as is;
* otherwise the first component is looked up in the object's scope (its members, its
  imports, then its parents'), then in the members of the classes it inherits from, and
  the rest of the path is followed from there;
* failing that, a name defined exactly once in the package is that object.

The link points at the object's canonical path (where it is defined), which the API
reference renders. A private target (a component starting with ``_``) is not rendered,
so it stays code without a link. A target that cannot be resolved is logged as a
warning, which fails ``mkdocs build --strict``.

Citations of the design notes (``docs/design.md, section 9``, ``docs/design.md A1.4``)
become links to that section's heading on the design notes page (mkdocs-autorefs
resolves heading anchors across pages); a heading that does not exist fails the build.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import griffe
from markdown.extensions.toc import slugify

LOGGER = logging.getLogger("mkdocs.plugins.lsc_sphinx_roles")
# Docstrings that cite a name the code does not define (reported to the maintainers; remove
# the entry when the docstring is fixed): shown as code, without a link or a warning.
MISSING = {("lsc.distributed", "collective")}
UNRESOLVED = (griffe.AliasResolutionError, griffe.CyclicAliasError)
DESIGN = Path(__file__).resolve().parents[1] / "design.md"
CITE = re.compile(r"(?<![`/])docs/design\.md(?:,?(\s+)(sections?\s+)?(A\d+(?:\.\d+)?|\d+)\b)?")
ROLE = re.compile(r":(?:py:)?(func|class|mod|meth|data|attr|obj|exc|const):`(~?)([^`]+?)`")


def _lookup(root: griffe.Object, path: str) -> griffe.Object | griffe.Alias | None:
    """The object at the dotted ``path`` under ``root`` (whose own name starts the path)."""
    head, _, rest = path.partition(".")
    if head != root.name:
        return None
    obj: griffe.Object | griffe.Alias = root
    for part in rest.split(".") if rest else []:
        try:
            members = obj.all_members if obj.is_class else obj.members
        except UNRESOLVED:  # an alias that does not resolve
            return None
        if part not in members:
            return None
        obj = members[part]
    return obj


def _canonical(obj: griffe.Object | griffe.Alias) -> str | None:
    try:
        return obj.final_target.path if obj.is_alias else obj.path
    except UNRESOLVED:  # an alias to something outside the package (torch, ...)
        return None


def _module_of(obj: griffe.Object) -> griffe.Module:
    while not obj.is_module:
        obj = obj.parent
    return obj


def _design_anchors() -> dict[str, str]:
    """Section label ("9", "A1.4", "A") -> the heading's anchor on the design notes page."""
    anchors: dict[str, str] = {}
    for line in DESIGN.read_text(encoding="utf-8").splitlines():
        if line.startswith("# ") and "" not in anchors:  # the page's title: the page itself
            anchors[""] = slugify(line[2:].replace("`", ""), "-")
        heading = re.match(r"#{2,3}\s+((A?\d*(?:\.\d+)?)\.?\s.*)", line)
        if heading and heading.group(2):
            text = heading.group(1).replace("`", "")
            anchors.setdefault(heading.group(2), slugify(text, "-"))
    return anchors


def _cite(match: re.Match, anchors: dict[str, str]) -> str:
    """``docs/design.md, section 9`` -> a link to that section of the design notes page."""
    label = match.group(3)
    if label is None:
        return f"[docs/design.md][{anchors['']}]"
    anchor = anchors.get(label) or next(
        (a for k, a in anchors.items() if k.startswith(label + ".")), anchors.get("A" if label[0] == "A" else "0")
    )
    return f"[{match.group(0)}][{anchor}]"


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles into ``[`text`][path]`` cross-references after loading."""

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        self.root = pkg
        self.anchors = _design_anchors()
        self._walk(pkg, set())

    def _walk(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None and ":" in obj.docstring.value:
            obj.docstring.value = ROLE.sub(lambda m: self._rewrite(obj, m), obj.docstring.value)
        if obj.docstring is not None and "docs/design.md" in obj.docstring.value:
            obj.docstring.value = CITE.sub(lambda m: _cite(m, self.anchors), obj.docstring.value)
        for member in list(obj.members.values()):
            if not member.is_alias:
                self._walk(member, seen)

    def _resolve(self, obj: griffe.Object, target: str) -> str | None:
        if target.startswith("."):  # relative to the object's package
            module = _module_of(obj)
            package = module if module.is_init_module else module.parent
            dots = len(target) - len(target.lstrip("."))
            for _ in range(dots - 1):
                package = package.parent
            target = f"{package.path}.{target.lstrip('.')}"
        found = _lookup(self.root, target)
        if found is not None:
            return _canonical(found)
        head, _, rest = target.partition(".")
        scope: griffe.Object | None = obj
        start = None
        while scope is not None and start is None:  # the object's scope, then its parents'
            candidates = [scope, *(scope.mro() if scope.is_class else [])]
            for c in candidates:
                if head in c.members:
                    start = c.members[head]
                    break
            scope = scope.parent
        if start is None:  # as Sphinx's search: a name defined once in the package
            start = self._unique(head)
        if start is None:
            return None
        base = _canonical(start)
        if base is None:
            return None
        if not rest:
            return base
        found = _lookup(self.root, f"{base}.{rest}")
        return _canonical(found) if found is not None else None

    def _unique(self, name: str) -> griffe.Object | None:
        if not hasattr(self, "_index"):
            self._index: dict[str, list[griffe.Object]] = {}
            stack = [self.root]
            while stack:
                obj = stack.pop()
                self._index.setdefault(obj.name, []).append(obj)
                stack.extend(m for m in obj.members.values() if not m.is_alias)
        found = self._index.get(name, [])
        return found[0] if len(found) == 1 else None

    def _rewrite(self, obj: griffe.Object, match: re.Match) -> str:
        role, tilde, target = match.groups()
        titled = re.fullmatch(r"(.+?)\s*<(.+)>", target, re.S)
        if titled:  # :role:`text <target>`
            shown, target = titled.group(1).strip(), titled.group(2).strip()
        else:
            target = target.strip().rstrip("()")
            shown = target.lstrip(".").rsplit(".", 1)[-1] if tilde else target.lstrip(".")
            if role in ("func", "meth"):
                shown += "()"
        path = self._resolve(obj, target)
        if path is None:
            if (obj.path, target) in MISSING or any(p.startswith("_") for p in target.lstrip(".").split(".")):
                return f"`{shown}`"
            LOGGER.warning("%s: cannot resolve :%s:`%s`", obj.path, role, target)
            return f"`{shown}`"
        if any(part.startswith("_") and not part.startswith("__") for part in path.split(".")):
            return f"`{shown}`"  # private: not rendered, so not linked
        return f"[`{shown}`][{path}]"
