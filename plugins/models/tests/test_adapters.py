"""Model adapters through the harness: real suites, the plugin loaded from its entry point."""
from __future__ import annotations

import importlib.util

import pytest
import torch
from optbench_models.text import (
    TokenParams,
    TransformersParams,
    build_transformers,
    load_tokens,
)
from optbench_models.vision import TorchvisionParams
from pydantic import ValidationError

HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None
try:
    import torchvision  # noqa: F401  (the wheel may be present but not loadable beside this torch)
except Exception:
    HAS_TORCHVISION = False

BERT = {"model_type": "bert", "vocab_size": 500, "hidden_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 128}


def test_tokens_dataset_is_deterministic_int_ids_without_labels():
    a, b = load_tokens(TokenParams(seq_len=16, vocab=50, samples=8), 0), load_tokens(TokenParams(seq_len=16, vocab=50, samples=8), 0)
    assert a.x_test.dtype == torch.int64 and a.x_test.shape == (8, 16)
    assert torch.equal(a.x_test, b.x_test) and int(a.x_test.max()) < 50
    assert a.y_test is None and not a.has_labels


def test_transformers_params_need_exactly_one_source():
    with pytest.raises(ValidationError, match="exactly one of"):
        TransformersParams(config=BERT, path="/somewhere")
    with pytest.raises(ValidationError, match="model_type"):
        TransformersParams(config={"hidden_size": 8})


def test_transformers_from_config_and_from_a_local_directory(tmp_path):
    data = load_tokens(TokenParams(seq_len=12, vocab=500, classes=3, samples=4), 0)
    model = build_transformers(TransformersParams(config=BERT, seq_len=12), data).eval()
    with torch.inference_mode():
        logits = model(data.x_test)
    assert logits.shape == (4, 3)
    model.model.save_pretrained(tmp_path / "saved")
    again = build_transformers(TransformersParams(path=str(tmp_path / "saved"), seq_len=12), data).eval()
    with torch.inference_mode():
        assert torch.allclose(again(data.x_test), logits, atol=1e-5)  # the weights came from disk
    with pytest.raises(ValueError, match=r"declares input_shape \[99\]"):
        build_transformers(TransformersParams(config=BERT, seq_len=99), data)


def test_a_transformer_suite_measures_speed_and_size_with_null_accuracy(optbench_run):
    suite = {
        "name": "text",
        "datasets": [{"name": "tokens", "params": {"seq_len": 16, "vocab": 500, "samples": 8}}],
        "models": [{"name": "transformers", "id": "tiny-bert", "params": {"config": BERT, "seq_len": 16}}],
        "methods": [{"name": "quantize.dynamic_int8"}, {"name": "quantize.static_int8"}, {"name": "prune.structured"}],
    }
    run = optbench_run(suite)
    assert run.exit_code == 0, [r["error"] for r in run.records]
    static = run.by_method("quantize.static_int8")[0]
    assert static["status"] == "skipped" and "torch.fx could not trace model TransformersModule" in static["error"]
    structured = run.by_method("prune.structured")[0]
    assert structured["status"] == "ok" and structured["params_count"] < run.by_method("baseline")[0]["params_count"]
    base, q = run.by_method("baseline")[0], run.by_method("quantize.dynamic_int8")[0]
    assert base["model"] == "tiny-bert" and base["latency_p50_ms"] > 0 and base["flops"] > 0
    assert base["accuracy"] is None and q["accuracy"] is None  # random weights: no accuracy
    assert q["size_ratio"] > 1.5  # the Linear layers went int8; embeddings stayed float


def test_a_random_weight_model_on_labelled_data_reports_no_accuracy(optbench_run, tiny_suite):
    suite = tiny_suite()
    suite["models"] = [{"name": "transformers", "params": {"config": BERT, "seq_len": 16}}]
    suite["datasets"] = [{"name": "tokens", "params": {"seq_len": 16, "vocab": 500}}]
    run = optbench_run(suite)
    assert run.records[0]["status"] == "ok" and run.records[0]["accuracy"] is None


def test_weights_are_the_models_own_param_not_a_kwarg():
    with pytest.raises(ValidationError, match=r"give \['weights'\] as the model's own params"):
        TorchvisionParams(arch="resnet18", kwargs={"weights": "DEFAULT"})


@pytest.mark.skipif(HAS_TORCHVISION, reason="torchvision is importable here")
def test_without_torchvision_the_cell_fails_naming_the_package(optbench_run, tiny_suite):
    suite = tiny_suite()
    suite["datasets"] = [{"name": "synthetic", "params": {"shape": [3, 32, 32], "samples": 4}}]
    suite["models"] = [{"name": "torchvision", "params": {"arch": "resnet18", "input_shape": [3, 32, 32]}}]
    run = optbench_run(suite)
    assert run.exit_code == 1
    err = run.records[0]["error"]
    assert "needs the package 'torchvision'" in err and "pip install 'optbench-models[torchvision]'" in err


@pytest.mark.skipif(not HAS_TORCHVISION, reason="torchvision is not importable beside this torch build")
def test_torchvision_resnet18_on_synthetic_input(optbench_run, tiny_suite):
    suite = tiny_suite()
    suite["datasets"] = [{"name": "synthetic", "params": {"shape": [3, 64, 64], "samples": 4}}]
    suite["models"] = [{"name": "torchvision", "id": "resnet18", "params": {"arch": "resnet18", "input_shape": [3, 64, 64]}}]
    run = optbench_run(suite)
    assert run.exit_code == 0, run.records[0]["error"]
    r = run.records[0]
    assert r["params_count"] == 11_181_642 and r["accuracy"] is None and r["latency_p50_ms"] > 0


HAS_TIMM = HAS_TORCHVISION and importlib.util.find_spec("timm") is not None


@pytest.mark.skipif(not HAS_TIMM, reason="timm (and a loadable torchvision) are not installed here")
def test_timm_model_by_name_with_random_weights(optbench_run, tiny_suite):
    suite = tiny_suite("quantize.dynamic_int8")
    suite["datasets"] = [{"name": "synthetic", "params": {"shape": [3, 32, 32], "classes": 10, "samples": 4}}]
    suite["models"] = [{"name": "timm", "id": "timm-resnet18", "params": {"arch": "resnet18", "input_shape": [3, 32, 32]}}]
    run = optbench_run(suite)
    assert run.exit_code == 0, [r["error"] for r in run.records]
    base = run.by_method("baseline")[0]
    assert base["params_count"] == 11_181_642 and base["accuracy"] is None  # same architecture as torchvision's
