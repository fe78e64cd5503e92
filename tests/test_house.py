"""The house rules of docs/design.md section 0, read from the source (nothing is run):

* no function in ``src/lsc`` takes more than 12 parameters or is longer than 100 lines;
* the modules import each other in floors: no circle (imports under ``TYPE_CHECKING``
  aside) and no import from a lower floor up to a higher one;
* no module imports another one's private (``_name``) names;
* ``benchmarks/`` and ``examples/`` use lsc's public names only.

Functions and imports that still break a rule are listed in ``KNOWN_*`` below (each one
a test of its own, expected to fail until it is mended; delete its entry then).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = SRC / "lsc"
MAX_PARAMETERS, MAX_LINES = 12, 100

FLOORS = {  # docs/design.md section 0: a module imports only from its own floor or below
    "checks": 1,
    "files": 1,
    "rundir": 1,
    "optimizers": 1,
    "progress": 1,
    "interrupts": 1,
    "distributed": 1,
    "krylov": 1,
    "version": 1,
    "stats": 1,
    "settings": 1,
    "models": 2,
    "jacobian": 3,
    "grid": 3,
    "parts": 3,
    "tasks": 3,
    "condition": 4,
    "analysis": 4,
    "init": 4,
    "pretraining": 5,
    "train": 5,
    "monitor": 5,
    "lightning_callback": 5,
    "job": 6,
    "comparison": 6,
    "__init__": 6,  # lsc/__init__.py: the public API, over the library
    "experiments": 7,
    "cli": 8,
    "__main__": 9,
}

KNOWN_UPWARD_IMPORTS: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def functions(tree: ast.AST, prefix: str) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function and method, by dotted name."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield f"{prefix}.{node.name}", node
            yield from functions(node, f"{prefix}.{node.name}")
        elif isinstance(node, ast.ClassDef):
            yield from functions(node, f"{prefix}.{node.name}")


def parameters(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    a = fn.args
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs] + [x.arg for x in (a.vararg, a.kwarg) if x]
    return [n for n in names if n not in ("self", "cls")]


def too_big() -> dict[str, str]:
    found = {}
    for name, path in sources().items():
        for qual, fn in functions(ast.parse(path.read_text()), name):
            lines, params = fn.end_lineno - fn.lineno + 1, len(parameters(fn))  # type: ignore[operator]
            if lines > MAX_LINES or params > MAX_PARAMETERS:
                found[qual] = f"{path.relative_to(ROOT)}:{fn.lineno} {qual}: {lines} lines, {params} parameters"
    return found


def type_only(tree: ast.Module) -> set[int]:
    """Line numbers of the imports under ``if TYPE_CHECKING:``."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            lines |= {
                n.lineno for stmt in node.body for n in ast.walk(stmt) if isinstance(n, (ast.Import, ast.ImportFrom))
            }
    return lines


def resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(name: str, path: Path, known: set[str]) -> Iterator[tuple[str, str | None, int, bool]]:
    """(module, name taken from it or None, line, type-only) for every lsc import of a module."""
    tree = ast.parse(path.read_text())
    typing = type_only(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "lsc":
                    yield alias.name, None, node.lineno, node.lineno in typing
        elif isinstance(node, ast.ImportFrom):
            target = resolve(name, path.name == "__init__.py", node)
            if target.split(".")[0] != "lsc":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:  # `from . import module`: an import of that module
                    yield sub, None, node.lineno, node.lineno in typing
                else:
                    yield target, alias.name, node.lineno, node.lineno in typing


def floor(module: str) -> int:
    parts = module.split(".")
    return FLOORS[parts[1] if len(parts) > 1 else "__init__"]


def graph() -> dict[str, set[str]]:
    """Importer -> imported lsc modules, imports under TYPE_CHECKING left out."""
    mods = sources()
    return {
        name: {m for m, _, _, typing in imports(name, path, set(mods)) if not typing and m in mods and m != name}
        for name, path in mods.items()
    }


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_every_module_has_a_floor():
    assert not [m for m in sources() if ([*m.split("."), "__init__"])[1] not in FLOORS]


def test_no_function_is_too_big():
    big = too_big()
    assert not big, "\n".join(big.values())


def test_no_code_reads_its_own_locals():
    """Settings are passed by name, never gathered with locals() (issue 26)."""
    calls = [
        f"{path.relative_to(ROOT)}:{n.lineno}"
        for path in sources().values()
        for n in ast.walk(ast.parse(path.read_text()))
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "locals"
    ]
    assert not calls, calls


def test_the_imports_have_no_circle():
    assert circles(graph()) == []


def upward() -> set[tuple[str, str]]:
    return {(a, b) for a, targets in graph().items() for b in targets if floor(b) > floor(a)}


def test_no_import_runs_up_a_floor():
    assert upward() - KNOWN_UPWARD_IMPORTS == set()


def private_imports() -> set[tuple[str, str]]:
    mods = sources()
    found = set()
    for name, path in mods.items():
        for module, taken, _, _ in imports(name, path, set(mods)):
            if module != name and taken is not None and taken.startswith("_") and not taken.startswith("__"):
                found.add((name, f"{module}.{taken}"))
    return found


def test_no_module_imports_another_ones_private_names():
    assert private_imports() == set()


def lsc_names(path: Path) -> Iterator[tuple[str, int]]:
    """Every dotted lsc name a script imports or reads (``lsc.a.b``, ``from lsc.a import b``,
    ``lsc.a.b`` as an attribute chain)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "lsc")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "lsc" and not node.level:
            yield from ((f"{node.module}.{a.name}", node.lineno) for a in node.names)
        elif isinstance(node, ast.Attribute):
            text = ast.unparse(node)
            if text.split(".")[0] == "lsc":
                yield text, node.lineno


@pytest.mark.parametrize(
    "path", sorted([*ROOT.glob("benchmarks/*.py"), *ROOT.glob("examples/*.py")]), ids=lambda p: p.name
)
def test_scripts_use_public_names_only(path):
    private = [
        f"line {line}: {name}"
        for name, line in lsc_names(path)
        if any(part.startswith("_") for part in name.split("."))
    ]
    assert not private, f"{path.relative_to(ROOT)} uses private lsc names: {private}"
