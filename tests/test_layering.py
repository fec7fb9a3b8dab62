"""The package's import graph, read from the source (ast): no circle, no import from a
lower layer to a higher one, and each heavy dependency in its own room."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "jradievo_ray"

# Lowest first. A module may import modules of its own unit (the longest entry it lies in)
# and of lower layers; sibling units of one layer may not import each other. merge.ops,
# merge.fused and merge.methods are the tensor kernels under the recipes and the engine.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "paths"),
    ("config", "faults", "progress", "storage", "tracking"),
    ("data",),
    ("scoring", "hf", "merge.ops", "merge.fused"),
    ("merge.methods",),
    ("merge.recipe",),
    ("merge", "inference", "zoo"),
    ("search",),
    ("commands",),
    ("cli", "__main__"),
]

# Third-party packages that only some modules may import (prefix of the module path).
ROOMS = {
    "ray": ("search.",),
    "deap": ("search.",),
    "vllm": ("inference.vllm",),
    "mlflow": ("tracking",),
    "boto3": ("storage",),
    "botocore": ("storage",),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def unit_of(module: str) -> str:
    """The longest LAYERS entry that `module` is or lies in."""
    units = [u for layer in LAYERS for u in layer]
    found = [u for u in units if module == u or module.startswith(u + ".")]
    if not found:
        raise AssertionError(f"jradievo_ray/{module}: in no layer of tests/test_layering.py")
    return max(found, key=len)


def layer_of(unit: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if unit in layer)


def imports(path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import in the file, relative ones resolved;
    `from pkg import name` imports the module pkg.name when there is one, else pkg."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - node.level + 1]
                target = "jradievo_ray." + ".".join([*base, *filter(None, [node.module])])
            else:
                target = node.module or ""
            target = target.rstrip(".")
            subs = [f"{target}.{a.name}" for a in node.names]
            modules = [m for m in subs if m.startswith("jradievo_ray.") and is_module(m)]
            if len(modules) < len(subs):  # names defined in `target` itself
                out.append((target, node.lineno))
            out += [(m, node.lineno) for m in modules]
    return out


def is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").is_file() or (PACKAGE / rel / "__init__.py").is_file()


def package_graph() -> dict[str, list[tuple[str, int]]]:
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        graph[module_name(path)] = [
            (name.removeprefix("jradievo_ray."), line)
            for name, line in imports(path)
            if name.startswith("jradievo_ray.")
        ]
    return graph


def where(module: str) -> str:
    """The file of a module, relative to the repository."""
    path = PACKAGE / Path(*module.split(".")) if module else PACKAGE
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    return str(path.relative_to(PACKAGE.parent))


def layer_violations(graph: dict[str, list[tuple[str, int]]]) -> list[str]:
    out = []
    for module, deps in graph.items():
        if not module:
            continue
        unit = unit_of(module)
        for dep, line in deps:
            dep_unit = unit_of(dep)
            if dep_unit == unit:
                continue
            if layer_of(dep_unit) >= layer_of(unit):
                out.append(
                    f"{where(module)}:{line} imports {where(dep)} ({dep_unit} is not below {unit})"
                )
    return out


def circles(graph: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    """Every import circle between modules (each found once, from its smallest module)."""
    edges = {m: sorted({d for d, _ in deps if d in graph and d != m}) for m, deps in graph.items()}
    found: set[tuple[str, ...]] = set()

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in edges[node]:
            if nxt == start:
                found.add(tuple(path))
            elif nxt > start and nxt not in path:
                walk(start, nxt, [*path, nxt])

    for module in graph:
        walk(module, module, [module])
    return [list(c) for c in sorted(found)]


def room_violations() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        for name, line in imports(path):
            allowed = ROOMS.get(name.split(".")[0])
            if allowed is not None and not module.startswith(allowed):
                out.append(f"{where(module)}:{line} imports {name} (only in {', '.join(allowed)})")
    return out


def test_no_import_from_a_lower_layer_to_a_higher_one():
    assert layer_violations(package_graph()) == []


def test_no_import_circle():
    found = circles(package_graph())
    assert not found, "\n".join(" -> ".join(map(where, [*c, c[0]])) for c in found)


def test_heavy_dependencies_stay_in_their_rooms():
    assert room_violations() == []


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"merge.engine": [("search.space", 3)], "search.space": []}, "merge/engine.py:3"),
        ({"data.mimic": [("scoring.labeler", 7)], "scoring.labeler": []}, "data/mimic.py:7"),
        ({"merge.engine": [("inference.base", 5)], "inference.base": []}, "inference/base.py"),
    ],
)
def test_an_upward_or_sideways_import_is_named_with_both_files(graph, expected):
    (message,) = layer_violations(graph)
    assert expected in message


def test_a_circle_is_found_and_named():
    graph = {"a": [("b", 1)], "b": [("c", 1)], "c": [("a", 1)], "d": [("a", 1)]}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles({"a": [("b", 1)], "b": []}) == []
