"""The conda envs of envs/ can run their rules (snakemake --sdm conda), checked without conda: every env file
parses, every rule that runs a job names one, and every `script:` rule's env has Python >= 3.11 (Snakemake 9
runs the script's preamble in it), the project (installed by the env's post-deploy script) and every package
that the script and the cellvae modules it imports need (imports read with ast). Conda channels are not
reachable from the machines the tests run on, so the envs themselves are never built here. Also the workflow
catalog's files: .snakemake-workflow-catalog.yml and config/README.md."""

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml

from cellvae.testing.workflow import REPO

ENVS = sorted((REPO / "envs").glob("*.yaml"))
PIN_FILES = [*ENVS, REPO / "envs" / "Dockerfile"]  # pins checked against envs/requirements.txt
RULE_FILES = [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]
JOB_DIRECTIVES = ("script", "shell", "run", "notebook", "wrapper")

# import name -> package name (conda and PyPI agree on these)
PACKAGE_OF_IMPORT = {"PIL": "pillow", "skimage": "scikit-image", "sklearn": "scikit-learn", "yaml": "pyyaml"}
# packages an env entry brings with it
ALSO_PROVIDED = {"boto3": {"botocore", "urllib3"}, "matplotlib-base": {"matplotlib"}}
# one package under two names: the CUDA build of TensorFlow in the GPU env and the job image, the CPU one in .venv
SAME_PACKAGE = {"tensorflow": "tensorflow-cpu"}
# Keras 3 imports its backend itself; the envs use TensorFlow
IMPLIED = {"keras": {"tensorflow"}}
# imported inside functions only where used: the Keras backends (tensorflow comes with keras, see IMPLIED)
LAZY_WHERE_USED = {"tensorflow", "jax", "torch", "jsonschema"}  # jsonschema: only where a config is checked


def rules() -> dict[str, dict[str, str]]:
    """Each rule and checkpoint of the workflow: its directives that name a file (conda, script, ...) and
    whether it reads cellprofiler/executable."""
    found = {}
    for path in RULE_FILES:
        text = path.read_text()
        for match in re.finditer(r"^( *)(?:rule|checkpoint) (\w+):\n((?:\1 +.*\n|\s*\n)*)", text, re.M):
            body = match.group(3)
            directives = dict(re.findall(r"^ +(\w+):\n +\"([^\"]+)\"", body, re.M))
            directives["runs"] = any(re.search(rf"^ +{name}:", body, re.M) for name in JOB_DIRECTIVES)
            directives["cellprofiler"] = "cellprofiler/executable" in body
            directives["file"] = path.name
            found[match.group(2)] = directives
    return found


def spec_name(spec: str) -> str:
    return re.split(r"[=<>!~\[\s]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")


def env_specs(env: dict) -> list[str]:
    """Conda and pip dependency specs of an env file."""
    specs = []
    for entry in env["dependencies"]:
        specs.extend(entry["pip"] if isinstance(entry, dict) else [entry])
    return specs


def provided(env: dict) -> set[str]:
    names = {spec_name(spec) for spec in env_specs(env)}
    return names.union(*(ALSO_PROVIDED.get(name, set()) for name in names))


def imports(path: Path) -> list[tuple[str, bool]]:
    """(absolute module name, imported inside a function) of every import of a Python file."""
    found = []

    def visit(node, lazy):
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, lazy) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                package = ".".join(["cellvae", *path.relative_to(REPO / "cellvae").parts[:-1]]) if child.level else ""
                module = ".".join(filter(None, [package, child.module]))
                found.append((module, lazy))
                found.extend((f"{module}.{alias.name}", lazy) for alias in child.names)
            visit(child, inner)

    visit(ast.parse(path.read_text(), filename=str(path)), False)
    return found


def needed_packages(script: Path) -> set[str]:
    """Top-level packages (by package name) that a script and the cellvae modules it reaches import."""
    needed, seen, todo = set(), set(), [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module, lazy in imports(path):
            top = module.split(".")[0]
            if top == "cellvae":
                target = REPO.joinpath(*module.split(".")).with_suffix(".py")
                if target.exists():
                    todo.append(target)
            elif top not in sys.stdlib_module_names and not (lazy and top in LAZY_WHERE_USED):
                needed.add(top)
    needed |= set().union(*(IMPLIED.get(top, set()) for top in needed))
    return {PACKAGE_OF_IMPORT.get(top, top).lower() for top in needed}


def load_env(relative: str) -> dict:
    return yaml.safe_load((REPO / "rules" / relative).resolve().read_text())


def post_deploy(env_file: Path) -> str:
    script = env_file.with_name(env_file.stem + ".post-deploy.sh")
    return script.read_text() if script.exists() else ""


@pytest.mark.parametrize("path", ENVS, ids=lambda path: path.name)
def test_env_file_parses(path):
    env = yaml.safe_load(path.read_text())
    assert isinstance(env, dict), f"{path}: not a YAML mapping"
    assert isinstance(env.get("name"), str), f"{path}: no name"
    assert env.get("channels") and all(isinstance(c, str) for c in env["channels"]), f"{path}: no channels"
    assert "defaults" not in env["channels"], f"{path}: the defaults channel mixes with conda-forge badly"
    assert env.get("dependencies"), f"{path}: no dependencies"
    for entry in env["dependencies"]:
        assert isinstance(entry, str) or set(entry) == {"pip"}, f"{path}: unexpected entry {entry!r}"


def test_rules_are_found():
    found = rules()
    assert {"all", "train_vae", "select_images", "synthesize_bbbc021", "segmentation"} <= set(found)
    assert not found["all"]["runs"] and found["train_vae"]["runs"]


@pytest.mark.parametrize("rule", sorted(rules()))
def test_rule_env_runs_its_script(rule):
    directives = rules()[rule]
    if not directives["runs"]:
        return
    assert "conda" in directives, f"{directives['file']}: rule {rule} has no conda: env"
    env_file = (REPO / "rules" / directives["conda"]).resolve()
    env = load_env(directives["conda"])
    python = [spec for spec in env_specs(env) if spec_name(spec) == "python"]
    version = re.search(r"(\d+)\.(\d+)", python[0]) if python else None
    assert version and tuple(map(int, version.groups())) >= (3, 11), (
        f"{env_file.name}: rule {rule} runs a script under Snakemake 9, which needs python>=3.11 (has {python})"
    )
    assert "envs/install_project.sh" in post_deploy(env_file), (
        f"{env_file.name}: no {env_file.stem}.post-deploy.sh installing the project (bash envs/install_project.sh)"
    )
    if "script" in directives:
        script = (REPO / "rules" / directives["script"]).resolve()
        missing = needed_packages(script) - provided(env)
        assert not missing, f"{env_file.name}: rule {rule} ({script.name}) imports {sorted(missing)}; add them"
    if directives["cellprofiler"]:
        assert "install_cellprofiler.sh" in post_deploy(env_file) and "bin/cellprofiler" in post_deploy(env_file), (
            f"{env_file.name}: rule {rule} calls CellProfiler, which its post-deploy script does not install"
        )


def test_project_is_installed_editable():
    script = (REPO / "envs" / "install_project.sh").read_text()
    assert re.search(r"pip install .*--no-deps.* -e \.$", script, re.M)


def requirement_pins() -> dict[str, str]:
    """{package: version} of envs/requirements.txt, the one source of the versions."""
    pins = re.findall(r"^([\w.-]+)(?:\[[^\]]*\])?==(\S+)", (REPO / "envs" / "requirements.txt").read_text(), re.M)
    return {name.lower(): version for name, version in pins}


def pinned_specs(path: Path) -> list[str]:
    """The version specs of an env file, or the `name==version` ones of another file (the Dockerfile)."""
    if path.suffix == ".yaml":
        return env_specs(yaml.safe_load(path.read_text()))
    return re.findall(r"[\w.-]+(?:\[[^\]]*\])?==[\w.]+", path.read_text())


@pytest.mark.parametrize("path", PIN_FILES, ids=lambda path: path.name)
def test_pins_agree_with_requirements(path):
    """A package pinned both in an env (or the job image) and in envs/requirements.txt has the same version."""
    pins = requirement_pins()
    checked = []
    for spec in pinned_specs(path):
        name = spec_name(spec).removesuffix("-base")
        name = SAME_PACKAGE.get(name, name)
        version = re.search(r"={1,2}\s*([\w.]+)", spec)
        if name in pins and version:
            assert version.group(1) == pins[name], f"{path.name}: {spec}, but envs/requirements.txt has {pins[name]}"
            checked.append(name)
    assert checked, f"{path.name}: no pin of envs/requirements.txt found (a spec this test cannot read?)"


def test_the_installers_own_pins_agree_everywhere():
    """pip and setuptools (not in envs/requirements.txt) have one version across the files that pin them."""
    files = [REPO / "Makefile", *PIN_FILES, *sorted((REPO / "envs").glob("*.sh"))]
    for tool in ("pip", "setuptools"):
        found = {
            (path.name, version)
            for path in files
            for version in re.findall(rf"(?<![\w-]){tool}={{1,2}}([\d.]+)", path.read_text())
        }
        assert len({version for _, version in found}) == 1, f"{tool} pinned at different versions: {sorted(found)}"


def test_needed_packages_reads_nested_imports():
    """The import reader sees module-level imports through cellvae modules and skips stdlib and lazy backends."""
    needed = needed_packages(REPO / "scripts" / "train_vae.py")
    assert {"keras", "tensorflow", "numpy", "pillow"} <= needed
    assert not {"jax", "torch", "json", "cellvae"} & needed


def test_catalog_usage_and_config_readme():
    """The Snakemake workflow catalog's standardized usage: its YAML, and config/README.md naming every key."""
    usage = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    assert set(usage["mandatory-flags"]) == {"desc", "flags"}
    assert set(usage["software-stack-deployment"]) == {"conda", "apptainer", "apptainer+conda", "report"}
    keys = yaml.safe_load((REPO / "config" / "config.schema.yaml").read_text())["properties"]
    readme = (REPO / "config" / "README.md").read_text()
    assert not [key for key in keys if f"`{key}`" not in readme], "config/README.md: describe these keys"
