"""The plugin pages' examples work as written, installed the way a user installs them.

The four example plugins of docs/plugins/{methods,models,datasets,backends}.md and the
plugin template are written out of the docs (and the repository) into fresh folders,
pip-installed into a target folder of their own (so their entry points reach only the
subprocesses given that folder, never this test session), listed by ``optbench
plugins``, run together in the suite of docs/plugins/index.md, and their own tests run
with the fixtures while they are installed.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "plugins"
#: page -> (distribution, entry point, module) of its installed example
EXAMPLES = {
    "methods.md": ("optbench-fp16-round", "fp16_round", "optbench_fp16_round"),
    "models.md": ("optbench-convmixer", "convmixer", "optbench_convmixer"),
    "datasets.md": ("optbench-wine", "wine", "optbench_wine"),
    "backends.md": ("optbench-channels-last", "channels_last", "optbench_channels_last"),
}
FILE_BLOCK = re.compile(r"^`([\w.-]+\.(?:py|toml))`\n```(?:python|toml)\n(.*?)^```", re.S | re.M)

pytestmark = pytest.mark.slow


def files_on(page: str) -> dict[str, str]:
    """Every file a page spells out: a line holding `name.py` or `name.toml`, then its fenced block."""
    found = dict(FILE_BLOCK.findall((DOCS / page).read_text()))
    assert found, page
    return found


def env_with(target: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OPTBENCH_DISABLE_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([str(target), *filter(None, [env.get("PYTHONPATH")])])
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The four examples and the template, written out and pip-installed into one target folder."""
    root = tmp_path_factory.mktemp("docs-examples")
    folders = []
    for page in EXAMPLES:
        folder = root / page.removesuffix(".md")
        folder.mkdir()
        for name, text in files_on(page).items():
            (folder / name).write_text(text)
        folders.append(folder)
    template = root / "template"
    shutil.copytree(REPO / "plugin-template", template, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    folders.append(template)
    target = root / "site-packages"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--no-build-isolation", "--no-index", "--target", str(target), *map(str, folders)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return root, target


def test_each_page_spells_out_a_whole_distribution():
    for page, (dist, entry, module) in EXAMPLES.items():
        files = files_on(page)
        project = __import__("tomllib").loads(files["pyproject.toml"])
        assert project["project"]["name"] == dist
        assert project["project"]["entry-points"]["optbench"] == {entry: module}
        assert f"{module}.py" in files and any(n.startswith("test_") for n in files), page


def test_optbench_plugins_lists_every_installed_example(installed, cli):
    _, target = installed
    done = cli("plugins", "--json", env=env_with(target))
    assert done.returncode == 0, done.stderr
    plugins = {p["plugin"]: p for p in json.loads(done.stdout)}
    expected = {entry: dist for dist, entry, _ in EXAMPLES.values()} | {"myplugin": "optbench-myplugin"}
    for entry, dist in expected.items():
        assert entry in plugins, sorted(plugins)
        assert plugins[entry]["distribution"] == dist and plugins[entry]["error"] is None
    names = {o["name"]: o for p in plugins.values() for o in p["registers"]}
    assert names["example.fp16_round"]["kind"] == "quantizer"
    assert [p["name"] for p in names["example.convmixer"]["params"]] == [
        "epochs", "lr", "batch_size", "dim", "depth", "kernel_size", "patch_size"]
    assert names["example.convmixer"]["training_defaults"] == {}
    assert names["example.wine"]["type"] == "dataset"
    assert names["example.channels-last"]["type"] == "backend"
    assert names["myplugin.threshold"]["kind"] == "pruner"
    text = cli("plugins", env=env_with(target)).stdout
    assert "optbench-fp16-round 0.1.0  (plugin 'fp16_round', optbench_fp16_round)" in text


def test_the_four_examples_run_together_in_the_documented_suite(installed, cli, tmp_path, optbench_runs_suites):
    _, target = installed
    page = (DOCS / "index.md").read_text()
    suite = re.search(r"## All four examples in one suite.*?```yaml\n(.*?)```", page, re.S).group(1)
    (tmp_path / "examples.yaml").write_text(suite)
    env = env_with(target)
    validated = cli("validate", "examples.yaml", cwd=tmp_path, env=env)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "18 cells" in validated.stdout, validated.stdout
    done = cli("run", "examples.yaml", "--results", str(tmp_path / "results"), "-q", cwd=tmp_path, env=env,
               timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    (records_file,) = (tmp_path / "results").glob("plugin-examples/*/records.jsonl")
    records = [json.loads(line) for line in records_file.read_text().splitlines()]
    assert len(records) == 36
    assert all(r["status"] == "ok" for r in records), [(r["cell_id"], r["error"]) for r in records if r["error"]]
    assert {r["method"] for r in records} == {"baseline", "example.fp16_round"}
    assert {r["backend"] for r in records} == {"cpu", "example.channels-last"}
    assert {(r["model"], r["dataset"]) for r in records} == {
        ("mlp", "digits"), ("example.convmixer", "digits"), ("mlp", "example.wine")}
    for r in records:
        if r["method"] == "baseline":
            assert r["accuracy"] > 0.8, (r["model"], r["dataset"], r["backend"], r["accuracy"])
        else:
            assert abs(r["accuracy_delta"]) < 0.05 and 1.3 < r["size_ratio"] < 2.1  # 16-bit storage + container
        if r["backend"] == "example.channels-last":
            assert r["memory_format"] == "channels_last"


def test_the_examples_own_tests_pass_with_the_plugins_installed(installed):
    """Each page's test, run by pytest in a fresh process where its plugin is installed (the test
    files sit apart from the plugin sources, so the installed copies are what they import)."""
    root, target = installed
    tests = root / "tests-run"
    tests.mkdir(exist_ok=True)
    for page in EXAMPLES:
        for name, text in files_on(page).items():
            if name.startswith("test_"):
                (tests / name).write_text(text)
    # the methods page's training-time example is not an installed distribution: it sits
    # beside its test, as an in-test plugin, and is registered by optbench_plugin
    (tests / "optbench_nadam.py").write_text(files_on("methods.md")["optbench_nadam.py"])
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
                          capture_output=True, text=True, cwd=tests, env=env_with(target), timeout=900)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    counts = re.search(r"(\d+) passed", done.stdout)
    assert counts and int(counts.group(1)) == 7, done.stdout[-2000:]


def test_the_plugin_template_installs_and_its_tests_pass(installed):
    root, target = installed
    copy = root / "template-tests"
    shutil.copytree(root / "template" / "tests", copy, dirs_exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(copy)],
                          capture_output=True, text=True, cwd=copy, env=env_with(target), timeout=600)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert "2 passed" in done.stdout, done.stdout[-2000:]


def test_the_template_suite_names_validate(installed, cli, tmp_path):
    """A suite naming the template's method validates once the template is installed."""
    _, target = installed
    suite = {"name": "t", "datasets": ["digits"], "models": ["mlp"],
             "methods": [{"name": "myplugin.threshold", "params": {"threshold": [0.5, 1.0]}}]}
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(suite))
    done = cli("validate", "t.yaml", cwd=tmp_path, env=env_with(target))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 cells" in done.stdout


def test_the_own_model_page_runs_as_written(cli, tmp_path, optbench_runs_suites):
    """docs/your-model.md: its model file and suite, run offline; its error example is what validate prints."""
    page = (REPO / "docs" / "your-model.md").read_text()
    model = re.search(r"`mymodel.py`\n```python\n(.*?)```", page, re.S).group(1)
    suite = re.search(r"`mine.yaml`\n```yaml\n(.*?)```", page, re.S).group(1)
    project = tmp_path / "project"
    project.mkdir()
    (project / "mymodel.py").write_text(model)
    (project / "mine.yaml").write_text(suite)
    env = {"OPTBENCH_CACHE_DIR": str(tmp_path / "cache")}
    assert cli("validate", "mine.yaml", cwd=project, env=env).returncode == 0
    done = cli("run", "mine.yaml", "--results", str(tmp_path / "results"), "-q", cwd=project, env=env)
    assert done.returncode == 0, done.stderr
    (records_file,) = (tmp_path / "results").glob("mine/*/records.jsonl")
    records = [json.loads(line) for line in records_file.read_text().splitlines()]
    assert len(records) == 10 and all(r["status"] == "ok" for r in records)
    baseline = next(r for r in records if r["method"] == "baseline")
    assert baseline["model"] == "my-mlp" and baseline["accuracy"] > 0.9
    assert all(r["cosine"] is not None and r["agreement"] is not None for r in records)

    broken = re.search(r"which uses `nn` before importing it,\n\n```python\n(.*?)```", page, re.S).group(1)
    (project / "mymodel.py").write_text(broken)
    shown = re.search(r"prints:\n\n```\n(.*?)```", page, re.S).group(1)
    done = cli("validate", "mine.yaml", cwd=project, env=env)
    assert done.returncode == 2
    got = done.stderr.replace(str(project.resolve()), "/home/me/project").splitlines()
    assert got[:2] == shown.splitlines()[:2]
    assert got[2].startswith("    given:    '")


def test_the_own_images_example_runs_as_written(cli, tmp_path, optbench_runs_suites):
    """docs/your-model.md, "Your own images": its script writes the PNGs, its suite runs on them."""
    page = (REPO / "docs" / "your-model.md").read_text()
    section = page[page.index("## Your own images"):]
    suite = re.search(r"`images.yaml`\n```yaml\n(.*?)```", section, re.S).group(1)
    script = re.search(r"write scikit-learn's\ndigits out as PNGs:\n\n```python\n(.*?)```", section, re.S).group(1)
    project = tmp_path / "project"
    project.mkdir()
    (project / "images.yaml").write_text(suite)
    (project / "make_pngs.py").write_text(script)
    import subprocess
    import sys

    subprocess.run([sys.executable, "make_pngs.py"], cwd=project, check=True, timeout=120)
    assert sum(1 for _ in (project / "digit-pngs").rglob("*.png")) == 1797
    done = cli("run", "images.yaml", "--results", str(tmp_path / "results"), "-q", cwd=project,
               env={"OPTBENCH_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    (records_file,) = (tmp_path / "results").glob("images/*/records.jsonl")
    records = [json.loads(line) for line in records_file.read_text().splitlines()]
    assert len(records) == 6 and all(r["status"] == "ok" for r in records)
    assert all(r["fidelity_n"] == 450 for r in records)  # the 450 held-out PNGs of the page's sentence
    assert "1,347 training PNGs" in section and "450 held-out" in section
    assert next(r for r in records if r["method"] == "baseline")["accuracy"] > 0.9


def test_the_saved_tensors_and_exported_model_example_runs_as_written(cli, tmp_path, optbench_runs_suites):
    """docs/your-model.md, "Saved tensors and a saved model": its script saves and exports, its suite runs."""
    import subprocess
    import sys

    page = (REPO / "docs" / "your-model.md").read_text()
    section = page[page.index("## Saved tensors and a saved model"):page.index("## Your own dataset code")]
    script = re.search(r"`save_them.py`\n```python\n(.*?)```", section, re.S).group(1)
    suite = re.search(r"`saved.yaml`\n```yaml\n(.*?)```", section, re.S).group(1)
    (tmp_path / "save_them.py").write_text(script)
    (tmp_path / "saved.yaml").write_text(suite)
    subprocess.run([sys.executable, "save_them.py"], cwd=tmp_path, check=True, timeout=300)
    done = cli("run", "saved.yaml", "--results", str(tmp_path / "results"), "-q", cwd=tmp_path,
               env={"OPTBENCH_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    (records_file,) = (tmp_path / "results").glob("saved/*/records.jsonl")
    records = {(r["method"], r["batch_size"]): r for r in map(json.loads, records_file.read_text().splitlines())}
    assert len(records) == 6
    baseline, half = records["baseline", 32], records["quantize.half", 32]
    assert baseline["status"] == half["status"] == "ok" and baseline["fidelity_n"] == 512
    assert baseline["accuracy"] > 0.9 and abs(half["accuracy"] - baseline["accuracy"]) < 0.02 and half["cosine"] > 0.99
    assert records["quantize.dynamic_int8", 1]["status"] == "skipped"
    assert "597 held-out digits" in section
