"""The timer's rules, the statistics, host memory and model size/FLOPs."""
from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from harness.measure import memory, model_stats
from harness.measure.stats import summarize
from harness.measure.timing import time_calls


def budget(iters, seconds):
    return SimpleNamespace(min_iters=iters, min_seconds=seconds)


def test_warmup_and_repeat_each_run_until_both_minimums_hold():
    calls = []
    samples = time_calls(lambda: calls.append(1), budget(7, 0.0), budget(11, 0.0))
    assert len(calls) == 18 and len(samples) == 11
    calls.clear()
    t0 = time.perf_counter()
    samples = time_calls(lambda: calls.append(1), budget(1, 0.05), budget(3, 0.1))
    assert time.perf_counter() - t0 >= 0.15
    assert len(samples) > 3 and len(calls) > len(samples)  # time, not count, was the binding rule


def test_each_sample_times_one_call_including_sync():
    synced = []
    samples = time_calls(lambda: time.sleep(0.002), budget(1, 0), budget(5, 0), sync=lambda: (time.sleep(0.001), synced.append(1)))
    assert len(synced) == 6
    assert all(3e6 <= s < 50e6 for s in samples)


def test_summary_statistics_and_noise_flag():
    ms = [1.0] * 50 + [2.0] * 50
    stats = summarize([int(x * 1e6) for x in ms], batch_size=8)
    assert stats["latency_p50_ms"] == pytest.approx(1.5)
    assert stats["latency_iqr_ms"] == pytest.approx(1.0)
    assert stats["noisy"] is True and stats["latency_n"] == 100
    assert stats["throughput_per_s"] == pytest.approx(8 / 1.5e-3)
    quiet = summarize([1_000_000 + i for i in range(100)], batch_size=1)
    assert quiet["noisy"] is False and quiet["latency_p99_ms"] == pytest.approx(1.000098, rel=1e-6)
    with pytest.raises(ValueError):
        summarize([], batch_size=1)


def test_peak_rss_sees_an_allocation_inside_the_window_only():
    big = bytearray(300 * 2**20)
    big[::4096] = b"x" * len(big[::4096])
    del big  # the process's lifetime peak is now high; the window's must not be
    before = memory.rss_bytes()
    with memory.PeakRSS() as quiet:
        pass
    assert quiet.bytes < before + 50 * 2**20
    with memory.PeakRSS() as peak:
        buf = bytearray(100 * 2**20)
        buf[::4096] = b"x" * len(buf[::4096])
        del buf
    assert peak.bytes >= before + 90 * 2**20


def test_model_size_counts_and_flops():
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    total, nonzero = model_stats.param_counts(model)
    assert total == nonzero == 64 * 32 + 32 + 32 * 10 + 10
    dense = 2 * (64 * 32 + 32 * 10)
    assert model_stats.count_flops(model, torch.zeros(1, 64)) == (dense, dense)
    with torch.no_grad():
        model[0].weight[:16] = 0  # half of the first layer's weights
    assert model_stats.param_counts(model)[1] == nonzero - 16 * 64
    assert model_stats.count_flops(model, torch.zeros(1, 64)) == (dense, dense - 64 * 32)
    assert model_stats.model_bytes(model) > 4 * total


def test_quantized_layers_are_counted_though_torch_flop_counter_misses_them():
    import warnings

    model = nn.Sequential(nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    dense = 2 * (256 * 128 + 128 * 10)
    assert model_stats.count_flops(q, torch.zeros(1, 256))[0] == dense
    assert model_stats.count_flops(q, torch.zeros(3, 256))[0] == 3 * dense
    total, _ = model_stats.param_counts(q)
    assert total == 256 * 128 + 128 + 128 * 10 + 10
    assert model_stats.model_bytes(q) < model_stats.model_bytes(model) / 3  # int8 weights vs float32


def test_tensor_subclass_weights_are_counted_like_plain_ones():
    torchao = pytest.importorskip("torchao.quantization")
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)).eval()
    torchao.quantize_(model, torchao.Int8WeightOnlyConfig())
    total, nonzero = model_stats.param_counts(model)
    assert total == 64 * 128 + 128 + 128 * 10 + 10 and 0 < nonzero <= total
    flops, effective = model_stats.count_flops(model, torch.zeros(1, 64))
    assert flops == 2 * (64 * 128 + 128 * 10) and effective <= flops


def test_int8_matmuls_the_flop_counter_misses_are_still_counted():
    torchao = pytest.importorskip("torchao.quantization")
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10)).eval()
    torchao.quantize_(model, torchao.Int8DynamicActivationInt8WeightConfig())  # torch's counter sees 0 here
    assert model_stats.count_flops(model, torch.zeros(1, 64))[0] == 2 * (64 * 256 + 256 * 10)
