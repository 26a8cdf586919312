"""The package's layering (ARCHITECTURE.md): each stage's subpackage imports only earlier stages, no import cycles,
and no product module imports the research code in cellvae.study."""

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cellvae"
STAGES = ["core", "data", "imaging", "model", "evaluation", "profiling"]  # each may import the ones before it
ABOVE = {"operations": STAGES[:1], "cli": STAGES + ["operations"], "testing": STAGES + ["operations", "cli"]}


def imports(path: Path) -> set[str]:
    """The cellvae modules that a module imports (at any depth: inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cellvae"):
            names = [f"{node.module}.{alias.name}" for alias in node.names]  # a module, or a name in one
            found.update(names if node.module == "cellvae" else [node.module, *names])
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("cellvae"))
    return found


def room(module: str) -> str | None:
    """The subpackage of a dotted cellvae name (cellvae.model.vae -> model); None for cellvae's own entry points."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else None


@functools.cache
def modules() -> dict[str, set[str]]:
    return {
        ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts): imports(path)
        for path in PACKAGE.rglob("*.py")
    }


def test_the_package_is_rooms_only():
    """No module lies loose in cellvae/ but the entry point; every subpackage is a known room."""
    loose = {path.name for path in PACKAGE.glob("*.py")} - {"__init__.py", "__main__.py"}
    assert loose == set()
    rooms = {path.name for path in PACKAGE.iterdir() if path.is_dir() and (path / "__init__.py").is_file()}
    assert rooms == set(STAGES) | set(ABOVE) | {"study"}


@pytest.mark.parametrize("module, imported", [(m, i) for m, found in sorted(modules().items()) for i in sorted(found)])
def test_a_module_imports_only_its_own_or_earlier_rooms(module, imported):
    mine, theirs = room(module), room(imported)
    if theirs in (None, mine) or mine in (None, "study"):
        return
    assert theirs != "study", f"{module} imports the research code {imported}"
    allowed = STAGES[: STAGES.index(mine)] if mine in STAGES else ABOVE[mine]
    assert theirs in allowed, f"{module} ({mine}) imports {imported} ({theirs}): only {allowed} may be imported"


def test_no_import_cycles():
    graph = {module: {i for i in found if i in modules() and i != module} for module, found in modules().items()}
    state = {}

    def visit(module, path):
        state[module] = "open"
        for child in graph[module]:
            assert state.get(child) != "open", " -> ".join([*path, child])
            if child not in state:
                visit(child, [*path, child])
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module, [module])
