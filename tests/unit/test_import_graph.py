"""Import structure: `sv4d_lib` imports form no cycle; node modules do not import each other and do nothing on import.

The graphs are read from the source with `ast`, so imports inside functions (lazy) and under `TYPE_CHECKING` count
too: a cycle they hide is still two modules that know each other.
"""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules(package: str) -> dict[str, Path]:
    """Every module of a package folder (its `__init__` as the package name) → its file."""
    return {module_name(path): path for path in sorted((REPO / package).rglob("*.py"))}


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int]]:
    """(imported module of `modules`, line) for every import statement in the file, at any depth."""
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # `from package import submodule` imports the submodule; anything else comes from `base` itself
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import a.b.c` of a non-module attribute → nearest module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.append((target, node.lineno))
    return found


def import_graph(package: str) -> dict[str, dict[str, int]]:
    """module → {imported module of the same package: line of the first such import}."""
    modules = package_modules(package)
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges: dict[str, int] = {}
        for target, line in imports_of(name, path, modules):
            edges.setdefault(target, line)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle (as a closed path) per strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in graph:
        if node not in index:
            visit(node)
    return [closed_path(graph, set(component)) for component in components]


def closed_path(graph: dict[str, dict[str, int]], component: set[str]) -> list[str]:
    """A cycle through the component's smallest module, found by breadth-first search inside the component."""
    start = min(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in graph[node]:
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if target in component and target not in parents:
                    parents[target] = node
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(component)}")


def describe(graph: dict[str, dict[str, int]], path: list[str]) -> str:
    return " → ".join(f"{a} (line {graph[a][b]})" for a, b in zip(path, path[1:])) + f" → {path[-1]}"


def test_the_cycle_finder_reports_a_closed_path():
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3, "d": 4}, "d": {}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b": 1}, "b": {}}) == []


def test_relative_lazy_and_type_checking_imports_are_edges():
    graph = import_graph("sv4d_lib")
    assert "sv4d_lib.cameras" in graph["sv4d_lib.conditioning"]  # `from .cameras import OrbitCameras`
    assert "sv4d_lib.windows" in graph["sv4d_lib.extend"]
    assert set(graph["sv4d_lib.nerf"]) >= {"sv4d_lib.nerf.field", "sv4d_lib.nerf.fit"}  # a package's __init__


def test_sv4d_lib_has_no_import_cycle():
    graph = import_graph("sv4d_lib")
    found = cycles(graph)
    assert not found, "import cycles in sv4d_lib (make the imports one-way):\n" + "\n".join(
        describe(graph, path) for path in found)


def node_modules() -> dict[str, Path]:
    """The modules of `nodes/` that define nodes (a top-level `NODES` list)."""
    found = {}
    for name, path in package_modules("nodes").items():
        tree = ast.parse(path.read_text())
        if any(isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "NODES" for t in n.targets)
               for n in tree.body):
            found[name] = path
    return found


def test_node_modules_import_no_other_node_module():
    graph, defining = import_graph("nodes"), node_modules()
    assert {"nodes.sampling", "nodes.extend", "nodes.guidance"} <= set(defining)
    crossing = [f"{name} imports {target} (line {line})" for name in defining
                for target, line in graph[name].items() if target in defining]
    assert not crossing, "node modules must share helpers through nodes/common.py, not import each other:\n" + (
        "\n".join(crossing))


def test_importing_a_node_module_runs_nothing():
    """No top-level calls (e.g. registering HTTP routes): the extension (nodes/__init__.py) registers routes."""
    calls = [f"{name}:{n.lineno}" for name, path in node_modules().items()
             for n in ast.parse(path.read_text()).body if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)]
    assert not calls, f"node modules call functions at import time: {calls}"
