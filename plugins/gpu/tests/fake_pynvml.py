"""A stand-in for the pynvml module: a machine with a few GPUs, no driver needed."""
from __future__ import annotations

import types
from dataclasses import dataclass, field
from typing import Any


class NVMLError(Exception):
    pass


@dataclass
class FakeGpu:
    uuid: str
    name: str = "Fake GPU"
    energy_mj: int | None = 1_000_000  # None: the query is not supported
    processes: list[tuple[int, int | None]] = field(default_factory=list)
    mig: dict[str, Any] = field(default_factory=dict)  # MIG uuid -> MIG handle


@dataclass
class Proc:
    pid: int
    usedGpuMemory: int | None


def make(gpus: list[FakeGpu], *, init_error: bool = False) -> types.ModuleType:
    """A module object with the pynvml functions optbench_gpu.nvml uses."""
    m = types.ModuleType("pynvml")
    m.NVMLError = NVMLError
    m.NVML_CLOCK_SM, m.NVML_CLOCK_MEM, m.NVML_TEMPERATURE_GPU = 1, 2, 0
    m.gpus = gpus
    m.init_calls = 0

    def nvmlInit() -> None:
        m.init_calls += 1
        if init_error:
            raise NVMLError("Driver Not Loaded")

    def handle(i: int) -> FakeGpu:
        if not 0 <= i < len(gpus):
            raise NVMLError("Invalid Argument")
        return gpus[i]

    def energy(h: FakeGpu) -> int:
        if h.energy_mj is None:
            raise NVMLError("Not Supported")
        return h.energy_mj

    def by_uuid(u: str) -> Any:
        for g in gpus:
            if g.uuid == u:
                return g
            if u in g.mig:
                return g.mig[u]
        raise NVMLError("Not Found")

    def parent(h: Any) -> FakeGpu:
        for g in gpus:
            if h in g.mig.values():
                return g
        raise NVMLError("Invalid Argument")

    m.nvmlInit = nvmlInit
    m.nvmlDeviceGetCount = lambda: len(gpus)
    m.nvmlDeviceGetHandleByIndex = handle
    m.nvmlDeviceGetHandleByUUID = by_uuid
    m.nvmlDeviceGetDeviceHandleFromMigDeviceHandle = parent
    m.nvmlDeviceGetUUID = lambda h: h.uuid
    m.nvmlDeviceGetName = lambda h: h.name
    m.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(total=16 * 2**30, used=0, free=16 * 2**30)
    m.nvmlDeviceGetTotalEnergyConsumption = energy
    m.nvmlDeviceGetComputeRunningProcesses = lambda h: [Proc(pid, used) for pid, used in h.processes]
    m.nvmlDeviceGetGraphicsRunningProcesses = lambda h: []
    m.nvmlDeviceGetClockInfo = lambda h, kind: {1: 1410, 2: 1215}[kind]
    m.nvmlDeviceGetTemperature = lambda h, kind: 41
    m.nvmlSystemGetDriverVersion = lambda: "550.54.15"
    m.nvmlSystemGetCudaDriverVersion_v2 = lambda: 12040
    return m
