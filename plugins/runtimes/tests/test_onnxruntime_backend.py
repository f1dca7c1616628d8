"""The onnxruntime backend: export, run, the same answers as torch on the same inputs, skips with
reasons, and a real suite through the real entry point."""
from __future__ import annotations

import builtins

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
    assert reading.fields == {"export_s": ort_model.export_s, "onnx_bytes": ort_model.onnx_bytes,
                              "model_bytes": ort_model.onnx_bytes, "quantize_s": None}
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


@pytest.mark.slow
def test_a_suite_on_cpu_and_onnxruntime_gives_the_same_accuracy_and_skips_torch_int8(optbench_run):
    run = optbench_run({
        "name": "ort",
        "datasets": ["digits"],
        "models": [{"name": "mlp", "params": {"hidden": [32], "epochs": 1}}],
        "methods": [{"name": "quantize.dynamic_int8"}, {"name": "prune.magnitude", "params": {"sparsity": 0.5}}],
        "backends": ["cpu", {"name": "onnxruntime", "params": {"threads": 1}}],
        "measure": {"batch_sizes": [1, 16], "warmup": {"min_iters": 2, "min_seconds": 0.0},
                    "repeat": {"min_iters": 10, "min_seconds": 0.0}, "fidelity_samples": 64},
    })
    by = {(r["backend"], r["method"], r["batch_size"]): r for r in run.records}
    for method in ("baseline", "prune.magnitude"):
        for bs in (1, 16):
            torch_r, ort_r = by[("cpu", method, bs)], by[("onnxruntime", method, bs)]
            assert ort_r["status"] == "ok" and ort_r["accuracy"] == pytest.approx(torch_r["accuracy"], abs=1e-9)
            assert ort_r["runtime"] == "onnxruntime" and ort_r["provider"] == "CPUExecutionProvider"
            assert ort_r["export_s"] > 0 and ort_r["onnx_bytes"] > 0 and ort_r["latency_p50_ms"] > 0
            assert ort_r["flops"] == torch_r["flops"] and ort_r["model_bytes"] == ort_r["onnx_bytes"]
            assert ort_r["model_bytes"] == pytest.approx(torch_r["model_bytes"], rel=0.25)  # the same float weights
    assert by[("onnxruntime", "prune.magnitude", 1)]["paired"] is True
    assert by[("onnxruntime", "prune.magnitude", 1)]["cosine"] == pytest.approx(
        by[("cpu", "prune.magnitude", 1)]["cosine"], abs=1e-4)
    skipped = by[("onnxruntime", "quantize.dynamic_int8", 1)]
    assert skipped["status"] == "skipped" and skipped["error"].startswith("onnxruntime: the model cannot be exported")
    assert by[("cpu", "quantize.dynamic_int8", 1)]["status"] == "ok"


def test_onnx_quantizers_skip_on_other_backends_with_the_reason(optbench_run):
    from optbench_runtimes.onnx_quantize import QUANTIZE_DYNAMIC, QUANTIZE_STATIC

    from harness.plugin.types import MethodContext

    ctx = MethodContext(data=None, device=torch.device("cpu"), backend="cpu", seed=0, log=print, batch_sizes=(1,))
    for method in (QUANTIZE_DYNAMIC, QUANTIZE_STATIC):
        with pytest.raises(Skip, match=f"^{method.name} quantizes the graph ONNX Runtime runs: it runs on the "
                                       "onnxruntime backend, not on cpu$"):
            method.apply(mlp(), method.params(), ctx)


@pytest.mark.slow
def test_onnx_runtime_s_own_int8_quantizers_shrink_the_graph_and_keep_the_answers(optbench_run):
    run = optbench_run({
        "name": "ort-int8",
        "datasets": ["digits"],
        "models": [{"name": "mlp", "params": {"hidden": [256, 256], "epochs": 2}}],
        "methods": [{"name": "onnx.quantize_dynamic"},
                    {"name": "onnx.quantize_static", "params": {"calibration_batches": 4, "per_channel": True}}],
        "backends": [{"name": "onnxruntime", "params": {"threads": 1}}, "cpu"],
        "measure": {"batch_sizes": [8], "warmup": {"min_iters": 2, "min_seconds": 0.0},
                    "repeat": {"min_iters": 10, "min_seconds": 0.0}, "fidelity_samples": 128},
    })
    by = {(r["backend"], r["method"]): r for r in run.records}
    base = by[("onnxruntime", "baseline")]
    for name in ("onnx.quantize_dynamic", "onnx.quantize_static"):
        r = by[("onnxruntime", name)]
        assert r["status"] == "ok", r["error"]
        # int8 weights: about a quarter of the float graph (scales and zero points on top)
        assert 2.5 < r["size_ratio"] < 4.5 and r["model_bytes"] < base["model_bytes"] / 2.5
        assert r["quantize_s"] > 0 and r["paired"] is True
        assert r["agreement"] > 0.95 and r["cosine"] > 0.99  # the same answers, nearly
        assert r["accuracy"] == pytest.approx(base["accuracy"], abs=0.03)
        skipped = by[("cpu", name)]
        assert skipped["status"] == "skipped" and "runs on the onnxruntime backend, not on cpu" in skipped["error"]
