"""multi-gpu: the distributed path run for real with CPU ranks over gloo (no GPU needed)."""
from __future__ import annotations

import os
from importlib.metadata import entry_points
from types import SimpleNamespace

import pytest
import torch
from optbench_gpu import plugin
from optbench_gpu.multigpu import MultiGPUParams, MultiGPUSession, run_ranks
from torch import nn

from harness.testing import registered_objects

FAST = SimpleNamespace(min_iters=3, min_seconds=0.0)


@pytest.fixture
def gpu_entry_point(optbench_plugin):
    if not any(ep.name == "gpu" for ep in entry_points(group="optbench")):
        optbench_plugin(plugin, name="gpu")


class NeedsTheGroup(nn.Module):
    """Fails unless it runs inside a torchrun-like rank of a 2-process group."""

    def forward(self, x):
        import torch.distributed as dist

        assert os.environ["WORLD_SIZE"] == "2" and os.environ["LOCAL_RANK"] == os.environ["RANK"]
        assert dist.is_initialized() and dist.get_world_size() == 2
        return x * 2


class Broken(nn.Module):
    def forward(self, x):
        raise ValueError("shape mismatch in rank code")


def test_both_gpu_backends_are_registered():
    names = {b.name for b in registered_objects(plugin)}
    assert names == {"cuda", "multi-gpu"}


def test_ranks_get_a_torchrun_environment_and_aligned_samples():
    shares = list(torch.tensor_split(torch.ones(6, 3), 2))
    ranks = run_ranks(NeedsTheGroup(), shares, FAST, SimpleNamespace(min_iters=7, min_seconds=0.0),
                      device_type="cpu", threads=1)
    assert [r["rank"] for r in ranks] == [0, 1]
    assert len(ranks[0]["samples"]) == len(ranks[1]["samples"]) >= 7  # rank 0 stops everyone together
    assert all(t > 0 for r in ranks for t in r["samples"])


def test_a_failing_rank_raises_with_its_message():
    with pytest.raises(RuntimeError, match=r"rank [01] failed: ValueError: shape mismatch in rank code"):
        run_ranks(Broken(), [torch.ones(2, 3), torch.ones(2, 3)], FAST, FAST, device_type="cpu", threads=1,
                  timeout_s=60)


def test_cuda_ranks_need_enough_devices():
    reason = MultiGPUSession(MultiGPUParams(devices=2)).unavailable_reason()
    if torch.cuda.device_count() >= 2:
        pytest.skip("this machine has two GPUs")
    assert reason is not None and ("asks for 2 CUDA devices" in reason or "no CUDA support" in reason)
    assert MultiGPUSession(MultiGPUParams(devices=2, device_type="cpu")).unavailable_reason() is None


def test_a_suite_on_gloo_ranks_records_aggregate_and_per_rank_figures(gpu_entry_point, optbench_run, tiny_suite):
    suite = tiny_suite(model_params={"hidden": [64], "epochs": 1})
    suite["backends"] = [{"name": "multi-gpu", "params": {"devices": 2, "device_type": "cpu"}},
                         {"name": "multi-gpu", "params": {"devices": 2}}]
    suite["measure"] = {**suite["measure"], "batch_sizes": [1, 16]}
    run = optbench_run(suite)
    assert run.exit_code == 0
    gloo = {r["batch_size"]: r for r in run.records if r["backend_params"]["device_type"] == "cpu"}
    assert all(r["status"] == "ok" and r["world_size"] == 2 for r in gloo.values())
    assert gloo[16]["ranks_used"] == 2 and all(v > 0 for v in gloo[16]["rank_p50_ms"])
    assert gloo[16]["scaling_efficiency"] > 0 and gloo[16]["throughput_per_s"] > 0
    assert gloo[1]["ranks_used"] == 1 and gloo[1]["rank_p50_ms"][1] is None  # one sample: rank 1 idles
    assert gloo[1]["scaling_efficiency"] is None
    assert gloo[16]["accuracy"] == gloo[1]["accuracy"] is not None
    cuda = [r for r in run.records if r["backend_params"]["device_type"] == "cuda"]
    if torch.cuda.device_count() < 2:
        assert all(r["status"] == "skipped" and "CUDA" in r["error"] for r in cuda)
