"""The layers of docs/architecture.md, checked on the source: who may import whom.

Every module of the three packages is read with :mod:`ast` (nothing is imported, so
a module that fails to import still gets its imports checked), imports inside
functions included: a lazy import is still a dependency.  The rules:

- a module of ``wiretick.hdl`` imports, of wiretick, only ``wiretick.hdl``, the
  contract (``wiretick.host.contract``) and ``wiretick.host.errors``;
- only the CLI (``wiretick.host.cli``) imports the CLI;
- no import cycle between modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"hdl": "wiretick.hdl", "host": "wiretick.host", "sim": "wiretick.sim"}
CLI = "wiretick.host.cli"
#: What gateware may import of wiretick besides itself: the contract and the error base.
HDL_MAY_IMPORT = ("wiretick.host.contract", "wiretick.host.errors")


def _modules() -> dict[str, Path]:
    out = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = [package, *path.relative_to(ROOT / folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def imports_of(name: str, path: Path) -> list[tuple[str, int]]:
    """``(module, line)`` for every import in ``path`` (module ``name``), relative ones resolved.

    ``from p import x`` names module ``p.x`` when that is a module of the tree, else ``p``.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([node.module] if node.module else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.append((sub if sub in MODULES else base, node.lineno))
    return list(dict.fromkeys(out))      # `from m import a, b` is one import of m


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _graph() -> dict[str, dict[str, int]]:
    """Module -> {imported module of the tree: first line}."""
    graph: dict[str, dict[str, int]] = {}
    for name, path in MODULES.items():
        edges: dict[str, int] = {}
        for target, line in imports_of(name, path):
            if target in MODULES and target != name:
                edges.setdefault(target, line)
        graph[name] = edges
    return graph


def _where(name: str, line: int) -> str:
    return f"{MODULES[name].relative_to(ROOT)}:{line}"


def test_hdl_imports_amaranth_and_the_contract_only():
    bad = [f"{_where(name, line)}: {name} imports {target}"
           for name, path in MODULES.items() if _within(name, "wiretick.hdl")
           for target, line in imports_of(name, path)
           if _within(target, "wiretick") and not _within(target, "wiretick.hdl")
           and not any(_within(target, ok) for ok in HDL_MAY_IMPORT)]
    assert not bad, "gateware imports beyond the contract:\n" + "\n".join(bad)


def test_only_the_cli_imports_the_cli():
    bad = [f"{_where(name, line)}: {name} imports {target}"
           for name, path in MODULES.items() if name != CLI
           for target, line in imports_of(name, path) if _within(target, CLI)]
    assert not bad, "the CLI is the top layer:\n" + "\n".join(bad)


def cycles(graph: dict[str, dict[str, int]]) -> list[tuple[list[str], list[str]]]:
    """For each strongly connected component of more than one module: one cycle through it
    (``[a, b, ..., a]``, from its first module by name) and the component's modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:         # Tarjan's algorithm (recursion depth: the longest import chain)
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(comp)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    out = []
    for comp in components:
        inside = set(comp)
        start = min(comp)
        # Shortest way back to the start within the component (breadth first).
        prev: dict[str, str] = {}
        frontier = [start]
        while start not in prev:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v]):
                    if w in inside and w not in prev:
                        prev[w] = v
                        nxt.append(w)
            frontier = nxt
        path = [start]
        while True:
            path.append(prev[path[-1]])
            if path[-1] == start:
                break
        out.append((path[::-1], sorted(comp)))
    return out


def test_no_import_cycle():
    graph = _graph()
    found = cycles(graph)
    text = ["  " + " -> ".join(f"{a} ({_where(a, graph[a][b])})" for a, b in zip(c, c[1:])) + f" -> {c[-1]}"
            + (f"\n    (one of the cycles between {', '.join(comp)})" if len(comp) > len(c) - 1 else "")
            for c, comp in found]
    assert not found, "import cycles:\n" + "\n".join(text)


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}, [(["a", "b", "c", "a"], ["a", "b", "c"])]),
    ({"a": {"b": 1}, "b": {}, "c": {"c": 1}}, []),
    ({"a": {"b": 1, "c": 1}, "b": {"a": 1}, "c": {}}, [(["a", "b", "a"], ["a", "b"])]),
    ({"a": {"b": 1}, "b": {"a": 1, "c": 1}, "c": {"b": 1}}, [(["a", "b", "a"], ["a", "b", "c"])]),
])
def test_cycles_are_found(graph, expected):
    assert cycles(graph) == expected


def test_relative_and_lazy_imports_are_seen(tmp_path):
    src = tmp_path / "probe.py"
    src.write_text("import ast\n"
                   "from .contract import formats\n"
                   "def f():\n"
                   "    from ..hdl.top import WiretickTop\n"
                   "    from . import cli\n")
    assert imports_of("wiretick.host.probe", src) == [
        ("ast", 1), ("wiretick.host.contract.formats", 2), ("wiretick.hdl.top", 4), ("wiretick.host.cli", 5)]
