"""NVML helpers: device mapping under CUDA_VISIBLE_DEVICES, and fallbacks that never raise."""
from __future__ import annotations

import sys

import fake_pynvml
import pytest
from fake_pynvml import FakeGpu
from optbench_gpu import nvml

UUIDS = ["GPU-aaaa1111-0000-0000-0000-000000000000", "GPU-bbbb2222-0000-0000-0000-000000000000",
         "GPU-cccc3333-0000-0000-0000-000000000000"]


@pytest.fixture(autouse=True)
def fresh_nvml(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    nvml.reset()
    yield
    nvml.reset()


def install(monkeypatch, module):
    monkeypatch.setitem(sys.modules, "pynvml", module)
    nvml.reset()
    return module


# ------------------------------------------------------------------ parsing and mapping (pure)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", []),
        ("0,1", [0, 1]),
        ("2, 0", [2, 0]),
        ("1,foo,0", [1]),  # CUDA stops at the first invalid entry
        ("1,-1,0", [1]),
        ("0,0", [0]),  # a repeated index ends the list too
        ("GPU-abc,1", ["GPU-abc", 1]),
        ("MIG-4f1e-x", ["MIG-4f1e-x"]),
    ],
)
def test_cuda_visible_devices_is_parsed_as_cuda_reads_it(value, expected):
    assert nvml.parse_visible_devices(value) == expected


def test_uuid_match_wins_over_a_reordered_visible_list():
    # torch's UUID has no "GPU-" prefix in some versions; matching ignores it and case.
    m = nvml.nvml_index_for(0, torch_uuid=UUIDS[2][4:].upper(), visible="0,1", nvml_uuids=UUIDS)
    assert m == nvml.Mapping(2, "uuid")


def test_reordered_integers_map_through_the_visible_list():
    assert nvml.nvml_index_for(0, torch_uuid=None, visible="2,0", nvml_uuids=UUIDS).index == 2
    assert nvml.nvml_index_for(1, torch_uuid=None, visible="2,0", nvml_uuids=UUIDS).index == 0


def test_hidden_devices_and_out_of_range_entries_map_to_none():
    assert nvml.nvml_index_for(0, torch_uuid=None, visible="1", nvml_uuids=UUIDS).index == 1
    assert nvml.nvml_index_for(1, torch_uuid=None, visible="1", nvml_uuids=UUIDS).index is None
    assert nvml.nvml_index_for(0, torch_uuid=None, visible="7", nvml_uuids=UUIDS).index is None
    assert nvml.nvml_index_for(0, torch_uuid=None, visible="", nvml_uuids=UUIDS).index is None


def test_uuid_listed_devices_match_by_unique_prefix():
    visible = f"{UUIDS[1]},GPU-cccc"
    assert nvml.nvml_index_for(0, torch_uuid=None, visible=visible, nvml_uuids=UUIDS).index == 1
    assert nvml.nvml_index_for(1, torch_uuid=None, visible=visible, nvml_uuids=UUIDS).index == 2
    ambiguous = ["GPU-dd01", "GPU-dd02"]
    assert nvml.nvml_index_for(0, torch_uuid=None, visible="GPU-dd", nvml_uuids=ambiguous).index is None


def test_mig_entries_resolve_to_their_parent_gpu():
    m = nvml.nvml_index_for(0, torch_uuid="MIG-9", visible="MIG-9", nvml_uuids=UUIDS,
                            mig_parent={"MIG-9": 1}.get)
    assert m == nvml.Mapping(1, "visible_devices", mig_uuid="MIG-9")


def test_identity_without_uuid_or_visible_list_and_none_for_an_unknown_uuid():
    assert nvml.nvml_index_for(1, torch_uuid=None, visible=None, nvml_uuids=UUIDS) == nvml.Mapping(1, "identity")
    assert nvml.nvml_index_for(5, torch_uuid=None, visible=None, nvml_uuids=UUIDS).index is None
    assert nvml.nvml_index_for(0, torch_uuid="GPU-ffff", visible=None, nvml_uuids=UUIDS).index is None


# ------------------------------------------------------------------ through a fake pynvml


def test_handle_for_a_torch_device_with_a_reordered_visible_list(monkeypatch):
    fake = install(monkeypatch, fake_pynvml.make([FakeGpu(u) for u in UUIDS]))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")
    handle, mapping = nvml.handle_for_torch_device(0, None)
    assert handle is fake.gpus[2] and mapping.how == "visible_devices"
    handle, mapping = nvml.handle_for_torch_device(1, UUIDS[0])
    assert handle is fake.gpus[0] and mapping.how == "uuid"
    assert fake.init_calls == 1  # initialised once, then cached


def test_handle_for_uuid_and_mig_listed_devices(monkeypatch):
    parent = FakeGpu(UUIDS[1], mig={"MIG-77aa": object()})
    fake = install(monkeypatch, fake_pynvml.make([FakeGpu(UUIDS[0]), parent]))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-77aa,GPU-aaaa")
    handle, mapping = nvml.handle_for_torch_device(0, "MIG-77aa")
    assert handle is fake.gpus[1] and mapping.mig_uuid == "MIG-77aa"
    handle, _ = nvml.handle_for_torch_device(1, None)
    assert handle is fake.gpus[0]


def test_queries_through_the_fake(monkeypatch):
    gpu = FakeGpu(UUIDS[0], energy_mj=5000, processes=[(10, 2**30), (11, None)])
    install(monkeypatch, fake_pynvml.make([gpu]))
    assert nvml.device_count() == 1 and nvml.uuids() == [UUIDS[0]]
    assert nvml.driver_version() == "550.54.15" and nvml.cuda_driver_version() == "12.4"
    assert nvml.total_energy_mj(gpu) == 5000
    assert nvml.processes(gpu) == {10: 2**30, 11: None}
    details = nvml.gpu_details(gpu)
    assert details["sm_clock_mhz"] == 1410 and details["mem_clock_mhz"] == 1215
    assert details["temperature_c"] == 41 and details["nvml_memory_total_mb"] == 16 * 1024
    assert nvml.error() is None


# ------------------------------------------------------------------ fallbacks


def _assert_everything_is_empty():
    assert nvml.load() is None
    assert nvml.device_count() is None and nvml.uuids() == []
    assert nvml.driver_version() is None and nvml.cuda_driver_version() is None
    assert nvml.total_energy_mj(object()) is None
    assert nvml.processes(object()) == {}
    assert nvml.clock_mhz(object(), "sm") is None and nvml.temperature_c(object()) is None
    assert set(nvml.gpu_details(None).values()) == {None}
    assert nvml.handle_for_torch_device(0, UUIDS[0]) == (None, nvml.Mapping(None, "unavailable"))


def test_without_pynvml_everything_is_none_and_nothing_raises(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    nvml.reset()
    _assert_everything_is_empty()
    assert "pip install nvidia-ml-py" in nvml.error()


def test_when_nvml_init_raises_everything_is_none(monkeypatch):
    fake = install(monkeypatch, fake_pynvml.make([FakeGpu(UUIDS[0])], init_error=True))
    _assert_everything_is_empty()
    assert "Driver Not Loaded" in nvml.error() and fake.init_calls == 1


def test_unsupported_queries_give_none(monkeypatch):
    gpu = FakeGpu(UUIDS[0], energy_mj=None)
    fake = install(monkeypatch, fake_pynvml.make([gpu]))
    del fake.nvmlDeviceGetClockInfo  # an old pynvml without the function
    assert nvml.total_energy_mj(gpu) is None
    assert nvml.clock_mhz(gpu, "sm") is None
    assert nvml.handle_by_index(9) is None
