"""cellvae.testing: what the tests and the benchmarks share lives in the project, and benchmarks import it from there,
never from tests/."""

import ast
from pathlib import Path

from cellvae.testing import live_servers, workflow

REPO = Path(__file__).resolve().parents[1]
TEST_MODULES = {path.stem for path in (REPO / "tests").glob("*.py")} | {"tests"}


def test_the_shared_paths_point_into_the_checkout():
    assert (workflow.REPO / "Snakefile").is_file() and workflow.TEST_CONFIG.is_file()
    assert (live_servers.SERVERS / "start_slurm.sh").is_file() and (live_servers.SERVERS / "slurm.conf.in").is_file()


def test_benchmarks_import_the_project_not_the_tests():
    for path in sorted((REPO / "benchmarks").glob("*.py")):
        tree = ast.parse(path.read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert not {name.split(".")[0] for name in imported} & TEST_MODULES, path.name
        assert '"tests"' not in path.read_text(), f"{path.name} puts tests/ on sys.path"
