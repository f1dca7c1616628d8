"""NVML helpers that never raise.

Every function returns None (or [] / {}) when pynvml is not installed, when NVML cannot
be initialised (no driver, a CPU-only machine, a container without the library) or
when the GPU does not support a query (energy before Volta, MIG instances, ...).
Nothing here imports torch, so the module loads anywhere.

Device mapping: torch numbers the devices that CUDA_VISIBLE_DEVICES leaves visible
(in its order), NVML numbers every GPU in the machine by PCI bus. ``nvml_index_for``
maps one to the other: by UUID first, then by parsing CUDA_VISIBLE_DEVICES (integers,
``GPU-`` UUIDs or unique prefixes of them, ``MIG-`` UUIDs), else index for index.
"""
from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

_state: dict[str, Any] = {"module": None, "tried": False, "error": None}


def reset() -> None:
    """Forget the cached NVML state (tests; after a driver reload)."""
    _state.update(module=None, tried=False, error=None)


def load() -> Any | None:
    """The initialised pynvml module, or None (the reason is in ``error()``)."""
    if _state["tried"]:
        return _state["module"]
    _state["tried"] = True
    try:
        module = importlib.import_module("pynvml")
    except Exception as exc:  # noqa: BLE001 - ImportError, or a broken install: never raise
        _state["error"] = f"pynvml is not importable ({type(exc).__name__}: {exc}); pip install nvidia-ml-py"
        return None
    try:
        module.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError (no driver, no library): never raise
        _state["error"] = f"NVML could not be initialised ({type(exc).__name__}: {exc})"
        return None
    _state["module"] = module
    return module


def error() -> str | None:
    """Why NVML is unavailable, once ``load()`` has failed; None otherwise."""
    load()
    return _state["error"]


def call(name: str, *args: Any) -> Any | None:
    """``pynvml.<name>(*args)``, or None when NVML is missing or the call fails."""
    module = load()
    if module is None:
        return None
    fn = getattr(module, name, None)
    if fn is None:
        return None
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - NVMLError (not supported, GPU lost ...): the answer is None
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def device_count() -> int | None:
    return call("nvmlDeviceGetCount")


def handle_by_index(index: int) -> Any | None:
    return call("nvmlDeviceGetHandleByIndex", index)


def uuid(handle: Any) -> str | None:
    return _text(call("nvmlDeviceGetUUID", handle)) if handle is not None else None


def uuids() -> list[str | None]:
    """UUIDs of every GPU NVML sees, by NVML index ([] without NVML)."""
    count = device_count() or 0
    return [uuid(handle_by_index(i)) for i in range(count)]


def driver_version() -> str | None:
    return _text(call("nvmlSystemGetDriverVersion"))


def cuda_driver_version() -> str | None:
    """The CUDA version the driver supports, e.g. "12.4" (NVML's view, not torch's)."""
    version = call("nvmlSystemGetCudaDriverVersion_v2") or call("nvmlSystemGetCudaDriverVersion")
    if not isinstance(version, int):
        return None
    return f"{version // 1000}.{version % 1000 // 10}"


def total_energy_mj(handle: Any) -> int | None:
    """Energy used by the GPU since the driver loaded, in millijoules (Volta and later)."""
    if handle is None:
        return None
    value = call("nvmlDeviceGetTotalEnergyConsumption", handle)
    return int(value) if isinstance(value, int) else None


def processes(handle: Any) -> dict[int, int | None]:
    """pid -> used GPU memory in bytes (None when the driver does not say), compute and
    graphics processes together; {} without NVML."""
    if handle is None:
        return {}
    out: dict[int, int | None] = {}
    for name in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
        for proc in call(name, handle) or []:
            pid = getattr(proc, "pid", None)
            if pid is None:
                continue
            used = getattr(proc, "usedGpuMemory", None)
            used = used if isinstance(used, int) and used >= 0 else None
            if out.get(pid) is None:
                out[pid] = used
            elif used is not None:
                out[pid] = max(out[pid] or 0, used)
    return out


def clock_mhz(handle: Any, kind: str) -> int | None:
    """Current clock: kind is "sm" or "mem"."""
    module = load()
    if module is None or handle is None:
        return None
    const = getattr(module, {"sm": "NVML_CLOCK_SM", "mem": "NVML_CLOCK_MEM"}[kind], None)
    return call("nvmlDeviceGetClockInfo", handle, const) if const is not None else None


def temperature_c(handle: Any) -> int | None:
    module = load()
    if module is None or handle is None:
        return None
    const = getattr(module, "NVML_TEMPERATURE_GPU", 0)
    return call("nvmlDeviceGetTemperature", handle, const)


def gpu_details(handle: Any) -> dict[str, Any]:
    """NVML's facts about one GPU, each None when unknown."""
    memory = call("nvmlDeviceGetMemoryInfo", handle) if handle is not None else None
    total = getattr(memory, "total", None)
    return {
        "nvml_name": _text(call("nvmlDeviceGetName", handle)) if handle is not None else None,
        "nvml_uuid": uuid(handle),
        "nvml_memory_total_mb": total / 2**20 if isinstance(total, int) else None,
        "sm_clock_mhz": clock_mhz(handle, "sm"),
        "mem_clock_mhz": clock_mhz(handle, "mem"),
        "temperature_c": temperature_c(handle),
    }


# --------------------------------------------------------------------------- mapping


def normalize_uuid(value: Any) -> str | None:
    """``GPU-58d7...`` / ``58d7...`` / bytes -> ``58d7...`` lower-case; None for nothing."""
    text = _text(value)
    if not text:
        return None
    text = text.strip().lower()
    for prefix in ("gpu-", "mig-"):
        text = text.removeprefix(prefix)
    return text or None


def parse_visible_devices(value: str | None) -> list[int | str] | None:
    """CUDA_VISIBLE_DEVICES as CUDA reads it: None when unset (every device visible);
    otherwise the entries up to the first invalid one (ints, or ``GPU-``/``MIG-`` strings)."""
    if value is None:
        return None
    out: list[int | str] = []
    for raw in value.split(","):
        entry = raw.strip()
        if not entry:
            break
        if entry.lstrip("+").isdigit():
            index = int(entry)
            if index in out:
                break
            out.append(index)
        elif entry.upper().startswith(("GPU-", "MIG-")):
            out.append(entry)
        else:  # "-1", "none", anything else ends the list, as in CUDA
            break
    return out


@dataclass(frozen=True)
class Mapping:
    """Where a torch device index lives in NVML: ``index`` (of the physical GPU) and how it
    was found ("uuid", "visible_devices", "identity"); ``mig_uuid`` for a MIG instance."""

    index: int | None
    how: str
    mig_uuid: str | None = None


def nvml_index_for(
    torch_index: int,
    *,
    torch_uuid: Any,
    visible: str | None,
    nvml_uuids: list[str | None],
    mig_parent: Callable[[str], int | None] | None = None,
) -> Mapping:
    """Map a torch (CUDA runtime) device index to an NVML index; pure, for tests."""
    wanted = normalize_uuid(torch_uuid)
    known = [normalize_uuid(u) for u in nvml_uuids]
    if wanted is not None and wanted in known:
        return Mapping(known.index(wanted), "uuid")
    entries = parse_visible_devices(visible)
    if entries is not None:
        if not 0 <= torch_index < len(entries):
            return Mapping(None, "visible_devices")
        entry = entries[torch_index]
        if isinstance(entry, int):
            return Mapping(entry if entry < len(nvml_uuids) else None, "visible_devices")
        if entry.upper().startswith("MIG-"):
            parent = mig_parent(entry) if mig_parent is not None else None
            return Mapping(parent, "visible_devices", mig_uuid=entry)
        prefix = normalize_uuid(entry)
        matches = [i for i, u in enumerate(known) if u is not None and prefix and u.startswith(prefix)]
        return Mapping(matches[0] if len(matches) == 1 else None, "visible_devices")
    if wanted is not None and any(u is not None for u in known):
        # torch knows its UUID, NVML lists others: not this GPU (e.g. a MIG instance).
        return Mapping(None, "uuid")
    return Mapping(torch_index if torch_index < len(nvml_uuids) else None, "identity")


def _mig_parent_index(mig_uuid: str) -> int | None:
    handle = call("nvmlDeviceGetHandleByUUID", mig_uuid)
    parent = call("nvmlDeviceGetDeviceHandleFromMigDeviceHandle", handle) if handle is not None else None
    parent_uuid = normalize_uuid(uuid(parent))
    if parent_uuid is None:
        return None
    known = [normalize_uuid(u) for u in uuids()]
    return known.index(parent_uuid) if parent_uuid in known else None


def handle_for_torch_device(torch_index: int, torch_uuid: Any) -> tuple[Any | None, Mapping]:
    """The NVML handle of the physical GPU behind torch device ``torch_index`` (None when
    NVML is unavailable or the GPU cannot be identified) and how it was mapped."""
    if load() is None:
        return None, Mapping(None, "unavailable")
    mapping = nvml_index_for(
        torch_index,
        torch_uuid=torch_uuid,
        visible=os.environ.get("CUDA_VISIBLE_DEVICES"),
        nvml_uuids=uuids(),
        mig_parent=_mig_parent_index,
    )
    handle = handle_by_index(mapping.index) if mapping.index is not None else None
    return handle, mapping
