"""The package's import rules (docs/architecture.md): no import circles, and no import from a lower
layer to a higher one or between two units of the same layer. And no module over 500 lines.

Every ``import`` statement of every module counts, also those inside functions, under
``if TYPE_CHECKING:`` or in a ``__main__`` block: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
ROOT = "magnet_audio"

#: The layers, lowest first: {unit: modules (a name covers its submodules)}. A module may import
#: modules of its own unit and of any unit of a lower layer, nothing else. The table of
#: docs/architecture.md is this one.
LAYERS: list[dict[str, list[str]]] = [
    {"base": ["errors", "version", "names", "utils", "validation", "audio", "checkpoints", "benchmarking",
              "cli_options", "distributed"]},
    {"codec": ["codec"], "conditioning": ["conditioning"], "data": ["data"]},
    {"lm": ["lm"]},
    {"decoding": ["decoding"]},
    {"models": ["", "genmodel", "models", "musicgen", "editing"]},  # "": the package itself (magnet_audio/__init__.py)
    {"training": ["training"], "evaluation": ["evaluation"]},
    {"interfaces": ["cli", "__main__", "edit_cli", "train", "app", "app_page", "app_edit", "data.cli",
                    "evaluation.cli", "training.cli"]},
]


def module_files() -> dict[str, Path]:
    modules = {}
    for path in sorted((SRC / ROOT).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_modules(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules that ``module`` imports (``from .a import b`` is ``a.b`` if that is a module)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in modules else prefix
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != module:
                found.add(target)
    return found


@functools.cache
def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {m: imported_modules(m, path, modules) for m, path in modules.items()}


def unit_of(module: str) -> tuple[int, str]:
    """(layer index, unit name) of a module: its longest matching entry in :data:`LAYERS`."""
    best = None
    for level, units in enumerate(LAYERS):
        for unit, names in units.items():
            for name in names:
                full = f"{ROOT}.{name}" if name else ROOT
                matches = module == full or (name and module.startswith(full + "."))
                if matches and (best is None or len(full) > best[0]):
                    best = (len(full), level, unit)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS (and to docs/architecture.md)")
    return best[1], best[2]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_relative_lazy_and_package_imports():
    graph = import_graph()
    assert "magnet_audio.errors" in graph["magnet_audio.codec.model"]          # from ..errors import ...
    assert "magnet_audio.codec.config" in graph["magnet_audio.codec.model"]    # from .config import ...
    assert "magnet_audio.models" in graph["magnet_audio.cli"]                  # inside cmd_generate
    assert "magnet_audio.lm.magnet" in graph["magnet_audio.lm"]                # a package's __init__


def test_cycle_finder_reports_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles():
    assert cycles(import_graph()) == []


def test_every_module_has_a_layer():
    for module in import_graph():
        unit_of(module)


@pytest.mark.parametrize("module,expected", [("magnet_audio", (4, "models")),
                                             ("magnet_audio.training.cli", (6, "interfaces")),
                                             ("magnet_audio.training.loop", (5, "training")),
                                             ("magnet_audio.codec.config", (1, "codec"))])
def test_layers_pick_the_most_specific_entry(module, expected):
    assert unit_of(module) == expected


def test_imports_go_down_the_layers():
    bad = []
    for module, targets in import_graph().items():
        level, unit = unit_of(module)
        for target in targets:
            target_level, target_unit = unit_of(target)
            if target_level > level or (target_level == level and target_unit != unit):
                bad.append(f"{module} ({unit}) imports {target} ({target_unit})")
    assert bad == []


def test_the_documented_layer_table_is_this_one():
    doc = (SRC.parent / "docs" / "architecture.md").read_text()
    for units in LAYERS:
        for unit, names in units.items():
            row = next((line for line in doc.splitlines() if line.startswith(f"| {unit} |")), None)
            assert row is not None, f"docs/architecture.md has no row for {unit}"
            for name in names:
                assert f"`{name or ROOT}`" in row, f"docs/architecture.md: {unit} lacks {name or ROOT}"


def test_modules_stay_under_500_lines():
    long = {m: n for m, path in module_files().items() if (n := len(path.read_text().splitlines())) > 500}
    assert long == {}


def test_tests_mirror_the_units():
    """tests/ mirrors the package (docs/architecture.md): a folder of tests is named after the unit
    it tests, and tests import tests/helpers.py, never conftest.py or another test module."""
    units = {unit for layer in LAYERS for unit in layer}
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and p.name[0] not in "._" and p.name != "fixtures"}
    assert folders <= units, f"test folders named after no unit: {sorted(folders - units)}"
    bad = []
    for path in sorted(TESTS.rglob("*.py")):
        if "fixtures" in path.relative_to(TESTS).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            bad += [f"{path.relative_to(TESTS)} imports {name}" for name in names
                    if name.split(".")[0] == "conftest" or name.split(".")[0].startswith("test_")]
    assert bad == []
