"""The package's shape, checked: no import cycles, layers that only look down, protobuf and grpc kept
behind their boundaries, and docs/architecture.md naming exactly the modules that exist.

Imports are read with ``ast`` from the source, including those inside functions and under
``TYPE_CHECKING``: a cycle hidden in a function is still a cycle in the design.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "gateway"
ARCHITECTURE = REPO / "docs" / "architecture.md"


def _modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the package except the generated stubs."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        if "_pb" in parts:
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> Iterator[str]:
    """Every module name this file imports: ``from a import b`` is ``a.b`` when that is one of the
    package's modules, else ``a`` (a package's ``__init__`` runs for any of its modules, so it is
    not counted as a dependency of its own submodules' importers)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                yield submodule if submodule in MODULES else node.module


def _internal_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for imported in _imports(path):
            if imported in MODULES and imported != name:
                edges[name].add(imported)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    return found


def test_there_are_no_import_cycles() -> None:
    assert _cycles(_internal_edges()) == []


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "gateway"


def _documented_layers() -> dict[str, set[str]]:
    """The "may import" column of the layer table in docs/architecture.md."""
    rows = re.findall(r"^\| `(\w+)/?` \| [^|]+ \|([^|]*)\|$", ARCHITECTURE.read_text(), re.M)
    return {layer: set(re.findall(r"`(\w+)/?`", allowed)) for layer, allowed in rows}


def test_each_layer_imports_only_what_the_architecture_allows() -> None:
    allowed = _documented_layers()
    assert allowed, "the layer table in docs/architecture.md was not found"
    wrong = []
    for module, targets in _internal_edges().items():
        for target in targets:
            source_layer, target_layer = _layer(module), _layer(target)
            if source_layer != target_layer and target_layer not in allowed.get(source_layer, set()):
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports the layer table does not allow:\n" + "\n".join(sorted(wrong))


def _importers(prefixes: tuple[str, ...]) -> set[str]:
    return {
        name
        for name, path in MODULES.items()
        if any(imported == p or imported.startswith(p + ".") for imported in _imports(path) for p in prefixes)
    }


def _inside(module: str, homes: tuple[str, ...]) -> bool:
    return any(module == home or module.startswith(home + ".") for home in homes)


def test_only_codec_and_backend_touch_protobuf_messages() -> None:
    users = _importers(("gateway._pb", "google.protobuf"))
    assert users, "the check found no protobuf user at all: it is looking in the wrong place"
    outside = sorted(m for m in users if not _inside(m, ("gateway.codec", "gateway.backend")))
    assert outside == []


def test_only_backend_and_the_grpc_front_import_grpc() -> None:
    users = _importers(("grpc",))
    # errors.py keys the one gRPC -> HTTP table by grpc.StatusCode: it imports the enum, nothing else.
    outside = sorted(m for m in users if not _inside(m, ("gateway.backend", "gateway.grpcfront", "gateway.errors")))
    assert outside == []
    errors_uses = {
        node.attr
        for node in ast.walk(ast.parse(MODULES["gateway.errors"].read_text()))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "grpc"
    }
    assert errors_uses <= {"StatusCode"}


def _documented_modules() -> set[str]:
    return set(re.findall(r"^\| `(gateway[\w./]*\.py)` \|", ARCHITECTURE.read_text(), re.M))


def test_the_module_map_names_every_module_and_nothing_else() -> None:
    actual = {str(path.relative_to(REPO)) for path in MODULES.values()}
    documented = _documented_modules()
    assert documented, "the module map in docs/architecture.md was not found"
    assert sorted(actual - documented) == [], "modules missing from docs/architecture.md"
    assert sorted(documented - actual) == [], "docs/architecture.md names modules that do not exist"


@pytest.mark.parametrize("layer", sorted({_layer(m) for m in MODULES} - {"gateway"}))
def test_every_layer_has_a_row_in_the_layer_table(layer: str) -> None:
    assert layer in _documented_layers()
