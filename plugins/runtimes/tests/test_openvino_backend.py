"""The openvino backend: convert, compile, run with torch's answers on the same inputs, the precision
it ran in recorded, its own int8 quantizer, and skips with reasons."""
from __future__ import annotations

import builtins
import copy

import pytest
import torch
from torch import nn

pytest.importorskip("openvino", reason="the openvino extra is not installed")

from optbench_runtimes.openvino_backend import EXTRA, OvParams, OvSession

from harness.measure.model_stats import count_flops
from harness.plugin.types import MethodContext, Skip


def session(**params) -> OvSession:
    s = OvSession(OvParams(**params))
    assert s.unavailable_reason() is None
    s.setup()
    return s


def mlp(hidden: int = 32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10)).eval()


def test_a_model_runs_in_openvino_in_f32_with_torch_s_answers_at_any_batch_size():
    model = mlp()
    s = session(threads=1)
    ov_model = s.prepare_model(mlp())
    for bs in (1, 7, 64):  # the batch dimension is dynamic: one conversion serves them all
        x = torch.randn(bs, 1, 8, 8)
        with torch.inference_mode():
            got, want = ov_model(x), model(x)
        assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5), bs
    assert count_flops(ov_model, x) == count_flops(model, x)  # those of the torch graph it was converted from
    assert s.exported is ov_model and ov_model.export_s > 0 and ov_model.ir_bytes > (64 * 32 + 32 * 10) * 4
    with s.memory_window(batch_size=1) as reading:
        pass
    f = reading.fields
    assert s.deployed_bytes() == f["ir_bytes"] == ov_model.ir_bytes and f["quantize_s"] is None
    assert f["runtime_precision"] == "f32" and "f32" in f["precision_ops"] and "bf16" not in f["precision_ops"]
    facts = s.setup()
    assert facts["runtime"] == "openvino" and facts["provider"] == "CPU" and facts["threads"] == 1
    assert facts["exporter"].startswith("openvino.convert_model") and facts["runtime_version"][0].isdigit()
    assert facts["default_precision"] in ("f32", "bf16", "f16")  # what it would have run without the hint


def test_bf16_is_what_it_ran_where_the_cpu_has_it_and_the_record_says_so():
    import openvino

    has_bf16 = "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    model = mlp(256)
    s = session(threads=1, precision="bf16")
    ov_model = s.prepare_model(mlp(256))
    x = torch.randn(16, 1, 8, 8)
    with torch.inference_mode():
        got, want = ov_model(x), model(x)
    with s.memory_window() as reading:
        pass
    ran = reading.fields["runtime_precision"]
    if has_bf16:
        assert ran == "bf16" and "bf16" in reading.fields["precision_ops"]
        assert not torch.equal(got, want) and torch.allclose(got, want, rtol=0.05, atol=0.05)
        assert s.setup()["default_precision"] == "bf16"  # OpenVINO's own default here: the warning
    else:
        assert ran == "f32" and torch.allclose(got, want, atol=1e-5)


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
    ov_model = session(threads=1).prepare_model(copy.deepcopy(model))
    x = {"input_ids": torch.randint(0, 50, (4, 9)), "attention_mask": torch.ones(4, 9, dtype=torch.long)}
    with torch.inference_mode():
        got = ov_model(**x)
        assert torch.allclose(got, model(**x)["logits"], atol=1e-5)
        y = {"input_ids": torch.randint(0, 50, (2, 9)), "attention_mask": torch.ones(2, 9, dtype=torch.long)}
        assert torch.allclose(ov_model(**y), model(**y)["logits"], atol=1e-5)  # the batch is dynamic
        # the sequence length is the first call's: another is refused, not answered with a stale output
        z = {"input_ids": torch.randint(0, 50, (2, 5)), "attention_mask": torch.ones(2, 5, dtype=torch.long)}
        with pytest.raises(ValueError, match=r"^openvino: input 'input_ids' has shape \(2, 5\); the model was "
                                             r"converted for \(batch, 9\)$"):
            ov_model(**z)
    assert [p.get_any_name() for p in ov_model.compiled.inputs] == ["input_ids", "attention_mask"]


def test_a_torch_int8_module_is_skipped_with_the_converter_s_reason():
    quantized = torch.ao.quantization.quantize_dynamic(mlp(), {nn.Linear}, dtype=torch.qint8)
    ov_model = session(threads=1).prepare_model(quantized)
    with pytest.raises(Skip, match=r"^openvino: the model cannot be converted \(OpConversionFailure: .*"
                                   r"quantized::linear_dynamic"), torch.inference_mode():
        ov_model(torch.randn(2, 1, 8, 8))


def test_without_the_extra_the_backend_says_what_to_install(monkeypatch):
    real = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name == "openvino" or name.startswith("openvino."):
            raise ImportError("No module named 'openvino'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    reason = OvSession(OvParams()).unavailable_reason()
    assert reason == f"the openvino backend needs openvino: {EXTRA}" and "optbench-runtimes[openvino]" in reason


def test_a_device_openvino_lacks_is_unavailable_with_the_devices_it_has():
    import openvino

    if any(d.startswith("GPU") for d in openvino.Core().available_devices):
        pytest.skip("this machine has an OpenVINO GPU device")
    reason = OvSession(OvParams(device="gpu")).unavailable_reason()
    assert "has no GPU device (it has CPU" in reason


class _Split:
    """A training split of random digits-shaped inputs, as the harness's datasets hand out batches."""

    def __init__(self, n: int = 256) -> None:
        self.x = torch.randn(n, 1, 8, 8)

    def __len__(self) -> int:
        return len(self.x)

    def batches(self, batch_size, limit, shuffle, seed):
        class Batch:
            def __init__(self, inputs) -> None:
                self.inputs = inputs

        for i in range(0, limit, batch_size):
            yield Batch(self.x[i:i + batch_size])


def test_openvino_quantize_makes_an_int8_graph_with_nearly_the_same_answers():
    from optbench_runtimes.openvino_quantize import QUANTIZE

    class Data:
        train = _Split()

    model = mlp(256)
    ctx = MethodContext(data=Data(), device=torch.device("cpu"), backend="openvino", seed=0, log=lambda m: None,
                        batch_sizes=(1,))
    s = session(threads=1)
    float_model = s.prepare_model(mlp(256))
    x = torch.randn(32, 1, 8, 8)
    with torch.inference_mode():
        float_model(x)
    float_bytes = float_model.ir_bytes
    int8 = s.prepare_model(QUANTIZE.apply(mlp(256), QUANTIZE.params(calibration_batches=4), ctx))
    with torch.inference_mode():
        got, want = int8(x), model(x)
    with s.memory_window() as reading:
        pass
    assert reading.fields["quantize_s"] > 0 and "i8" in reading.fields["precision_ops"]
    assert s.deployed_bytes() < float_bytes / 2  # int8 weights, stored as int8
    assert not torch.allclose(got, want, atol=1e-6)
    assert torch.nn.functional.cosine_similarity(got, want).min() > 0.99


def test_openvino_quantize_skips_on_other_backends_with_the_reason():
    from optbench_runtimes.openvino_quantize import QUANTIZE

    ctx = MethodContext(data=None, device=torch.device("cpu"), backend="onnxruntime", seed=0, log=print,
                        batch_sizes=(1,))
    with pytest.raises(Skip, match="^openvino.quantize quantizes the graph OpenVINO runs: it runs on the openvino "
                                   "backend, not on onnxruntime$"):
        QUANTIZE.apply(mlp(), QUANTIZE.params(), ctx)
