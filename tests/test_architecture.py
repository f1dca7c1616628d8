"""The core's layout is checked, not hoped for: stages import only from earlier stages, no
module imports another module's private names, and the public plugin API is what the docs say."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORE = REPO / "harness"


def _core_modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(CORE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        out.append((".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    return out


def _lint_imports() -> list[str]:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports is not installed: it comes with the dev extra (pip install -e '.[dev]')")
    return [exe, "--config", str(REPO / "pyproject.toml"), "--no-cache"]


def _lint_a_copy(tmp_path: Path, package: Path, module: str, line: str) -> subprocess.CompletedProcess:
    """lint-imports over a copy of the core (and of ``package``, when it is a plugin) with ``line`` appended to
    ``module`` of the copied ``package``."""
    for source in {CORE, package}:
        shutil.copytree(source, tmp_path / source.name, ignore=shutil.ignore_patterns("__pycache__"))
    with (tmp_path / package.name / module).open("a") as f:
        f.write(f"\n{line}\n")
    (tmp_path / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    return subprocess.run(_lint_imports()[:1] + ["--config", str(tmp_path / "pyproject.toml"), "--no-cache"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})


def test_lint_imports_keeps_the_layers_and_finds_no_cycle():
    done = subprocess.run(_lint_imports(), capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 kept, 0 broken" in done.stdout


def test_the_layers_contract_names_every_subpackage_of_the_core():
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["type"] == "layers")
    assert layers["exhaustive"] is True and layers["containers"] == ["harness"]
    named = {part.strip() for layer in layers["layers"] for part in layer.split("|")}
    children = {p.stem if p.is_file() else p.name for p in CORE.iterdir()
                if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert children == named


def test_lint_imports_fails_on_an_import_from_a_later_stage(tmp_path):
    """The contract bites: a copy of the core where measuring imports the suite breaks it."""
    done = _lint_a_copy(tmp_path, CORE, "measure/stats.py",
                        "from harness.suite import schema  # a measuring module reaching up into the suite")
    assert done.returncode != 0
    assert "harness.measure is not allowed to import harness.suite" in done.stdout


def test_no_module_imports_private_names_of_another():
    offenders = []
    for name, path in _core_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("harness"):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if private and node.module != name:
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} imports {private} from {node.module}")
    assert not offenders, "\n".join(offenders)


def test_core_modules_import_the_stage_that_defines_a_name_not_the_front_door():
    """``harness/__init__.py`` re-exports the plugin API; a core module importing from it would
    hide its real dependency from the layers contract (and make an import cycle)."""
    offenders = []
    for name, path in _core_modules():
        if name == "harness":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "harness" and node.level == 0:
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
            if isinstance(node, ast.Import) and any(a.name == "harness" for a in node.names):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, offenders


def test_every_package_and_module_of_the_core_says_what_it_holds():
    missing = [str(path.relative_to(REPO)) for name, path in _core_modules()
               if path.name != "__main__.py" and not ast.get_docstring(ast.parse(path.read_text()))]
    assert not missing, missing


def test_lint_imports_fails_when_a_plugin_imports_a_stage_module(tmp_path):
    """The plugin contract bites: a copy of a first-party plugin that reaches past the front door breaks it."""
    import optbench_prune

    done = _lint_a_copy(tmp_path, Path(optbench_prune.__file__).parent, "plugin.py",
                        "from harness.plugin.types import Method  # past the front door")
    assert done.returncode != 0
    assert "optbench_prune.plugin -> harness.plugin.types" in done.stdout


def test_no_function_of_the_core_is_longer_than_80_lines():
    """A function a reader can hold in their head: 80 lines at most (docstring included)."""
    long = []
    for name, path in _core_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 80:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({length} lines)")
    assert not long, "\n".join(long)


def _documented_modules() -> dict[str, set[str]]:
    """Per package row of docs/architecture.md's stage table, the module names it gives in backticks."""
    import re

    out: dict[str, set[str]] = {}
    for line in (REPO / "docs" / "architecture.md").read_text().splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) < 5 or not cells[2].startswith("`harness"):
            continue
        for package in re.findall(r"`(harness/[^`]*)`", cells[2]):
            out.setdefault(package.rstrip("/"), set()).update(re.findall(r"`([a-z_]+)`", cells[3]))
    return out


def test_the_architecture_page_names_every_module_of_the_core():
    documented = _documented_modules()
    missing, stale = [], []
    for package in sorted(p for p in CORE.iterdir() if (p / "__init__.py").is_file()):
        key = f"harness/{package.name}"
        modules = {m.stem for m in package.glob("*.py") if m.stem != "__init__"}
        named = documented.get(key, set())
        missing += [f"{key}/{m}.py" for m in sorted(modules - named)]
        stale += [f"{key}/{m}" for m in sorted(named - modules - {"assets"})]
    assert not missing, f"modules docs/architecture.md does not name: {missing}"
    assert not stale, f"docs/architecture.md names modules that do not exist: {stale}"


def test_the_public_plugin_api_is_exported_from_harness():
    import harness

    for name in ("Method", "MethodContext", "Model", "TrainableParams", "Dataset", "DatasetSplits", "Backend",
                 "BackendSession", "MemoryReading", "Budget", "time_calls", "Params", "NoParams", "Skip",
                 "ModelRef", "TrainingContext", "FitResult", "hookimpl", "__version__"):
        assert hasattr(harness, name), name
    assert sorted(harness.__all__) == sorted(n for n in harness.__all__ if hasattr(harness, n))
