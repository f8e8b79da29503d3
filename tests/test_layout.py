"""The package's layout: lazy top-level names, imports that point one way (docs/architecture.md), no cycle."""

import ast
import json
import pathlib
import re
import sys

import pytest
from process_group import run_killing_group

import hf_genarm

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE_DIR = REPO_ROOT / "hf_genarm"
ARCHITECTURE_PAGE = REPO_ROOT / "docs" / "architecture.md"


def module_name(path: pathlib.Path, root: pathlib.Path = REPO_ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: pathlib.Path, modules: set[str], root: pathlib.Path = REPO_ROOT) -> set[str]:
    """Package modules that `path` imports anywhere (module level or inside functions), resolved to module names."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "hf_genarm")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "hf_genarm":
                continue
            for alias in node.names:  # `from . import demo` imports a module, `from .x import y` a name of x
                found.add(f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source)
    return found


@pytest.fixture(scope="module")
def import_graph() -> dict[str, set[str]]:
    paths = [path for path in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in path.parts]
    modules = {module_name(path) for path in paths}
    return {module_name(path): imported_modules(path, modules) - {module_name(path)} for path in paths}


def documented_layers() -> dict[str, int]:
    """Top-level module -> layer number, from the table of docs/architecture.md."""
    layers = {}
    for row in re.findall(r"^\| (\d)\. [^|]+\| ([^|]+) \|", ARCHITECTURE_PAGE.read_text(encoding="utf-8"), re.M):
        for name in re.findall(r"`([\w.]+)`", row[1]):
            layers[name] = int(row[0])
    return layers


def top_level(module: str) -> str:
    return module.split(".")[1]


def test_no_module_imports_the_package_root_back(import_graph):
    importers = sorted(
        module for module, imports in import_graph.items() if module != "hf_genarm" and "hf_genarm" in imports
    )
    assert importers == [], f"{importers} import the package root; import from the defining module or _version"


def test_the_package_has_no_import_cycle(import_graph):
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for imported in sorted(import_graph.get(module, ())):
            if state.get(imported) == "open":
                cycle = [*path[path.index(imported) :], imported]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if imported not in state:
                visit(imported, [*path, imported])
        state[module] = "done"

    for module in sorted(import_graph):
        if module != "hf_genarm" and module not in state:
            visit(module, [module])


def test_every_module_is_in_the_architecture_page(import_graph):
    layers = documented_layers()
    missing = sorted({top_level(module) for module in import_graph if module != "hf_genarm"} - set(layers))
    assert missing == [], f"add {missing} to the table of docs/architecture.md"
    stale = sorted(set(layers) - {top_level(module) for module in import_graph if module != "hf_genarm"})
    assert stale == [], f"docs/architecture.md lists modules that do not exist: {stale}"


def test_imports_point_down_the_documented_layers(import_graph):
    layers = documented_layers()
    upward = [
        f"{module} (layer {layers[top_level(module)]}) imports {imported} (layer {layers[top_level(imported)]})"
        for module, imports in sorted(import_graph.items())
        if module != "hf_genarm"
        for imported in sorted(imports - {"hf_genarm"})
        if layers.get(top_level(imported), 0) < layers.get(top_level(module), 0)
    ]
    assert upward == []


def test_the_layer_check_sees_function_level_and_relative_imports(tmp_path):
    package = tmp_path / "hf_genarm"
    (package / "demo").mkdir(parents=True)
    source = "from ..modeling import X\nfrom . import settings\n\ndef f():\n    from hf_genarm import cli\n"
    (package / "demo" / "run.py").write_text(source)
    found = imported_modules(package / "demo" / "run.py", {"hf_genarm.demo.settings", "hf_genarm.cli"}, tmp_path)
    assert found == {"hf_genarm.modeling", "hf_genarm.demo.settings", "hf_genarm.cli"}


HEAVY_MODULES = ("hf_genarm.trainer", "hf_genarm.data", "datasets", "matplotlib", "hf_genarm.cli", "hf_genarm.demo")


def loaded_after(statement: str) -> list[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    output = run_killing_group([sys.executable, "-c", code], timeout=300, check=True, cwd=REPO_ROOT)
    return json.loads(output.stdout.splitlines()[-1])


@pytest.mark.slow
def test_importing_the_processor_and_reward_model_loads_no_training_plotting_cli_or_demo_code():
    loaded = loaded_after("from hf_genarm import GenARMLogitsProcessor, AutoregressiveRewardModel")
    assert "hf_genarm.logits_process" in loaded and "hf_genarm.modeling" in loaded
    assert [module for module in HEAVY_MODULES if module in loaded] == []


def test_importing_the_package_loads_no_submodule_until_a_name_is_used():
    loaded = loaded_after("import hf_genarm")
    assert [module for module in loaded if module.startswith("hf_genarm.")] == ["hf_genarm._version"]
    assert "torch" not in loaded


def test_every_public_name_resolves_to_its_module_and_dir_lists_it():
    for name in hf_genarm.__all__:
        value = getattr(hf_genarm, name)
        if name != "__version__":
            assert value.__module__.startswith("hf_genarm."), name
        assert name in dir(hf_genarm)
    with pytest.raises(AttributeError, match="no attribute 'NotAName'"):
        hf_genarm.NotAName  # noqa: B018


def test_the_version_matches_the_installed_distribution():
    from importlib.metadata import version

    assert hf_genarm.__version__ == version("hf-genarm")
