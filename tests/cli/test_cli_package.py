"""The CLI package (cellvae/cli/): one module per command, what they share in cellvae/cli/common.py, and no command
module importing another (nor library code, scripts or benchmarks importing a command module), read from the
sources' import statements with ast."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from cellvae.cli import COMMANDS

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "cellvae" / "cli"
SHARED = {"__init__", "common"}  # the package's main and what the commands share
COMMAND_MODULES = sorted(f"cellvae.cli.{path.stem}" for path in PACKAGE.glob("*.py") if path.stem not in SHARED)


def imported_modules(source: str, package: str) -> set[str]:
    """Every module an import statement of `source` names, anywhere in it (also inside functions): `import a.b`,
    `from a.b import c` (a.b, and a.b.c in case c is a module) and relative imports resolved in `package`."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1]) if node.level else ""
            module = ".".join(part for part in (base, node.module) if part)
            names |= {module} | {f"{module}.{alias.name}" for alias in node.names}
    return names


def command_imports(path: Path, package: str, commands=COMMAND_MODULES) -> list[str]:
    """The command modules (cellvae.cli.<command>, or the old cellvae.cli_<command>) that path imports."""
    found = imported_modules(path.read_text(), package)
    own = f"{package}.{path.stem}"
    return sorted(name for name in found if (name in commands and name != own) or name.startswith("cellvae.cli_"))


@pytest.mark.parametrize(
    "source",
    [
        "from cellvae.cli.evaluate import model_inputs",
        "from cellvae.cli import evaluate",
        "import cellvae.cli.evaluate",
        "from . import evaluate",
        "from .evaluate import model_inputs",
        "def run(args):\n    from cellvae.cli_evaluate import model_inputs",
    ],
)
def test_the_check_sees_every_way_of_importing_a_command_module(tmp_path, source):
    module = tmp_path / "embed.py"
    module.write_text(source)
    found = command_imports(module, "cellvae.cli", {"cellvae.cli.embed", "cellvae.cli.evaluate"})
    assert found and all("evaluate" in name for name in found), found
    module.write_text(source.replace("cli_evaluate", "cli.evaluate").replace("evaluate", "common"))
    assert command_imports(module, "cellvae.cli", {"cellvae.cli.embed", "cellvae.cli.evaluate"}) == []


def test_every_command_is_one_module_of_the_package():
    assert sorted(module for module, _ in COMMANDS.values()) == COMMAND_MODULES
    assert len(COMMAND_MODULES) == len(COMMANDS) >= 7


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_no_command_module_imports_another(module):
    path = PACKAGE / f"{module.rsplit('.', 1)[1]}.py"
    assert command_imports(path, "cellvae.cli") == [], f"{path}: import what commands share from cellvae.cli.common"


def test_no_library_script_or_benchmark_imports_a_command_module():
    places = [*(REPO / "cellvae").glob("*.py"), *(REPO / "scripts").glob("*.py"), *(REPO / "benchmarks").glob("*.py")]
    places += [*PACKAGE.glob("common.py"), *(REPO / "tests").glob("*.py")]
    offenders = {
        str(path.relative_to(REPO)): found
        for path in places
        if (found := command_imports(path, ".".join(path.relative_to(REPO).parent.parts)))
    }
    assert not offenders, f"a command module is no library; move what they use to cellvae/cli/common.py: {offenders}"


def test_the_library_does_not_import_the_cli():
    """The rules' jobs run library modules (the fetch jobs cellvae.data.sources) in envs without the commands' packages:
    what a library module shares with the commands (the bounded number types) lives in the library
    (cellvae.core.option_types)."""
    offenders = {}
    for path in (REPO / "cellvae").glob("*.py"):
        found = sorted(name for name in imported_modules(path.read_text(), "cellvae") if name.startswith("cellvae.cli"))
        if found and path.name != "__main__.py":
            offenders[path.name] = found
    assert offenders == {}


def test_the_shared_module_leaves_image_reading_and_baselines_to_the_commands_that_use_them():
    """fetch, cost and aws import cellvae.cli.common: it must not pull in image reading (scikit-image) or the
    baselines (scikit-learn) that only train, evaluate and embed need."""
    heavy = [
        "cellvae.imaging.images",
        "cellvae.imaging.shards",
        "cellvae.evaluation.baselines",
        "cellvae.evaluation.metrics",
    ]
    heavy += ["skimage", "sklearn", "tensorflow"]
    probe = f"import sys, cellvae.cli.common; print(sorted(set({heavy!r}) & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout
