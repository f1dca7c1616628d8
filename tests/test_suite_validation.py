"""Bad input: every class gives file, YAML path, line, expected/given, exit code 2, no traceback."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.registry.manager import PluginManager
from harness.suite.loader import parse_suite
from harness.suite.matrix import build_matrix

VALID = """\
name: t
datasets: [digits]
models:
  - name: mlp
methods:
  - name: prune.magnitude
    params: {sparsity: [0.5, 0.9]}
"""


def validate(capsys, path):
    code = main(["validate", str(path)])
    out = capsys.readouterr()
    return code, out.out, out.err


CASES = {
    "malformed_yaml": (
        "name: t\ndatasets: [digits\nmodels: [mlp]\n",
        ["malformed YAML", "suite.yaml:3"],
    ),
    "unknown_key": (
        VALID + "measure:\n  batch_size: [1]\n",
        ["suite.yaml:9 at measure.batch_size: unknown key 'batch_size'", "did you mean 'batch_sizes'"],
    ),
    "wrong_type": (
        VALID + "measure:\n  repeat: {min_iters: many, min_seconds: 1}\n",
        ["suite.yaml:9 at measure.repeat.min_iters", "valid integer", "given:    'many'"],
    ),
    "out_of_range_grid_value": (
        VALID.replace("[0.5, 0.9]", "[0.5, 1.5]"),
        ["suite.yaml:7 at methods[0].params.sparsity[1]", "expected: a number <= 1", "given:    1.5"],
    ),
    "unknown_param": (
        VALID.replace("sparsity: [0.5, 0.9]", "sparsty: 0.5"),
        ["at methods[0].params.sparsty: unknown key 'sparsty'", "did you mean 'sparsity'"],
    ),
    "bad_choice": (
        VALID.replace("{sparsity: [0.5, 0.9]}", "{scope: channel}"),
        ["at methods[0].params.scope", "one of 'layer' or 'global'", "given:    'channel'"],
    ),
    "unknown_plugin": (
        VALID.replace("prune.magnitude", "prune.magnitud"),
        ["suite.yaml:6 at methods[0].name: unknown method 'prune.magnitud'", "did you mean 'prune.magnitude'",
         "valid names:"],
    ),
    "empty_matrix": (
        "name: t\ndatasets: [digits]\nmodels: []\n",
        ["suite.yaml:3 at models", "expected: at least 1 item(s)"],
    ),
    "duplicate_ids": (
        VALID.replace("  - name: mlp\n", "  - {name: mlp, id: a}\n  - {name: cnn, id: a}\n"),
        ["suite.yaml:5 at models[1]: duplicate model id 'a'"],
    ),
    "duplicate_method": (
        VALID + "  - name: prune.magnitude\n    params: {sparsity: 0.9}\n",
        ["at methods[1]: duplicate method prune.magnitude(sparsity=0.9, scope=layer)"],
    ),
    "missing_name": (
        VALID.replace("name: t\n", ""),
        ["at name: Field required", "expected: this key to be present"],
    ),
    "not_a_mapping": ("- just\n- a list\n", ["the suite must be a mapping"]),
    "missing_checkpoint": (
        VALID.replace("  - name: mlp\n", "  - {name: mlp, checkpoint: nope.pt}\n"),
        ["at models[0].checkpoint: checkpoint file not found", "nope.pt"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_located_and_explained(case, capsys, write_suite):
    text, expected = CASES[case]
    path = write_suite(text)
    code, out, err = validate(capsys, path)
    assert code == 2
    assert err.startswith(f"optbench: error: invalid suite {path}")
    for fragment in expected:
        assert fragment in err.replace(str(path), "suite.yaml"), (fragment, err)
    assert "Traceback" not in err


def test_missing_file(capsys, tmp_path):
    code, _, err = validate(capsys, tmp_path / "nope.yaml")
    assert code == 2 and "nope.yaml: file not found" in err


def test_every_problem_is_reported_at_once(capsys, write_suite):
    path = write_suite(VALID.replace("digits", "digitz").replace("[0.5, 0.9]", "[2, 3]"))
    code, _, err = validate(capsys, path)
    assert code == 2
    assert "3 problems" in err and "unknown dataset 'digitz'" in err
    assert "sparsity[0]" in err and "sparsity[1]" in err


def test_cli_exits_2_without_traceback_and_debug_shows_it(cli, write_suite):
    path = write_suite(VALID.replace("prune.magnitude", "prune.nope"))
    out = cli("run", str(path), runs_suite=False)  # refused before anything runs
    assert out.returncode == 2 and "Traceback" not in out.stderr and "unknown method 'prune.nope'" in out.stderr
    debug = cli("validate", "--debug", str(path))
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_bad_input_writes_no_run_directory(cli, write_suite, tmp_path):
    path = write_suite(VALID.replace("digits", "digitz"))
    assert cli("run", str(path), "--results", str(tmp_path / "res"), runs_suite=False).returncode == 2
    assert not (tmp_path / "res").exists()


def expand(text):
    suite, lines = parse_suite(text, "s.yaml")
    return build_matrix(suite, PluginManager.load().registry, file="s.yaml", lines=lines)


def test_grid_expands_every_list_valued_param_and_adds_one_baseline_per_group():
    cells = expand(
        VALID.replace("{sparsity: [0.5, 0.9]}", "{sparsity: [0.1, 0.5, 0.9], scope: [layer, global]}")
        .replace("datasets: [digits]", "datasets: [digits, {name: synthetic, params: {shape: [1, 8, 8]}}]")
    )
    assert len(cells) == 2 * (1 + 6)
    per_dataset = [c for c in cells if c.dataset.name == "digits"]
    assert per_dataset[0].method.name == "baseline"
    combos = {(c.method.params["sparsity"], c.method.params["scope"]) for c in per_dataset[1:]}
    assert combos == {(s, sc) for s in (0.1, 0.5, 0.9) for sc in ("layer", "global")}
    assert len({c.cell_id for c in cells}) == len(cells)


def test_list_typed_params_are_not_expanded_but_lists_of_lists_are():
    one = expand("name: t\ndatasets: [digits]\nmodels: [{name: mlp, params: {hidden: [64, 32]}}]\n")
    assert one[0].model.params["hidden"] == [64, 32]
    grid = expand(
        "name: t\ndatasets: [digits]\nmodels: [mlp]\nmethods:\n"
        "  - {name: prune.magnitude, params: {sparsity: 0.5}}\n"
    )
    assert len(grid) == 2


def test_cell_ids_are_stable_and_ignore_defaults_spelt_out():
    a = expand(VALID)
    b = expand(VALID.replace("{sparsity: [0.5, 0.9]}", "{sparsity: [0.5, 0.9], scope: layer}"))
    assert [c.cell_id for c in a] == [c.cell_id for c in b]
    c = expand(VALID.replace("name: t", "name: t\nseed: 1"))
    assert not {x.cell_id for x in a} & {x.cell_id for x in c}


def test_schema_includes_installed_plugin_params(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    variants = schema["properties"]["methods"]["items"]["oneOf"]
    prune = next(v for v in variants if v.get("properties", {}).get("name", {}).get("const") == "prune.magnitude")
    sparsity = prune["properties"]["params"]["properties"]["sparsity"]
    assert {"type": "number", "minimum": 0.0, "maximum": 1.0} in [
        {k: v for k, v in alt.items() if k != "title"} for alt in sparsity["anyOf"]
    ]
    assert "baseline" not in json.dumps(variants)


def test_every_shipped_suite_is_valid_under_the_schema_and_a_bad_one_is_not(capsys):
    """What an editor checks with `optbench schema` agrees with the harness on real suites."""
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    repo = Path(__file__).resolve().parents[1]
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    suites = sorted(repo.glob("suites/*.yaml")) + sorted(repo.glob("plugins/*/suites/*.yaml"))
    assert len(suites) >= 3
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)  # once: jsonschema.validate checks the 0.7 MB schema on every call
    validator = validator_class(schema)
    for path in suites:
        validator.validate(yaml.safe_load(path.read_text()))  # raises with the path in the message
    training = yaml.safe_load((repo / "suites" / "training.yaml").read_text())
    for bad in ({"log_grid": [1e-3], "points": 7}, {"grid": []}, "fast"):
        training["methods"][0]["params"]["lr"] = bad
        with pytest.raises(jsonschema.ValidationError):
            validator.validate(training)


def test_validate_lists_cells(capsys, write_suite):
    code, out, _ = validate(capsys, write_suite(VALID))
    assert code == 0
    assert "valid. 3 cells" in out and "prune.magnitude(sparsity=0.9, scope=layer)" in out


def test_the_same_backend_twice_with_the_same_params_is_a_duplicate(capsys, write_suite):
    code, _, err = validate(capsys, write_suite(VALID + "backends: [cpu, {name: cpu, params: {threads: null}}]\n"))
    assert code == 2 and "at backends[1]: duplicate backend 'cpu' with the same params (also backends[0])" in err


def test_models_can_be_paired_with_some_datasets_and_their_own_batch_sizes():
    cells = expand(
        "name: t\ndatasets: [digits, {name: synthetic, id: big, params: {shape: [3, 32, 32]}}]\n"
        "models:\n  - {name: mlp, datasets: [digits]}\n  - {name: cnn, datasets: [big], batch_sizes: [1, 8]}\n"
        "methods: [prune.magnitude]\n"
    )
    assert [(c.model.id, c.dataset.id, c.batch_sizes) for c in cells] == [
        ("mlp", "digits", (1,)), ("mlp", "digits", (1,)), ("cnn", "big", (1, 8)), ("cnn", "big", (1, 8)),
    ]


def test_a_model_paired_with_an_unknown_dataset_id_is_an_error(capsys, write_suite):
    code, _, err = validate(capsys, write_suite(VALID.replace("  - name: mlp\n", "  - {name: mlp, datasets: [digit]}\n")))
    assert code == 2 and "at models[0].datasets[0]: no dataset with id 'digit' in this suite" in err
    assert "did you mean 'digits'" in err


def test_a_reference_backend_the_suite_does_not_have_names_its_line_and_the_backends(capsys, write_suite):
    code, _, err = validate(capsys, write_suite(VALID + "backends: [cpu, {name: cpu, params: {threads: 1}}]\n"
                                                "reference_backend: onnxruntme\n"))
    assert code == 2 and "Traceback" not in err
    assert "suite.yaml:9 at reference_backend: not one of the suite's backends (cpu)" in err
    assert "given:    'onnxruntme'" in err
