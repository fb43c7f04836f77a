"""The layering rule of DESIGN.md, checked by parsing every module's imports.

Layers run one way: kernels < solvers < problems < training < the face (``dcdm/``) <
bench. A module imports only from its own layer or below; the one exception is the lazy
link from the neural preconditioner (solvers) to the network code (training), made inside
functions. ``dcdm._version`` imports nothing and may be read from any layer. No two files
import each other (directly or round a longer loop), and no library module is longer
than :data:`MAX_LINES` lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: folder -> dotted package, in layer order (lowest first)
LAYERS = {
    "kernels": "dcdm.kernels",
    "solvers": "dcdm.solvers",
    "problems": "dcdm.problems",
    "training": "dcdm.training",
    "dcdm": "dcdm",
    "bench": "bench",
}
LIBRARY = ("kernels", "solvers", "problems", "training", "dcdm")
#: the modules allowed to reach up, and where to
LAZY_LINKS = {"dcdm.solvers.precond.neural": "dcdm.training"}
LEAVES = {"dcdm._version"}
MAX_LINES = 450


def _module_name(path: Path) -> tuple[str, bool]:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join([LAYERS[parts[0]], *parts[1:]]), is_package


def _modules() -> dict[str, tuple[Path, bool]]:
    mods = {}
    for folder in LAYERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            name, is_package = _module_name(path)
            mods[name] = (path, is_package)
    return mods


MODULES = _modules()


def _layer(module: str) -> int | None:
    best = None
    for rank, package in enumerate(LAYERS.values()):
        if module == package or module.startswith(package + "."):
            if best is None or len(package) > len(best[1]):
                best = (rank, package)
    return None if best is None else best[0]


def _imports(name: str) -> list[tuple[str, int, bool]]:
    """``(imported module, line, at module level)`` for every import of the package or
    bench in module ``name``; ``from a import b`` resolves to ``a.b`` when that is a
    module."""
    path, is_package = MODULES[name]
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if is_package else name.rpartition(".")[0]
    top_level = {id(node) for node in tree.body}
    for node in tree.body:  # imports under a top-level `if`/`try` still run at import time
        if isinstance(node, (ast.If, ast.Try)):
            top_level |= {id(n) for n in ast.walk(node)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            subs = [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in MODULES]
            targets = subs or [module]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] in ("dcdm", "bench"):
                out.append((target, node.lineno, id(node) in top_level))
    return out


GRAPH = {name: _imports(name) for name in MODULES}


def test_every_folder_is_mapped():
    assert set(MODULES) and all(_layer(m) is not None for m in MODULES)
    assert "dcdm.solvers.precond.neural" in MODULES and "dcdm._version" in MODULES


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_upward_import(name):
    up = []
    for target, line, top in GRAPH[name]:
        if target in LEAVES or _layer(target) <= _layer(name):
            continue
        link = LAZY_LINKS.get(name)
        if link and (target == link or target.startswith(link + ".")) and not top:
            continue
        up.append(f"{MODULES[name][0].relative_to(ROOT)}:{line} imports {target}")
    assert not up, "upward imports:\n" + "\n".join(up)


def test_leaves_import_nothing_of_the_package():
    for leaf in LEAVES:
        assert GRAPH[leaf] == []


def test_the_lazy_link_is_lazy():
    for name, link in LAZY_LINKS.items():
        eager = [t for t, _, top in GRAPH[name] if t.startswith(link) and top]
        assert not eager, f"{name} imports {eager} at module level"


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    edges = {n: sorted({t for t, _, _ in GRAPH[n] if t in MODULES and t != n}) for n in MODULES}
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return comps


def test_no_import_cycle_between_files():
    assert _cycles() == []


def test_the_cycle_finder_finds_one():
    GRAPH["dcdm.kernels.codes"].append(("dcdm.kernels.stencil", 0, True))
    try:
        assert ["dcdm.kernels.codes", "dcdm.kernels.stencil"] in _cycles()
    finally:
        GRAPH["dcdm.kernels.codes"].pop()


@pytest.mark.parametrize("folder", LIBRARY)
def test_no_library_module_is_too_long(folder):
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / folder).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


OPTIONAL = ("torch", "pyamg", "numba", "cupy", "matplotlib", "tqdm", "safetensors")


@pytest.mark.parametrize("statement", [
    "import dcdm",
    "import dcdm.solvers",
    "import dcdm.kernels",
    "import dcdm.problems",
    "import dcdm.problems.smoke",
    "import dcdm.cli; dcdm.cli.build_parser()",
])
def test_imports_load_no_optional_dependency(statement):
    import subprocess
    import sys

    code = f"import sys; {statement}; print([m for m in {OPTIONAL!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", f"{statement!r} imported {out.stdout.strip()}"
