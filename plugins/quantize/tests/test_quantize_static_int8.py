"""quantize.static_int8: FX post-training static int8 on trained digits models."""
from __future__ import annotations

import io

import pytest
import torch
from optbench_quantize.fx_graph_mode import NotTraceableError, choose_fx_engine
from optbench_quantize.static_int8 import StaticInt8Params, calibration_batches
from torch import nn
from torch.ao.nn import quantized as nnq
from torch.ao.nn.intrinsic import quantized as nniq

from harness import DatasetSplits, Skip


def state_dict_bytes(model: nn.Module) -> int:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def static_int8(quantize_method, model, ctx, **params):
    method = quantize_method("quantize.static_int8")
    return method.apply(model, method.params(**params), ctx)


def test_cnn_becomes_int8_conv_and_linear_keeps_accuracy_and_shrinks(
    quantize_method, optbench_digits, digits_cnn, method_context, accuracy
):
    logs: list[str] = []
    quantized = static_int8(quantize_method, digits_cnn, method_context(optbench_digits, logs))
    kinds = [type(m) for m in quantized.modules()]
    # FX fuses Conv+ReLU and Linear+ReLU into one int8 module each; the last Linear stays plain int8.
    assert kinds.count(nniq.ConvReLU2d) == 2 and kinds.count(nniq.LinearReLU) == 1 and kinds.count(nnq.Linear) == 1
    assert not any(type(m) in (nn.Conv2d, nn.Linear) for m in quantized.modules())
    assert abs(accuracy(quantized) - accuracy(digits_cnn)) <= 0.03
    assert state_dict_bytes(quantized) < 0.5 * state_dict_bytes(digits_cnn)
    assert sum(type(m) is nn.Conv2d for m in digits_cnn.modules()) == 2  # the float model is not modified
    assert any("4 int8 layer(s) from 2 conv + 2 linear" in line and "256 samples in 8 batch(es)" in line for line in logs)


def test_histogram_observer_and_per_channel_weights(quantize_method, optbench_digits, digits_mlp, method_context, accuracy):
    quantized = static_int8(
        quantize_method, digits_mlp, method_context(optbench_digits), observer="histogram", weights="per_channel",
        calibration_batches=4,
    )
    linears = [m for m in quantized.modules() if isinstance(m, nnq.Linear)]
    assert len(linears) == 3
    assert {m.weight().qscheme() for m in linears} == {torch.per_channel_affine}
    assert abs(accuracy(quantized) - accuracy(digits_mlp)) <= 0.03


def test_per_tensor_weights_by_default(quantize_method, optbench_digits, digits_mlp, method_context):
    quantized = static_int8(quantize_method, digits_mlp, method_context(optbench_digits))
    assert {m.weight().qscheme() for m in quantized.modules() if isinstance(m, nnq.Linear)} == {torch.per_tensor_affine}


def test_calibration_batches_are_disjoint_and_capped_by_the_data():
    x = torch.arange(100.0)[:, None]
    batches = calibration_batches(x, StaticInt8Params(calibration_batches=3, calibration_batch_size=16), seed=0)
    assert [b.shape[0] for b in batches] == [16, 16, 16]
    assert len(torch.cat(batches).unique()) == 48
    capped = calibration_batches(x, StaticInt8Params(calibration_batches=1000, calibration_batch_size=32), seed=0)
    assert [b.shape[0] for b in capped] == [32, 32, 32, 4]


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        if x.sum() > 0:  # Python control flow on a tensor value: torch.fx cannot trace it
            return self.fc(x)
        return -self.fc(x)


def test_untraceable_model_is_skipped_naming_the_model_and_fx_reason(quantize_method, method_context):
    data = DatasetSplits(torch.randn(64, 4), torch.zeros(64, dtype=torch.long), torch.randn(8, 4), None, 2)
    with pytest.raises(NotTraceableError, match=r"DataDependent.*TraceError.*control flow") as err:
        static_int8(quantize_method, DataDependent().eval(), method_context(data))
    assert isinstance(err.value, Skip)  # the method does not apply to this model: skipped, not failed


def test_non_cpu_backend_is_skipped(quantize_method, optbench_digits, digits_mlp, method_context):
    with pytest.raises(Skip, match="CPU kernels only"):
        static_int8(quantize_method, digits_mlp, method_context(optbench_digits, device="meta"))


def test_no_deprecation_warning_reaches_the_caller(quantize_method, optbench_digits, digits_mlp, method_context, recwarn):
    quantized = static_int8(quantize_method, digits_mlp, method_context(optbench_digits), calibration_batches=1)
    with torch.no_grad():
        quantized(optbench_digits.x_test[:4])
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]


def test_engine_choice():
    assert choose_fx_engine(["qnnpack", "onednn", "x86", "fbgemm"]) == "x86"
    assert choose_fx_engine(["qnnpack", "fbgemm"]) == "fbgemm"
    with pytest.raises(Skip, match="x86/fbgemm"):
        choose_fx_engine(["qnnpack"])
