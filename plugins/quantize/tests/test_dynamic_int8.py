"""quantize.dynamic_int8: Linear layers become dynamic-quantized, outputs stay close, size shrinks."""
from __future__ import annotations

import io
import tomllib
from pathlib import Path

import pydantic
import pytest
import torch
from optbench_quantize import plugin
from optbench_quantize.dynamic_int8 import DynamicInt8Params, choose_engine
from torch import nn
from torch.ao.nn.quantized import dynamic as nnqd

from harness import DatasetSplits, Method, MethodContext, Skip
from harness.testing import registered_objects

IN_FEATURES, CLASSES = 32, 4


def registered_method() -> Method:
    (method,) = [m for m in registered_objects(plugin) if m.name == "quantize.dynamic_int8"]
    return method


def separable_data(seed: int = 0, n: int = 1024) -> DatasetSplits:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, IN_FEATURES, generator=gen)
    y = (x @ torch.randn(IN_FEATURES, CLASSES, generator=gen)).argmax(dim=1)
    half = n // 2
    return DatasetSplits(x[:half], y[:half], x[half:], y[half:], num_classes=CLASSES)


def trained_mlp(data: DatasetSplits) -> nn.Module:
    """A briefly trained MLP: its logits have real margins, unlike a random one's.

    Plain gradient descent by hand: creating a torch.optim optimizer costs a second of imports.
    """
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(IN_FEATURES, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, CLASSES)
    )
    for _ in range(100):
        model.zero_grad()
        nn.functional.cross_entropy(model(data.x_train), data.y_train).backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.2 * p.grad
    return model.eval()


def method_context(data: DatasetSplits, logs: list[str]) -> MethodContext:
    return MethodContext(data=data, device=torch.device("cpu"), backend="cpu", seed=0, log=logs.append)


def apply(model: nn.Module, logs: list[str] | None = None, **params) -> nn.Module:
    method = registered_method()
    return method.apply(model, method.params(**params), method_context(separable_data(), [] if logs is None else logs))


def state_dict_bytes(model: nn.Module) -> int:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


@pytest.fixture(scope="module")
def mlp() -> nn.Module:
    return trained_mlp(separable_data())


def test_registers_dynamic_int8_through_the_hookspec():
    methods = registered_objects(plugin)
    assert ("quantize.dynamic_int8", "quantizer", DynamicInt8Params) in [(m.name, m.kind, m.params) for m in methods]


def test_entry_point_names_the_plugin_module():
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["optbench"] == {"quantize": "optbench_quantize.plugin"}


def test_linear_layers_become_dynamic_quantized_and_float_model_is_kept(mlp):
    logs: list[str] = []
    quantized = apply(mlp, logs)
    kinds = [type(m) for m in quantized if not isinstance(m, nn.ReLU)]
    assert kinds == [nnqd.Linear] * 3
    assert all(m._packed_params.dtype == torch.qint8 for m in quantized if isinstance(m, nnqd.Linear))
    assert not any(type(m) is nn.Linear for m in quantized.modules())
    assert sum(type(m) is nn.Linear for m in mlp.modules()) == 3  # the float model is not modified
    assert any("3 nn.Linear" in line for line in logs)


def test_int8_outputs_agree_with_float_outputs(mlp):
    data = separable_data()
    quantized = apply(mlp)
    with torch.no_grad():
        ref, out = mlp(data.x_test), quantized(data.x_test)
    agreement = (ref.argmax(1) == out.argmax(1)).float().mean().item()
    assert agreement >= 0.95
    assert (out - ref).abs().max() <= 0.1 * ref.abs().max()


def test_int8_state_dict_is_smaller(mlp):
    # int8 weights are a quarter of float32; scales, zero points and pickling overhead add a little.
    assert state_dict_bytes(apply(mlp)) < 0.5 * state_dict_bytes(mlp)


def test_float16_option(mlp):
    data = separable_data()
    quantized = apply(mlp, dtype="float16")
    layers = [m for m in quantized if isinstance(m, nnqd.Linear)]
    assert len(layers) == 3 and all(m._packed_params.dtype == torch.float16 for m in layers)
    with torch.no_grad():
        assert torch.allclose(quantized(data.x_test), mlp(data.x_test), atol=1e-2, rtol=1e-2)


def test_cnn_conv_stays_float_and_linear_is_quantized():
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, CLASSES)).eval()
    logs: list[str] = []
    quantized = apply(cnn, logs)
    assert type(quantized[0]) is nn.Conv2d and type(quantized[3]) is nnqd.Linear
    x = torch.randn(16, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(quantized(x), cnn(x), atol=0.05, rtol=0.05)
    assert any("1 conv layer(s) left in float32" in line for line in logs)


def test_model_without_linear_is_skipped_with_the_reason():
    convs = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()).eval()
    with pytest.raises(Skip, match="no nn.Linear"):
        apply(convs, [])


def test_deprecation_warnings_are_not_raised_to_the_caller(mlp, recwarn):
    apply(mlp)
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]


@pytest.mark.parametrize("bad", [{"dtype": "int4"}, {"dtype": None}, {"bits": 8}])
def test_params_reject_invalid_values(bad):
    with pytest.raises(pydantic.ValidationError):
        DynamicInt8Params(**bad)


def test_params_defaults_and_descriptions():
    assert DynamicInt8Params().dtype == "qint8"
    assert all(f.description for f in DynamicInt8Params.model_fields.values())


def test_engine_preference_and_skip():
    assert choose_engine(["qnnpack", "onednn", "x86", "fbgemm"]) == "x86"
    assert choose_engine(["qnnpack", "fbgemm"]) == "fbgemm"
    assert choose_engine(["qnnpack"]) == "qnnpack"
    with pytest.raises(Skip, match="float16"):
        choose_engine(["qnnpack"], "float16")
    with pytest.raises(Skip):
        choose_engine([])
