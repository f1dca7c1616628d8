"""On a real NVIDIA GPU only (marked ``gpu``, skipped elsewhere): timing, memory fields,
env facts and cpu-vs-cuda accuracy through the harness."""
from __future__ import annotations

from importlib.metadata import entry_points
from types import SimpleNamespace

import pytest
import torch
from optbench_gpu import plugin
from optbench_gpu.backend import CudaParams, CudaSession

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU with CUDA"),
]

FIELDS = ("device_peak_allocated_mb", "device_peak_reserved_mb", "device_used_mb", "energy_j", "energy_calls",
          "energy_j_per_sample", "mean_power_w", "gpu_other_processes")


@pytest.fixture
def gpu_entry_point(optbench_plugin):
    if not any(ep.name == "gpu" for ep in entry_points(group="optbench")):
        optbench_plugin(plugin, name="gpu")


@pytest.fixture
def session():
    s = CudaSession(CudaParams())
    assert s.unavailable_reason() is None
    facts = s.setup()
    assert facts["device_index"] == 0 and facts["gpu_name"] and facts["compute_capability"]
    assert s.device_key.startswith("cuda:")
    return s


def test_real_timing_and_memory_window(session):
    a = session.prepare_input(torch.randn(8, 1024))
    w = torch.randn(1024, 1024, device=session.device)
    with torch.inference_mode(), session.memory_window(batch_size=8) as reading:
        ns = session.time_calls(lambda: a @ w, SimpleNamespace(min_iters=3, min_seconds=0.0),
                                SimpleNamespace(min_iters=10, min_seconds=0.05))
    assert len(ns) >= 10 and all(t > 0 for t in ns)
    assert set(FIELDS) <= set(reading.fields)
    assert reading.fields["device_peak_allocated_mb"] > 0
    assert reading.fields["energy_calls"] in (None, session._calls)


def test_info_lists_the_visible_gpus(session):
    info = session.info()
    assert len(info["gpus"]) == torch.cuda.device_count()
    assert info["gpus"][0]["name"] and info["gpus"][0]["compute_capability"]


def test_accuracy_on_cuda_float32_equals_cpu(gpu_entry_point, optbench_run, tiny_suite):
    suite = tiny_suite(None)
    suite["backends"] = ["cpu", {"name": "cuda", "params": {"dtype": "float32", "tf32": False}}]
    run = optbench_run(suite)
    assert run.exit_code == 0
    by_backend = {r["backend"]: r for r in run.records}
    assert by_backend["cuda"]["status"] == "ok", by_backend["cuda"]["error"]
    assert by_backend["cuda"]["accuracy"] == pytest.approx(by_backend["cpu"]["accuracy"], abs=1e-3)
    assert by_backend["cuda"]["device_peak_allocated_mb"] > 0
