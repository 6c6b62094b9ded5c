"""The package's shape: no import cycle (between modules, or between cnnkit's subpackages), and no
module outside `tasks/` that compares a task name — explain and data ask the task what it
answers with (`Task.output`) and what it needs (`Task.target`) instead.

Both checks read the source with `ast`, so an import inside a function counts like one at the
top of a module: it is the same dependency, only deferred.
"""
from __future__ import annotations

import ast
from pathlib import Path

import cnnkit
from cnnkit.tasks import TASKS

SRC = Path(cnnkit.__file__).parent


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package __init__)."""
    out = {}
    for f in sorted(SRC.rglob("*.py")):
        parts = list(f.relative_to(SRC.parent).with_suffix("").parts)
        package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if package else parts)] = (f, package)
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the cnnkit modules it imports (`from a import b` counts a.b when b is a module)."""
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, (path, package) in mods.items():
        here = name if package else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = here.split(".")[:len(here.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                deps.add(base)
                deps.update(f"{base}.{a.name}" for a in node.names)
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _is_ancestor(package: str, module: str) -> bool:
    return module.startswith(package + ".")


def test_no_import_cycle_between_modules():
    # Importing a.b runs a/__init__ first, so every module already depends on its packages; a
    # registry package whose __init__ imports its members to register them (models, tasks) is
    # that same edge, not a cycle between modules.
    graph = {m: {d for d in deps if not _is_ancestor(d, m)} for m, deps in import_graph().items()}
    assert cycles(graph) == []


def test_no_import_cycle_between_subpackages():
    def group(m: str) -> str:
        return ".".join(m.split(".")[:2])

    graph: dict[str, set[str]] = {}
    for m, deps in import_graph().items():
        graph.setdefault(group(m), set()).update(group(d) for d in deps if group(d) != group(m))
    assert cycles(graph) == []


def test_cycle_finder_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _strings(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [s for elt in node.elts for s in _strings(elt)]
    return []


def task_name_comparisons(source: str, names: set[str]) -> list[int]:
    """Lines comparing something with a task name (==, !=, in, not in a literal holding one)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            if any(s in names for side in (node.left, *node.comparators) for s in _strings(side)):
                lines.append(node.lineno)
        elif isinstance(node, ast.MatchValue) and set(_strings(node.value)) & names:
            lines.append(node.lineno)
    return lines


def test_no_task_name_comparison_outside_tasks():
    names = set(TASKS)
    found = {str(f.relative_to(SRC)): task_name_comparisons(f.read_text(encoding="utf-8"), names)
             for f in sorted(SRC.rglob("*.py")) if "tasks" not in f.relative_to(SRC).parts}
    assert {f: lines for f, lines in found.items() if lines} == {}


def test_comparison_finder_sees_the_forms_it_forbids():
    src = 'a = t == "detect"\nb = t in ("segment", "x")\nc = "classify" != t\nd = t == "boxes"\n'
    assert task_name_comparisons(src, {"detect", "segment", "classify"}) == [1, 2, 3]
