"""The import graph runs one way, core <- contract <- adapters <- CLI, and has no circle.

Walks every module of `trainer` and `splade_connectors` with `ast` (imports anywhere in a module:
top level, inside functions, under TYPE_CHECKING) and checks the layering:

- core (`trainer`) imports nothing of `splade_connectors`;
- the contract and the library built on it (errors, store, registry, retry, records, fusion, search,
  explain, ingest, eval, ...) import no adapter and no CLI: stores are built by the registry, which
  imports adapters by name only when their kind is asked for;
- an adapter (`qdrant`, `opensearch`) imports no other adapter, no CLI, and nothing of the layers above it;
- the CLI imports no adapter either (it builds stores through the registry); nothing imports the CLI;
- the query path lives in a library module: no CLI module searches a store or encodes queries itself.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("trainer", "splade_connectors")
ADAPTERS = ("splade_connectors.qdrant", "splade_connectors.opensearch")
CLI = "splade_connectors.cli"
ABOVE_ADAPTERS = (CLI, "splade_connectors.ingest", "splade_connectors.eval", "splade_connectors.search", "splade_connectors.registry")
QUERY_PATH_CALLS = {"search_batch", "hybrid_search_batch", "search_text_batch", "encode_queries"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> Iterator[tuple[str, Path, ast.Module]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield _module_name(path), path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imports(module: str, path: Path, tree: ast.Module) -> set[str]:
    """Every module name this module imports (relative imports resolved; `from a import b` gives a and a.b)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _within(name: str, prefixes: tuple[str, ...] | str) -> bool:
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(name == p or name.startswith(p + ".") for p in prefixes)


GRAPH = {module: (path, _imports(module, path, tree)) for module, path, tree in _modules()}


def _in_layer(prefixes: str | tuple[str, ...]) -> set[str]:
    """The modules of a layer: every module under one of the prefixes."""
    return {m for m in GRAPH if _within(m, prefixes)}


def _violations(modules: set[str], forbidden: str | tuple[str, ...]) -> list[str]:
    """`module imports name` for each import by one of `modules` of a module under a `forbidden` prefix."""
    return sorted(f"{m} imports {name}" for m in modules for name in GRAPH[m][1] if _within(name, forbidden))


def test_the_walk_sees_the_packages() -> None:
    assert "trainer.encoder" in GRAPH and "splade_connectors.cli" in GRAPH and "splade_connectors.qdrant.store" in GRAPH
    assert "splade_connectors.errors" in GRAPH["splade_connectors.qdrant.store"][1]  # adapters use the contract


def test_core_imports_no_adapter_layer() -> None:
    assert _violations(_in_layer("trainer"), "splade_connectors") == []


def test_contract_and_library_import_no_adapter_and_no_cli() -> None:
    library = _in_layer("splade_connectors") - _in_layer((*ADAPTERS, CLI))
    assert {"splade_connectors.search", "splade_connectors.registry", "splade_connectors.eval.backends"} <= library
    assert _violations(library, (*ADAPTERS, CLI)) == []


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_an_adapter_imports_no_other_adapter_and_nothing_above_it(adapter: str) -> None:
    others = tuple(a for a in ADAPTERS if a != adapter)
    assert _violations(_in_layer(adapter), (*others, *ABOVE_ADAPTERS)) == []


def test_the_cli_builds_stores_through_the_registry_only() -> None:
    assert _violations(_in_layer(CLI), ADAPTERS) == []


def test_nothing_but_the_cli_imports_the_cli() -> None:
    assert _violations(set(GRAPH) - _in_layer(CLI), CLI) == []


def test_the_query_path_lives_in_a_library_module() -> None:
    """The CLI calls `splade_connectors.search.search`; it never searches a store or encodes queries itself."""
    calls = []
    for module in sorted(_in_layer(CLI)):
        for node in ast.walk(ast.parse(GRAPH[module][0].read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in QUERY_PATH_CALLS:
                calls.append(f"{module}:{node.lineno} calls .{node.func.attr}()")
    assert calls == []
    assert "splade_connectors.search" in GRAPH[f"{CLI}.search"][1] and "splade_connectors.search" in GRAPH[f"{CLI}.demo"][1]


def _import_circles() -> list[list[str]]:
    """Strongly connected groups of more than one module in the import graph (every import, lazy and TYPE_CHECKING ones
    included): each is a circle of modules importing each other."""
    graph = {m: {name for name in imports if name in GRAPH and name != m} for m, (_, imports) in GRAPH.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's algorithm
        index[module] = low[module] = len(index)
        stack.append(module)
        for name in graph[module]:
            if name not in index:
                visit(name)
                low[module] = min(low[module], low[name])
            elif name in stack:
                low[module] = min(low[module], index[name])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return circles


def test_no_module_imports_itself_through_others() -> None:
    assert _import_circles() == []


def test_the_circle_check_sees_a_circle() -> None:
    """The check itself: two modules importing each other are reported."""
    saved = dict(GRAPH)
    try:
        GRAPH["trainer.errors"] = (GRAPH["trainer.errors"][0], GRAPH["trainer.errors"][1] | {"trainer.sparse"})
        GRAPH["trainer.sparse"] = (GRAPH["trainer.sparse"][0], GRAPH["trainer.sparse"][1] | {"trainer.errors"})
        assert ["trainer.errors", "trainer.sparse"] in _import_circles()
    finally:
        GRAPH.clear()
        GRAPH.update(saved)
