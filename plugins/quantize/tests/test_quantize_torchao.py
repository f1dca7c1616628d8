"""quantize.torchao: torchao's quantize_ on CPU, and the configs that cannot run here are skipped.

Verified on this CPU-only torch 2.13.0 with torchao 0.18.0: int8_weight_only and
int8_dynamic run; int4_weight_only fails inside torchao ("Torch not compiled with CUDA
enabled"; its other packing formats need the mslk package or XPU); float8_dynamic
needs CUDA with compute capability >= 8.9.
"""
from __future__ import annotations

import copy
import io
import sys

import pytest
import torch
from optbench_quantize.torchao_quantize import (
    TORCHAO_VERSION,
    float8_unavailable_reason,
)
from torch import nn

from harness import Skip

pytest.importorskip("torchao", reason=f"quantize.torchao tests need torchao=={TORCHAO_VERSION}")

CUDA = torch.cuda.is_available()


def saved_bytes(model: nn.Module) -> int:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def torchao(quantize_method, model, ctx, **params):
    method = quantize_method("quantize.torchao")
    return method.apply(copy.deepcopy(model), method.params(**params), ctx)


@pytest.mark.parametrize("config", ["int8_weight_only", "int8_dynamic"])
def test_int8_configs_run_on_cpu_and_keep_accuracy(quantize_method, optbench_digits, digits_mlp, method_context, accuracy, config):
    logs: list[str] = []
    quantized = torchao(quantize_method, digits_mlp, method_context(optbench_digits, logs), config=config)
    linears = [m for m in quantized.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 3
    assert all(type(m.weight) not in (torch.Tensor, nn.Parameter) for m in linears)  # torchao tensor subclasses
    assert abs(accuracy(quantized) - accuracy(digits_mlp)) <= 0.01
    assert any(f"3 of 3 nn.Linear weight(s) -> torchao {config}" in line for line in logs)


def test_int8_weight_only_stores_int8_and_the_saved_state_dict_shrinks(quantize_method, optbench_digits, digits_mlp, method_context):
    quantized = torchao(quantize_method, digits_mlp, method_context(optbench_digits))
    assert all(m.weight.qdata.dtype == torch.int8 for m in quantized.modules() if isinstance(m, nn.Linear))
    # what the harness reports as model_bytes: the length of torch.save(state_dict)
    assert saved_bytes(quantized) < 0.5 * saved_bytes(digits_mlp)


@pytest.mark.skipif(CUDA, reason="checks the CPU behaviour")
def test_float8_is_skipped_on_cpu(quantize_method, optbench_digits, digits_mlp, method_context):
    with pytest.raises(Skip, match=r"compute capability >= 8\.9.*runs on cpu"):
        torchao(quantize_method, digits_mlp, method_context(optbench_digits), config="float8_dynamic")


def test_float8_reason():
    assert "runs on cpu" in float8_unavailable_reason(torch.device("cpu"))
    assert float8_unavailable_reason(torch.device("xpu")) is None  # left to torchao


@pytest.mark.skipif(CUDA, reason="checks the CPU behaviour")
def test_int4_weight_only_is_skipped_on_cpu_with_torchaos_reason(quantize_method, optbench_digits, digits_mlp, method_context):
    with pytest.raises(Skip, match=r"int4_weight_only cannot run on cpu: \w+Error: "):
        torchao(quantize_method, digits_mlp, method_context(optbench_digits), config="int4_weight_only")


def test_missing_torchao_is_a_clear_error(quantize_method, optbench_digits, digits_mlp, method_context, monkeypatch):
    for name in [m for m in sys.modules if m == "torchao" or m.startswith("torchao.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torchao", None)  # import torchao -> ImportError
    with pytest.raises(ImportError, match=rf"needs the torchao package: pip install torchao=={TORCHAO_VERSION}"):
        torchao(quantize_method, digits_mlp, method_context(optbench_digits))
