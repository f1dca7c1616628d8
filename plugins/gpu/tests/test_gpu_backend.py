"""The cuda backend without a GPU: registration, params, availability, timing and memory
logic with fakes, and a suite through the harness that skips every cell with the reason."""
from __future__ import annotations

import logging
import os
import sys
from importlib.metadata import entry_points
from types import SimpleNamespace

import fake_pynvml
import pytest
import torch
from fake_pynvml import FakeGpu
from optbench_gpu import backend, nvml, plugin
from optbench_gpu.backend import CudaParams, CudaSession, time_cuda_calls, window_fields
from pydantic import ValidationError

from harness.testing import registered_objects

NO_CUDA = not torch.cuda.is_available()
needs_no_gpu = pytest.mark.skipif(not NO_CUDA, reason="checks the no-GPU behaviour")


@pytest.fixture(autouse=True)
def fresh_nvml(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    nvml.reset()
    yield
    nvml.reset()


@pytest.fixture
def gpu_entry_point(optbench_plugin):
    """The installed entry point, as a user gets it; this checkout's plugin module when the
    distribution is not pip-installed."""
    if not any(ep.name == "gpu" for ep in entry_points(group="optbench")):
        optbench_plugin(plugin, name="gpu")


def expected_reason() -> str:
    if torch.version.cuda is None:
        return "this torch build has no CUDA support"
    return "no CUDA device is visible"


# ------------------------------------------------------------------ registration and params


def test_registers_the_cuda_backend():
    (obj,) = [o for o in registered_objects(plugin) if o.name == "cuda"]
    assert obj.name == "cuda" and obj.kind == "backend" and obj.params is CudaParams
    assert isinstance(obj.create(CudaParams()), CudaSession)


def test_params_defaults_and_bounds():
    p = CudaParams()
    assert (p.device, p.dtype, p.tf32, p.cudnn_benchmark) == (0, "float32", False, False)
    assert CudaParams(device=3, dtype="bfloat16", tf32=True, cudnn_benchmark=True).dtype == "bfloat16"
    for bad in ({"device": -1}, {"dtype": "int8"}, {"dtype": "float64"}, {"gpu": 0}):
        with pytest.raises(ValidationError):
            CudaParams(**bad)


# ------------------------------------------------------------------ availability


@needs_no_gpu
def test_unavailable_here_with_a_clear_sentence():
    reason = CudaSession(CudaParams()).unavailable_reason()
    assert reason is not None and reason.startswith(expected_reason())


@pytest.fixture
def no_context(monkeypatch):
    """Fail the test if CUDA were initialised (a context created)."""
    def boom(*a, **k):
        raise AssertionError("unavailable_reason initialised CUDA")

    monkeypatch.setattr(torch.cuda, "_lazy_init", boom)
    monkeypatch.setattr(torch.cuda, "init", boom)


def test_reason_for_a_torch_build_without_cuda(monkeypatch, no_context):
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: pytest.fail("device_count called"))
    reason = CudaSession(CudaParams()).unavailable_reason()
    assert reason.startswith("this torch build has no CUDA support")


def test_reason_when_no_device_is_visible(monkeypatch, no_context):
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert CudaSession(CudaParams()).unavailable_reason() == "no CUDA device is visible (CUDA_VISIBLE_DEVICES='')"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert "CUDA_VISIBLE_DEVICES is not set" in CudaSession(CudaParams()).unavailable_reason()


def test_reason_for_an_index_out_of_range_and_for_bfloat16(monkeypatch, no_context):
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "Tesla T4")
    capability = {0: (7, 5), 1: (8, 0)}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: capability[i])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    reason = CudaSession(CudaParams(device=2)).unavailable_reason()
    assert reason.startswith("CUDA device index 2 is out of range: 2 device(s) visible")
    assert "CUDA_VISIBLE_DEVICES='3,5'" in reason
    reason = CudaSession(CudaParams(device=0, dtype="bfloat16")).unavailable_reason()
    assert reason == "bfloat16 needs compute capability >= 8.0 (Ampere); cuda:0 (Tesla T4) is 7.5"
    assert CudaSession(CudaParams(device=1, dtype="bfloat16")).unavailable_reason() is None
    assert CudaSession(CudaParams(device=0, dtype="float16")).unavailable_reason() is None


@needs_no_gpu
def test_device_key_names_the_physical_gpu_when_it_can(monkeypatch):
    assert CudaSession(CudaParams()).device_key == "cuda:0"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-abc,3")
    assert CudaSession(CudaParams(device=0)).device_key == "cuda:GPU-abc"
    assert CudaSession(CudaParams(device=1)).device_key == "cuda:nvml3"
    # NVML, CUDA not initialised: the UUID of the GPU CUDA_VISIBLE_DEVICES points at
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml.make([FakeGpu(f"GPU-{n}{n}") for n in "abc"]))
    nvml.reset()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")
    monkeypatch.setattr(torch.cuda, "_lazy_init", lambda: pytest.fail("device_key initialised CUDA"))
    assert CudaSession(CudaParams(device=0)).device_key == "cuda:GPU-cc"
    assert CudaSession(CudaParams(device=1)).device_key == "cuda:GPU-aa"
    # inside a cell, once CUDA is initialised: torch's own UUID
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda i: SimpleNamespace(uuid="5f3a0000-1111-2222-3333-444455556666"))
    assert CudaSession(CudaParams(device=0)).device_key == "cuda:GPU-5f3a0000-1111-2222-3333-444455556666"


@needs_no_gpu
def test_info_without_a_gpu_is_nulls_and_no_gpus():
    info = CudaSession(CudaParams()).info()
    assert info["gpus"] == [] and info["torch_cuda_version"] == torch.version.cuda
    assert info["driver_version"] is None and info["nvml_error"]


# ------------------------------------------------------------------ CUDA-event timing, with fakes


class Recorder:
    """Fake events and synchronize that log their order; an event read before a sync fails."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.calls = 0
        self.synced_upto = -1  # index in log of the last sync

    def event(self) -> Recorder.Event:
        return Recorder.Event(self)

    def sync(self) -> None:
        self.log.append("sync")
        self.synced_upto = len(self.log) - 1

    def fn(self) -> None:
        self.calls += 1
        self.log.append(f"fn{self.calls}")

    class Event:
        def __init__(self, rec: Recorder) -> None:
            self.rec, self.at, self.call = rec, None, None

        def record(self) -> None:
            self.at = len(self.rec.log)
            self.call = self.rec.calls
            self.rec.log.append("record")

        def elapsed_time(self, end: Recorder.Event) -> float:
            assert self.at is not None and end.at is not None, "elapsed_time on an unrecorded event"
            assert self.rec.synced_upto > end.at, "event read before the device was synchronised"
            return float(end.call)  # "milliseconds": the number of the call it brackets


def budget(iters: int, seconds: float = 0.0) -> SimpleNamespace:
    return SimpleNamespace(min_iters=iters, min_seconds=seconds)


def test_event_timing_warms_up_then_times_with_a_sync_before_each_read():
    rec = Recorder()
    ns = time_cuda_calls(rec.fn, budget(3), budget(5), new_event=rec.event, synchronize=rec.sync)
    assert rec.calls == 8
    assert ns == [int(k * 1e6) for k in (4, 5, 6, 7, 8)]  # the timed calls, not the warm-up
    # each call: record, fn, record, then a sync before the next call starts
    assert rec.log[:4] == ["record", "fn1", "record", "sync"]
    assert rec.log.count("sync") >= 8


def test_event_timing_keeps_the_min_seconds_rules(monkeypatch):
    import harness.measure.timing

    now = [0]
    monkeypatch.setattr(harness.measure.timing.time, "perf_counter_ns", lambda: now[0])
    rec = Recorder()

    def slow() -> None:
        rec.fn()
        now[0] += 1_000_000  # each call takes 1 ms of (fake) host time

    ns = time_cuda_calls(slow, budget(1, 0.005), budget(2, 0.010), new_event=rec.event, synchronize=rec.sync)
    assert 10 <= len(ns) <= 11 and rec.calls - len(ns) >= 5


def test_session_time_calls_uses_cuda_events_and_counts_calls(monkeypatch):
    rec = Recorder()
    monkeypatch.setattr(torch.cuda, "Event", lambda enable_timing: rec.event())
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: rec.sync())
    session = CudaSession(CudaParams())
    ns = session.time_calls(rec.fn, budget(2), budget(4))
    assert len(ns) == 4 and session._calls == 6


# ------------------------------------------------------------------ memory window, with fakes


def fields(**overrides):
    args = {"peak_allocated": 64 * 2**20, "peak_reserved": 128 * 2**20, "energy_start_mj": 10_000,
            "energy_end_mj": 30_000, "window_s": 4.0, "calls": 50, "batch_size": 8, "procs_start": {},
            "procs_end": {42: 300 * 2**20}, "pid": 42, "nvml_ok": True}
    return window_fields(**{**args, **overrides})


def test_window_fields_divide_energy_by_samples():
    f = fields()
    assert f["device_peak_allocated_mb"] == 64 and f["device_peak_reserved_mb"] == 128
    assert f["energy_j"] == 20.0 and f["energy_calls"] == 50
    assert f["energy_j_per_sample"] == pytest.approx(20.0 / 400) and f["mean_power_w"] == 5.0
    assert f["device_used_mb"] == 300 and f["gpu_other_processes"] == 0


def test_window_fields_are_null_when_nvml_cannot_say():
    f = fields(energy_start_mj=None, energy_end_mj=None, procs_end={}, nvml_ok=False)
    for key in ("energy_j", "energy_calls", "energy_j_per_sample", "mean_power_w", "device_used_mb",
                "gpu_other_processes"):
        assert f[key] is None, key
    assert fields(energy_end_mj=5)["energy_j"] is None  # counter went backwards (driver reload)
    f = fields(batch_size=None)
    assert f["energy_j"] == 20.0 and f["energy_j_per_sample"] is None


def test_window_fields_count_other_processes():
    assert fields(procs_start={7: 1}, procs_end={42: 1, 8: None})["gpu_other_processes"] == 2
    # own pid not listed (a container's PID namespace): one entry is this process
    f = fields(procs_start={}, procs_end={9001: 2**20, 7: 2**20})
    assert f["gpu_other_processes"] == 1 and f["device_used_mb"] is None


@pytest.fixture
def fake_cuda(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append("sync"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: calls.append("reset"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 2**20)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device=None: 2 * 2**20)
    return calls


def test_memory_window_with_a_fake_gpu_fills_every_field_and_warns(monkeypatch, fake_cuda, caplog):
    gpu = FakeGpu("GPU-aaaa", processes=[(os.getpid(), 5 * 2**20), (4321, 2**20)])
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml.make([gpu]))
    monkeypatch.setattr(CudaSession, "device", property(lambda self: torch.device("cpu")))
    session = CudaSession(CudaParams())
    session._handle = gpu
    with caplog.at_level(logging.WARNING, logger="optbench_gpu"), session.memory_window(batch_size=8) as reading:
        assert fake_cuda == ["sync", "reset"]
        for _ in range(5):
            session._calls += 1
            gpu.energy_mj += 400  # 0.4 J per call
    f = reading.fields
    assert f["device_peak_allocated_mb"] == 1 and f["device_peak_reserved_mb"] == 2
    assert f["device_used_mb"] == 5 and f["gpu_other_processes"] == 1
    assert f["energy_j"] == pytest.approx(2.0) and f["energy_calls"] == 5
    assert f["energy_j_per_sample"] == pytest.approx(2.0 / 40) and f["mean_power_w"] > 0
    assert "1 other process(es)" in caplog.text


def test_memory_window_without_nvml_gives_null_fields_and_no_exception(monkeypatch, fake_cuda):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    session = CudaSession(CudaParams())
    with session.memory_window() as reading:
        pass
    f = reading.fields
    assert f["device_peak_allocated_mb"] == 1
    assert all(f[k] is None for k in ("device_used_mb", "energy_j_per_sample", "mean_power_w", "gpu_other_processes"))


def test_prepare_input_casts_only_floating_inputs(monkeypatch):
    session = CudaSession(CudaParams(dtype="float16"))
    monkeypatch.setattr(CudaSession, "device", property(lambda self: torch.device("cpu")))
    assert session.prepare_input(torch.zeros(4, 2)).dtype == torch.float16
    assert session.prepare_input(torch.zeros(3, 2, dtype=torch.int64)).dtype == torch.int64
    model = session.prepare_model(torch.nn.Linear(2, 2).train())
    assert model.weight.dtype == torch.float16 and not model.training


# ------------------------------------------------------------------ through the harness


@needs_no_gpu
def test_a_suite_on_cuda_skips_every_cell_with_the_reason(gpu_entry_point, optbench_run, tiny_suite):
    suite = tiny_suite("quantize.half", {"dtype": "float16"})
    suite["backends"] = [{"name": "cuda", "params": {"dtype": "float16"}}]
    suite["measure"] = {**suite["measure"], "batch_sizes": [1, 8]}
    run = optbench_run(suite)
    assert run.exit_code == 0
    assert len(run.records) == 4
    reason = CudaSession(CudaParams()).unavailable_reason()
    for record in run.records:
        assert record["status"] == "skipped" and record["backend"] == "cuda"
        assert record["error"] == reason


def test_backend_module_imports_without_torch_at_module_level():
    assert "torch" not in backend.__dict__ and "torch" not in nvml.__dict__
