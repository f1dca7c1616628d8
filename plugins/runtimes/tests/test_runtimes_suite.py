"""One real suite across torch, ONNX Runtime and OpenVINO through the real entry points: the same
accuracy on every backend, the runtimes' own int8 quantizers, each skipped with its reason elsewhere,
and every record ranked against the reference backend's baseline (reference_speedup). (Torch's int8
modules are skipped on both runtimes with the exporter's reason: their unit tests show it.)"""
from __future__ import annotations

import pytest

pytest.importorskip("onnxruntime", reason="the onnxruntime extra is not installed")
pytest.importorskip("openvino", reason="the openvino extra is not installed")

from harness.results.records import fill_relative_figures, read_records


@pytest.mark.slow
def test_a_suite_across_torch_onnxruntime_and_openvino(optbench_run):
    run = optbench_run({
        "name": "runtimes",
        "datasets": ["digits"],
        "models": [{"name": "mlp", "params": {"hidden": [256, 256], "epochs": 2}}],
        "methods": [{"name": "prune.magnitude", "params": {"sparsity": 0.5}},
                    {"name": "onnx.quantize_static", "params": {"calibration_batches": 4, "per_channel": True}},
                    {"name": "openvino.quantize", "params": {"calibration_batches": 4}}],
        # the reference is the last backend listed: its cells run first all the same
        "backends": [{"name": "onnxruntime", "params": {"threads": 1}}, {"name": "openvino", "params": {"threads": 1}},
                     {"name": "cpu", "params": {"threads": 1}}],
        "reference_backend": "cpu",
        "measure": {"batch_sizes": [4], "warmup": {"min_iters": 2, "min_seconds": 0.0},
                    "repeat": {"min_iters": 10, "min_seconds": 0.0}, "fidelity_samples": 64},
    })
    assert run.exit_code == 0
    by = {(r["backend"], r["method"], r["batch_size"]): r for r in run.records}
    assert run.records[0]["backend"] == "cpu"

    # the same float model on every backend: the same answers
    for method in ("baseline", "prune.magnitude"):
        for bs in (4,):
            torch_r = by[("cpu", method, bs)]
            for backend, runtime in (("onnxruntime", "onnxruntime"), ("openvino", "openvino")):
                r = by[(backend, method, bs)]
                assert r["status"] == "ok", r["error"]
                assert r["accuracy"] == pytest.approx(torch_r["accuracy"], abs=1e-9), backend
                assert r["runtime"] == runtime and r["runtime_version"] and r["export_s"] > 0
                assert r["flops"] == torch_r["flops"] and r["latency_p50_ms"] > 0
                assert r["model_bytes"] == pytest.approx(torch_r["model_bytes"], rel=0.25)  # the same float weights
    ort, ov = by[("onnxruntime", "baseline", 4)], by[("openvino", "baseline", 4)]
    assert ort["provider"] == "CPUExecutionProvider" and ort["model_bytes"] == ort["onnx_bytes"]
    assert ov["provider"] == "CPU" and ov["model_bytes"] == ov["ir_bytes"] and ov["runtime_precision"] == "f32"
    assert ov["default_precision"] in ("f32", "bf16")  # recorded whatever it is
    assert by[("openvino", "prune.magnitude", 4)]["paired"] is True
    assert by[("openvino", "prune.magnitude", 4)]["cosine"] == pytest.approx(
        by[("cpu", "prune.magnitude", 4)]["cosine"], abs=1e-4)

    # the runtimes' own int8: a quarter of the float graph's size, nearly the same answers
    for backend, name in (("onnxruntime", "onnx.quantize_static"), ("openvino", "openvino.quantize")):
        r, base = by[(backend, name, 4)], by[(backend, "baseline", 4)]
        assert r["status"] == "ok", r["error"]
        assert 2.5 < r["size_ratio"] < 4.5 and r["quantize_s"] > 0 and r["paired"] is True, name
        assert r["agreement"] > 0.95 and r["cosine"] > 0.99 and r["accuracy"] == pytest.approx(base["accuracy"],
                                                                                               abs=0.03)
        for other in {"cpu", "onnxruntime", "openvino"} - {backend}:
            skipped = by[(other, name, 4)]
            assert skipped["error"] == f"{name} runs on the {backend} backend, not on {other}"
            log = (run.run_dir / "cells" / skipped["cell_id"] / "log.txt").read_text()
            assert skipped["status"] == "skipped" and " model " not in log  # skipped before anything loaded
    assert "i8" in by[("openvino", "openvino.quantize", 4)]["precision_ops"]

    # one scale for every backend: the cpu baseline's p50 over this p50, written as each cell ended
    again = {(r["backend"], r["method"], r["batch_size"]): r for r in fill_relative_figures(read_records(run.run_dir))}
    for key, r in by.items():
        if r["status"] != "ok":
            assert r["reference_speedup"] is None
            continue
        assert r["reference_backend"] == "cpu" and r["reference_backend_params"] == {"threads": 1}
        ref = by[("cpu", "baseline", key[2])]
        want = r["speedup"] if key[0] == "cpu" else ref["latency_p50_ms"] / r["latency_p50_ms"]
        assert r["reference_speedup"] == pytest.approx(want) and again[key]["reference_speedup"] == pytest.approx(want)
    import html as markup

    page = markup.unescape((run.run_dir / "report.html").read_text())
    assert "vs reference (×)" in page and "cpu's baseline p50 / this p50" in page
