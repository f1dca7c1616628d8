"""The onnxruntime backend: export, run, the same answers as torch on the same inputs, skips with
reasons, and a real suite through the real entry point."""
from __future__ import annotations

import builtins
import copy

import pytest
import torch
from torch import nn

pytest.importorskip("onnxruntime", reason="the onnxruntime extra is not installed")

from optbench_runtimes.onnxruntime_backend import EXTRA, OrtParams, OrtSession

from harness.measure.model_stats import count_flops
from harness.plugin.types import Skip


def session(**params) -> OrtSession:
    s = OrtSession(OrtParams(**params))
    assert s.unavailable_reason() is None
    s.setup()
    return s


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()


def test_a_model_runs_in_onnxruntime_with_torch_s_answers_at_any_batch_size():
    model = mlp()
    s = session(threads=1)
    ort_model = s.prepare_model(mlp())
    for bs in (1, 7, 64):  # the batch dimension is dynamic: one export serves them all
        x = torch.randn(bs, 1, 8, 8)
        with torch.inference_mode():
            got, want = ort_model(x), model(x)
        assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5), bs
    assert s.exported is ort_model and ort_model.export_s > 0 and ort_model.onnx_bytes > 64 * 32 * 4
    with s.memory_window(batch_size=1) as reading:
        pass
    assert reading.fields == {"export_s": ort_model.export_s, "onnx_bytes": ort_model.onnx_bytes, "quantize_s": None}
    assert s.deployed_bytes() == ort_model.onnx_bytes  # the model's size here: the graph the session loads
    facts = s.setup()
    assert facts["runtime"] == "onnxruntime" and facts["provider"] == "CPUExecutionProvider"
    assert facts["exporter"].startswith("torch.onnx.export") and facts["threads"] == 1


def test_dict_inputs_are_named_inputs_and_the_first_output_is_read():
    class Encoder(nn.Module):  # the shape of a transformers model: keyword tensors in, a dict out
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(50, 16)
            self.head = nn.Linear(16, 3)

        def forward(self, input_ids, attention_mask):
            h = self.emb(input_ids) * attention_mask.unsqueeze(-1)
            return {"logits": self.head(h.mean(1)), "hidden": h}

    torch.manual_seed(0)
    model = Encoder().eval()
    ort_model = session(threads=1).prepare_model(Encoder().eval())
    ort_model.model.load_state_dict(model.state_dict())
    x = {"input_ids": torch.randint(0, 50, (4, 9)), "attention_mask": torch.ones(4, 9, dtype=torch.long)}
    with torch.inference_mode():
        got = ort_model(**x)
    assert torch.allclose(got, model(**x)["logits"], atol=1e-5)


def test_flops_are_those_of_the_exported_torch_graph():
    x = torch.randn(1, 1, 8, 8)
    ort_model = session(threads=1).prepare_model(mlp())
    with torch.inference_mode():
        ort_model(x)  # exported first, then counted: the counter still sees the torch graph
    assert count_flops(ort_model, x) == count_flops(mlp(), x) and count_flops(mlp(), x)[0] == 2 * (64 * 32 + 32 * 10)


def test_a_torch_int8_module_is_skipped_with_the_exporter_s_reason():
    quantized = torch.ao.quantization.quantize_dynamic(mlp(), {nn.Linear}, dtype=torch.qint8)
    ort_model = session(threads=1).prepare_model(quantized)
    with pytest.raises(Skip, match=r"^onnxruntime: the model cannot be exported to ONNX \("), torch.inference_mode():
        ort_model(torch.randn(2, 1, 8, 8))


def test_without_the_extra_the_backend_says_what_to_install(monkeypatch):
    real = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime" or name.startswith("onnxruntime."):
            raise ImportError("No module named 'onnxruntime'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    reason = OrtSession(OrtParams()).unavailable_reason()
    assert reason == f"the onnxruntime backend needs onnxruntime and onnx: {EXTRA}"
    assert "optbench-runtimes[onnxruntime]" in reason


def test_cuda_without_its_provider_is_unavailable_with_the_reason():
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    reason = OrtSession(OrtParams(provider="cuda")).unavailable_reason()
    assert "has no CUDAExecutionProvider" in reason and "onnxruntime-gpu" in reason


def test_onnx_quantizers_skip_on_other_backends_with_the_reason(optbench_run):
    from optbench_runtimes.onnx_quantize import QUANTIZE_DYNAMIC, QUANTIZE_STATIC

    from harness.plugin.types import MethodContext

    ctx = MethodContext(data=None, device=torch.device("cpu"), backend="cpu", seed=0, log=print, batch_sizes=(1,))
    for method in (QUANTIZE_DYNAMIC, QUANTIZE_STATIC):
        with pytest.raises(Skip, match=f"^{method.name} quantizes the graph ONNX Runtime runs: it runs on the "
                                       "onnxruntime backend, not on cpu$"):
            method.apply(mlp(), method.params(), ctx)


def test_onnx_runtime_s_dynamic_int8_shrinks_the_graph_and_keeps_the_answers():
    from optbench_runtimes.onnx_quantize import QUANTIZE_DYNAMIC

    from harness.plugin.types import MethodContext

    torch.manual_seed(0)
    wide = nn.Sequential(nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10)).eval()
    ctx = MethodContext(data=None, device=torch.device("cpu"), backend="onnxruntime", seed=0, log=lambda m: None,
                        batch_sizes=(1,))
    s = session(threads=1)
    x = torch.randn(32, 1, 8, 8)
    float_model = s.prepare_model(wide)
    int8 = s.prepare_model(QUANTIZE_DYNAMIC.apply(copy.deepcopy(wide), QUANTIZE_DYNAMIC.params(per_channel=True),
                                                  ctx))
    with torch.inference_mode():
        want, got = float_model(x), int8(x)
    with s.memory_window() as reading:
        pass
    assert reading.fields["quantize_s"] > 0 and s.deployed_bytes() < float_model.onnx_bytes / 2.5
    assert not torch.allclose(got, want, atol=1e-6)  # int8 weights: not the float answers exactly
    assert torch.nn.functional.cosine_similarity(got, want).min() > 0.99
