"""quantize.hqq: HQQ's calibration-free k-bit weight quantization on CPU, with what it stored
and what it left alone said, and its packed weights counted by the harness's size and parameter
measurements (language-model drift under it is in optbench_models' test_language_models)."""
from __future__ import annotations

import copy
import sys

import pytest
import torch
from optbench_quantize.hqq_quantize import HQQ_VERSION
from torch import nn

from harness import Skip
from harness.measure.model_stats import model_bytes, param_counts

pytest.importorskip("hqq", reason=f"quantize.hqq tests need hqq=={HQQ_VERSION}")


def hqq(quantize_method, model, ctx, **params):
    method = quantize_method("quantize.hqq")
    return method.apply(copy.deepcopy(model), method.params(**params), ctx)


def hqq_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if type(m).__name__ == "HQQLinear"]


@pytest.mark.parametrize(("nbits", "max_drop"), [(8, 0.01), (4, 0.03)])
def test_k_bit_weights_keep_accuracy_and_shrink_the_checkpoint(quantize_method, optbench_digits, digits_mlp, method_context,
                                                               accuracy, nbits, max_drop):
    logs: list[str] = []
    quantized = hqq(quantize_method, digits_mlp, method_context(optbench_digits, logs), nbits=nbits, group_size=64)
    assert len(hqq_layers(quantized)) == 3 and not any(isinstance(m, nn.Linear) for m in quantized.modules())
    assert accuracy(digits_mlp) - accuracy(quantized) <= max_drop
    assert any(f"3 nn.Linear layer(s) -> HQQ {nbits}-bit, group 64 along axis 1" in line for line in logs), logs
    # packed codes plus a float32 scale and zero per 64 weights (8-bit: 26 KB, 4-bit: 13 KB of codes for
    # 26k weights), and the checkpoint's ~18 entries per HQQ layer, which weigh on a 105 KB model
    assert model_bytes(quantized) < (0.45 if nbits == 8 else 0.35) * model_bytes(digits_mlp)
    # the harness counts the packed weights (HQQLinear has no nn.Parameter) as the layer's parameters
    assert param_counts(quantized)[0] == param_counts(digits_mlp)[0]


def test_include_exclude_and_group_size_leave_layers_float_and_say_so(quantize_method, optbench_digits, digits_mlp,
                                                                      method_context):
    logs: list[str] = []
    # layer "3" excluded; of "1" (64x128: 8192 weights) and "5" (128x10: 1280), 1280 does not divide by 512
    quantized = hqq(quantize_method, digits_mlp, method_context(optbench_digits, logs), exclude=r"^3$", group_size=512)
    names = [n for n, m in quantized.named_modules() if type(m).__name__ == "HQQLinear"]
    floats = [n for n, m in quantized.named_modules() if isinstance(m, nn.Linear)]
    assert len(names) == 1 and len(floats) == 2, (names, floats)
    line = next(line for line in logs if "quantize.hqq:" in line)
    assert "1 left float by include/exclude" in line and "1 left float: weight count not a multiple of group_size 512" in line
    with pytest.raises(Skip, match="no nn.Linear layer to quantize: 3 left out by include/exclude"):
        hqq(quantize_method, digits_mlp, method_context(optbench_digits), include="nothing-matches")


def test_bad_params_name_the_field(quantize_method):
    params = quantize_method("quantize.hqq").params
    with pytest.raises(ValueError, match="multiple of 8"):
        params(group_size=60)
    with pytest.raises(ValueError, match="not a regular expression"):
        params(include="(")
    with pytest.raises(ValueError):
        params(nbits=5)


def test_missing_hqq_is_a_clear_error(quantize_method, optbench_digits, digits_mlp, method_context, monkeypatch):
    for name in [m for m in sys.modules if m == "hqq" or m.startswith("hqq.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "hqq", None)
    with pytest.raises(ImportError, match=rf"needs the hqq package: DISABLE_CUDA=1 pip install hqq=={HQQ_VERSION}"):
        hqq(quantize_method, digits_mlp, method_context(optbench_digits))


def test_bfloat16_compute_runs_the_whole_model_in_bfloat16_behind_a_float32_interface(quantize_method, optbench_digits,
                                                                                       digits_mlp, method_context, accuracy):
    quantized = hqq(quantize_method, digits_mlp, method_context(optbench_digits), compute_dtype="bfloat16")
    assert type(quantized).__name__ == "CastWrapper"
    out = quantized(optbench_digits.test.example(4))
    assert out.dtype == torch.float32
    assert accuracy(digits_mlp) - accuracy(quantized) <= 0.03
