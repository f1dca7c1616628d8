"""The plugin as a whole: every method registered through the hookspec, every Params model strict."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pydantic
import pytest
from optbench_quantize import plugin
from optbench_quantize.dynamic_int8 import DynamicInt8Params
from optbench_quantize.half import HalfParams
from optbench_quantize.hqq_quantize import HQQParams
from optbench_quantize.qat import QATParams
from optbench_quantize.static_int8 import StaticInt8Params
from optbench_quantize.torchao_quantize import TORCHAO_VERSION, TorchAOParams
from optbench_quantize.uniform import UniformParams

from harness.testing import registered_objects

PYPROJECT = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
README = (Path(__file__).parents[1] / "README.md").read_text()
EXPECTED = [
    ("quantize.dynamic_int8", DynamicInt8Params),
    ("quantize.static_int8", StaticInt8Params),
    ("quantize.qat", QATParams),
    ("quantize.half", HalfParams),
    ("quantize.uniform", UniformParams),
    ("quantize.torchao", TorchAOParams),
    ("quantize.hqq", HQQParams),
]


def test_registers_every_method_as_a_quantizer():
    methods = registered_objects(plugin)
    assert [(m.name, m.params) for m in methods] == EXPECTED
    assert {m.kind for m in methods} == {"quantizer"}


@pytest.mark.parametrize(("name", "params"), EXPECTED)
def test_every_method_is_documented_with_its_params(name, params):
    assert f"## `{name}`" in README
    assert all(f"`{field}`" in README for field in params.model_fields)
    assert all(f.description for f in params.model_fields.values())


def test_torchao_is_pinned_to_one_exact_version():
    assert f"torchao=={TORCHAO_VERSION}" in PYPROJECT["project"]["dependencies"]


def test_discovery_does_not_import_torch_or_torchao():
    code = "import sys, optbench_quantize.plugin; print('torch' in sys.modules, 'torchao' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_defaults():
    assert StaticInt8Params().model_dump() == {
        "calibration_batches": 8, "calibration_batch_size": 32, "observer": "minmax", "weights": "per_tensor"
    }
    assert QATParams().model_dump() == {"epochs": 2, "lr": 1e-4, "batch_size": 64}
    assert HalfParams().dtype == "float16"
    assert UniformParams().model_dump() == {"bits": 8, "granularity": "per_tensor", "symmetric": True}
    assert TorchAOParams().config == "int8_weight_only"


@pytest.mark.parametrize(
    ("params", "bad"),
    [
        (StaticInt8Params, {"calibration_batches": 0}),
        (StaticInt8Params, {"calibration_batches": 1001}),
        (StaticInt8Params, {"calibration_batch_size": 0}),
        (StaticInt8Params, {"observer": "percentile"}),
        (StaticInt8Params, {"weights": "per_group"}),
        (StaticInt8Params, {"bits": 8}),
        (QATParams, {"epochs": -1}),
        (QATParams, {"epochs": 1001}),
        (QATParams, {"lr": 0.0}),
        (QATParams, {"batch_size": 0}),
        (QATParams, {"observer": "minmax"}),
        (HalfParams, {"dtype": "float32"}),
        (HalfParams, {"dtype": "fp16"}),
        (UniformParams, {"bits": 1}),
        (UniformParams, {"bits": 9}),
        (UniformParams, {"bits": 4.5}),
        (UniformParams, {"granularity": "per_group"}),
        (UniformParams, {"symmetric": "maybe"}),
        (TorchAOParams, {"config": "int2_weight_only"}),
        (TorchAOParams, {"config": None}),
        (TorchAOParams, {"group_size": 32}),
    ],
)
def test_params_reject_invalid_values(params, bad):
    with pytest.raises(pydantic.ValidationError):
        params(**bad)
