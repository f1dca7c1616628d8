"""One declaration per record field: the docs list exactly the declared fields, a plugin declares what it
writes, and a record whose parts break the declarations is refused with the field named."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from harness import RecordField, hookimpl
from harness.errors import RegistrationError
from harness.record.core_fields import CORE_FIELDS
from harness.record.schema import CORE_SCHEMA, RecordPart, RecordSchema, RecordSchemaError
from harness.registry.manager import PluginManager
from harness.results.field_reference import BEGIN, END, reference_markdown

REPO = Path(__file__).resolve().parents[1]


def test_the_records_page_lists_exactly_the_declared_fields():
    """docs/records.md holds `optbench fields --markdown` as the installed plugins make it: regenerate it with
    that command when a declaration changes."""
    page = (REPO / "docs" / "records.md").read_text()
    listed = page.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert listed == reference_markdown(PluginManager.load().registry.schema).strip()


def test_the_fields_command_lists_the_core_and_the_plugins_declarations(cli):
    done = cli("fields")
    assert done.returncode == 0, done.stderr
    assert "the harness:" in done.stdout and "plugin gpu:" in done.stdout and "plugin runtimes:" in done.stdout
    assert "latency_p50_ms" in done.stdout and "energy_j" in done.stdout and "onnx_bytes" in done.stdout
    listed = cli("plugins")
    assert "fields   11 record fields (runtime, runtime_version," in listed.stdout


def test_plugin_fields_are_declared_by_the_plugin_that_writes_them():
    fields = PluginManager.load().registry.fields
    assert {n for n, f in fields.items() if f.owner == "gpu"} >= {
        "gpu_other_processes", "energy_j", "energy_j_per_sample", "device_peak_allocated_mb", "world_size",
        "rank_p50_ms", "gpu_name", "driver_version"}
    assert {n for n, f in fields.items() if f.owner == "runtimes"} >= {
        "runtime", "onnx_bytes", "ir_bytes", "runtime_precision", "precision_ops"}
    core = {f.name for f in CORE_FIELDS}
    assert not core & set(fields), "a plugin field is also the core's"
    assert fields["runtime_precision"].qualifies == "backend" and fields["gpu_other_processes"].caveat


def test_every_core_field_has_a_type_a_group_and_a_one_line_doc():
    names = [f.name for f in CORE_FIELDS]
    assert len(names) == len(set(names))
    for f in CORE_FIELDS:
        assert f.doc and "\n" not in f.doc and f.group and f.label, f.name


class _Twice:
    @staticmethod
    @hookimpl
    def register_fields(register):
        register(RecordField("energy_j", "number", "the same name as the gpu plugin's", "energy", unit="J"))


class _Core:
    @staticmethod
    @hookimpl
    def register_fields(register):
        register(RecordField("accuracy", "number", "the harness's own field", "quality"))


@pytest.mark.parametrize(("plugin", "message"), [
    (_Twice, "already declared by plugin 'gpu'"),
    (_Core, "which the harness declares"),
])
def test_a_field_declared_twice_fails_at_registration_naming_both(plugin, message):
    pm = PluginManager.load()
    with pytest.raises(RegistrationError, match=message):
        pm.add(plugin, name="twice")


def test_a_malformed_declaration_is_refused():
    for kwargs, message in [({"name": "Bad Name"}, "lower-case"), ({"type": "float"}, "not one of"),
                            ({"doc": "two\nlines"}, "one-line doc"), ({"group": ""}, "needs a group")]:
        with pytest.raises(ValueError, match=message):
            RecordField(**{"name": "ok_name", "type": "number", "doc": "a doc", "group": "g", **kwargs})


def test_assembly_refuses_a_field_two_parts_write_and_names_both():
    parts = [RecordPart("the model's size and work", {"model_bytes": 100}),
             RecordPart("the onnxruntime backend's memory reading", {"model_bytes": 80})]
    with pytest.raises(RecordSchemaError, match="'model_bytes' is written by the onnxruntime backend's memory "
                                                "reading and by the model's size and work"):
        CORE_SCHEMA.assemble(parts)


def test_assembly_refuses_undeclared_fields_and_wrong_types_and_cleans_numbers():
    with pytest.raises(RecordSchemaError, match="wrote record field 'acuracy', which neither the harness nor a plugin"):
        CORE_SCHEMA.assemble([RecordPart("a method", {"acuracy": 0.9})])
    with pytest.raises(RecordSchemaError, match="wrote status = 3; expected text or null"):
        CORE_SCHEMA.assemble([RecordPart("a method", {"status": 3})])
    with pytest.raises(RecordSchemaError, match="written by the cell and by the runner"):
        CORE_SCHEMA.assemble([RecordPart("the cell", {"speedup": 2.0})], reserved={"speedup": "the runner"})
    record = CORE_SCHEMA.assemble([RecordPart("x", {"accuracy": np.float64(0.5), "flops": np.int64(7),
                                                    "cosine": math.nan, "noisy": np.bool_(True)})])
    assert record == {"accuracy": 0.5, "flops": 7, "cosine": None, "noisy": True}
    assert type(record["flops"]) is int and type(record["noisy"]) is bool


def test_normalise_orders_the_declared_fields_first_and_keeps_the_rest():
    schema = RecordSchema(CORE_FIELDS[:3])
    assert list(schema.normalise({"mine": 1, "suite": "s"})) == ["run_id", "cell_id", "suite", "mine"]


@pytest.mark.parametrize(("field", "value", "message"), [
    ("model_bytes", "1", "record field 'model_bytes' is written by the test.writes backend's memory reading and by "
                         "the model's size and work"),
    ("latency_p50_ms", "1.0", "record field 'latency_p50_ms' is written by the test.writes backend's memory reading "
                              "and by the runner"),
    ("energy_joules", "1.0", "wrote record field 'energy_joules', which neither the harness nor a plugin declares"),
    ("energy_j", '"lots"', "wrote energy_j = 'lots'; expected a finite number or null"),
])
def test_a_cell_whose_parts_break_the_schema_fails_naming_the_field(misbehaving, optbench_run, tiny_suite, field,
                                                                   value, message):
    run = optbench_run(tiny_suite(backend="test.writes", backend_params={"field": field, "value": value}))
    assert run.exit_code == 1
    (record,) = run.records
    assert record["status"] == "failed" and message in record["error"], record["error"]
    assert "RecordSchemaError" in run.log(record)
