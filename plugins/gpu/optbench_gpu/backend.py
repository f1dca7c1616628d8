"""The ``cuda`` backend: one NVIDIA GPU, timed with CUDA events, memory from torch and NVML.

Nothing here creates a CUDA context before ``unavailable_reason`` has said the device
exists; torch is imported inside methods so plugin discovery stays cheap.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

from pydantic import Field

from harness import Backend, BackendSession, Budget, MemoryReading, Params, time_calls
from optbench_gpu import nvml

log = logging.getLogger("optbench_gpu")

DTYPES = ("float32", "float16", "bfloat16")


class CudaParams(Params):
    device: int = Field(0, ge=0, le=1023, description="index among the visible CUDA devices (after CUDA_VISIBLE_DEVICES)")
    dtype: Literal["float32", "float16", "bfloat16"] = Field(
        "float32", description="the model's floating parameters and the floating inputs are cast to this dtype"
    )
    tf32: bool = Field(False, description="allow TF32 in matmuls and cuDNN convolutions (Ampere and later)")
    cudnn_benchmark: bool = Field(False, description="torch.backends.cudnn.benchmark: autotune convolution algorithms")


def visible_devices_text() -> str:
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    return "CUDA_VISIBLE_DEVICES is not set" if value is None else f"CUDA_VISIBLE_DEVICES={value!r}"


# --------------------------------------------------------------------------- timing


def time_cuda_calls(
    fn: Callable[[], Any],
    warmup: Budget,
    repeat: Budget,
    *,
    new_event: Callable[[], Any],
    synchronize: Callable[[], None],
) -> list[int]:
    """Durations in ns of each timed call of ``fn``, read from CUDA event pairs.

    The warm-up and repeat rules (min calls AND min seconds) are harness.measure.timing's own:
    this wraps ``fn`` so each call is bracketed by two recorded events and passes
    ``synchronize`` as the sync that runs after every call, so an event is only read
    once the device has finished the work it brackets. Events from warm-up calls are
    dropped; the last ``len(host_samples)`` pairs are the timed calls.
    """
    pairs: list[tuple[Any, Any]] = []

    def bracketed() -> None:
        start, end = new_event(), new_event()
        start.record()
        fn()
        end.record()
        pairs.append((start, end))

    host = time_calls(bracketed, warmup, repeat, sync=synchronize)
    synchronize()
    timed = pairs[len(pairs) - len(host):]
    return [max(round(start.elapsed_time(end) * 1e6), 0) for start, end in timed]


# --------------------------------------------------------------------------- memory and energy


def window_fields(
    *,
    peak_allocated: int | None,
    peak_reserved: int | None,
    energy_start_mj: int | None,
    energy_end_mj: int | None,
    window_s: float,
    calls: int,
    batch_size: int | None,
    procs_start: dict[int, int | None],
    procs_end: dict[int, int | None],
    pid: int,
    nvml_ok: bool,
) -> dict[str, Any]:
    """The record fields of one memory window (pure, for tests). Energy fields are null
    when either counter reading is missing, the counter went backwards or nothing ran."""
    mb = 2**20
    fields: dict[str, Any] = {
        "device_peak_allocated_mb": peak_allocated / mb if peak_allocated is not None else None,
        "device_peak_reserved_mb": peak_reserved / mb if peak_reserved is not None else None,
    }
    energy_j = None
    if energy_start_mj is not None and energy_end_mj is not None and energy_end_mj >= energy_start_mj:
        energy_j = (energy_end_mj - energy_start_mj) / 1000.0
    samples = calls * batch_size if batch_size else None
    fields["energy_j"] = energy_j
    fields["energy_calls"] = calls if energy_j is not None else None
    fields["energy_j_per_sample"] = energy_j / samples if energy_j is not None and samples else None
    fields["mean_power_w"] = energy_j / window_s if energy_j is not None and window_s > 0 else None

    used = procs_end.get(pid) if pid in procs_end else procs_start.get(pid)
    fields["device_used_mb"] = used / mb if used is not None else None
    if not nvml_ok:
        fields["gpu_other_processes"] = None
    else:
        seen = set(procs_start) | set(procs_end)
        others = len(seen - {pid})
        if pid not in seen and others:
            # In a container with its own PID namespace NVML reports host pids: one of
            # the entries is this process under another number.
            others -= 1
        fields["gpu_other_processes"] = others
    return fields


# --------------------------------------------------------------------------- the session


class CudaSession(BackendSession):
    def __init__(self, params: CudaParams) -> None:
        self.params = params
        self._handle: Any = None
        self._mapping: nvml.Mapping | None = None
        self._calls = 0
        self._batch_size: int | None = None

    # -- availability, without creating a context
    def unavailable_reason(self) -> str | None:
        import torch

        if torch.version.cuda is None:
            return (
                f"this torch build has no CUDA support (torch {torch.__version__}); "
                "the cuda backend needs a CUDA build of torch and an NVIDIA GPU"
            )
        count = torch.cuda.device_count()
        if count == 0:
            return f"no CUDA device is visible ({visible_devices_text()})"
        index = self.params.device
        if index >= count:
            return (
                f"CUDA device index {index} is out of range: {count} device(s) visible "
                f"(indices 0..{count - 1}; {visible_devices_text()})"
            )
        if self.params.dtype == "bfloat16":
            major, minor = torch.cuda.get_device_capability(index)
            if major < 8:
                name = torch.cuda.get_device_name(index)
                return f"bfloat16 needs compute capability >= 8.0 (Ampere); cuda:{index} ({name}) is {major}.{minor}"
        return None

    @property
    def device(self) -> Any:
        import torch

        return torch.device("cuda", self.params.device)

    @property
    def torch_dtype(self) -> Any:
        import torch

        return getattr(torch, self.params.dtype)

    def _torch_uuid(self) -> str | None:
        import torch

        try:
            return str(torch.cuda.get_device_properties(self.params.device).uuid)
        except Exception:  # noqa: BLE001 - an identity is optional; no CUDA or an old torch gives None
            return None

    @property
    def device_key(self) -> str:  # type: ignore[override]
        """``cuda:GPU-<uuid>`` of the physical GPU, so two cells on one GPU share a key.

        Never initialises CUDA (the scheduler may read it outside the cell): torch's UUID
        only when CUDA is already initialised in this process, else NVML's UUID of the GPU
        that CUDA_VISIBLE_DEVICES points at, else the CUDA_VISIBLE_DEVICES entry, else the index.
        """
        import torch

        index = self.params.device
        ident = None
        if torch.version.cuda is not None and torch.cuda.is_initialized():
            ident = nvml.normalize_uuid(self._torch_uuid())
        if ident is None:
            handle, mapping = nvml.handle_for_torch_device(index, None)
            if mapping.mig_uuid:
                return f"cuda:{mapping.mig_uuid}"
            ident = nvml.normalize_uuid(nvml.uuid(handle))
        if ident:
            return f"cuda:GPU-{ident}"
        entries = nvml.parse_visible_devices(os.environ.get("CUDA_VISIBLE_DEVICES"))
        if entries is not None and index < len(entries):
            entry = entries[index]
            return f"cuda:{entry}" if isinstance(entry, str) else f"cuda:nvml{entry}"
        return f"cuda:{index}"

    def setup(self) -> dict[str, Any]:
        import torch

        index = self.params.device
        torch.cuda.set_device(index)
        torch.backends.cuda.matmul.allow_tf32 = self.params.tf32
        torch.backends.cudnn.allow_tf32 = self.params.tf32
        torch.backends.cudnn.benchmark = self.params.cudnn_benchmark
        props = torch.cuda.get_device_properties(index)
        self._handle, self._mapping = nvml.handle_for_torch_device(index, self._torch_uuid())
        if self._handle is None:
            log.warning("NVML cannot identify cuda:%d (%s); device_used_mb, energy and "
                        "gpu_other_processes will be null", index, nvml.error() or self._mapping.how)
        return {
            "device_index": index,
            "gpu_name": props.name,
            "gpu_uuid": self._torch_uuid(),
            "compute_capability": f"{props.major}.{props.minor}",
            "gpu_memory_total_mb": props.total_memory / 2**20,
            "dtype": self.params.dtype,
            "tf32": self.params.tf32,
            "cudnn_benchmark": self.params.cudnn_benchmark,
            "cuda_version": torch.version.cuda,
            "driver_version": nvml.driver_version(),
            "nvml_index": self._mapping.index,
            "nvml_mapping": self._mapping.how,
        }

    def prepare_model(self, model: Any) -> Any:
        model = model.to(self.device)
        if self.params.dtype != "float32":
            model = model.to(self.torch_dtype)
        return model.eval()

    def prepare_input(self, x: Any) -> Any:
        """To the device; floating tensors (not token ids or masks) to the session's dtype."""
        from harness import map_tensors

        def move(t: Any) -> Any:
            t = t.to(self.device, non_blocking=True)
            if self.params.dtype != "float32" and t.is_floating_point():
                t = t.to(self.torch_dtype)
            return t

        return map_tensors(x, move)

    def time_calls(self, fn: Callable[[], Any], warmup: Any, repeat: Any) -> list[int]:
        import torch

        device = self.device

        def counted() -> None:
            self._calls += 1
            fn()

        return time_cuda_calls(
            counted,
            warmup,
            repeat,
            new_event=lambda: torch.cuda.Event(enable_timing=True),
            synchronize=lambda: torch.cuda.synchronize(device),
        )

    @contextmanager
    def memory_window(self, batch_size: int | None = None) -> Iterator[MemoryReading]:
        import torch

        self._batch_size = batch_size

        device = self.device
        reading = MemoryReading()
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        self._calls = 0
        nvml_ok = self._handle is not None
        procs_start = nvml.processes(self._handle)
        energy_start = nvml.total_energy_mj(self._handle)
        t0 = time.perf_counter()
        yield reading
        torch.cuda.synchronize(device)
        window_s = time.perf_counter() - t0
        energy_end = nvml.total_energy_mj(self._handle)
        procs_end = nvml.processes(self._handle)
        reading.fields.update(
            window_fields(
                peak_allocated=torch.cuda.max_memory_allocated(device),
                peak_reserved=torch.cuda.max_memory_reserved(device),
                energy_start_mj=energy_start,
                energy_end_mj=energy_end,
                window_s=window_s,
                calls=self._calls,
                batch_size=self._batch_size,
                procs_start=procs_start,
                procs_end=procs_end,
                pid=os.getpid(),
                nvml_ok=nvml_ok,
            )
        )
        others = reading.fields.get("gpu_other_processes")
        if others:
            log.warning("%d other process(es) used %s during the timed window; latency and energy may be "
                        "disturbed", others, self.device_key)

    def info(self) -> dict[str, Any]:
        return gpu_info()


def gpu_info() -> dict[str, Any]:
    """Facts about every visible GPU for env.json; null where unknown."""
    import torch

    out: dict[str, Any] = {
        "torch_cuda_version": torch.version.cuda,
        "nvml_cuda_driver_version": nvml.cuda_driver_version(),
        "driver_version": nvml.driver_version(),
        "nvml_error": nvml.error(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "gpus": [],
    }
    if torch.version.cuda is None:
        return out
    for index in range(torch.cuda.device_count()):
        try:
            props = torch.cuda.get_device_properties(index)
        except Exception:  # noqa: BLE001 - env facts are best effort: one broken device keeps its index
            out["gpus"].append({"index": index})
            continue
        handle, mapping = nvml.handle_for_torch_device(index, getattr(props, "uuid", None))
        out["gpus"].append(
            {
                "index": index,
                "name": props.name,
                "uuid": str(getattr(props, "uuid", "")) or None,
                "total_memory_mb": props.total_memory / 2**20,
                "compute_capability": f"{props.major}.{props.minor}",
                "multiprocessors": props.multi_processor_count,
                "nvml_index": mapping.index,
                **nvml.gpu_details(handle),
            }
        )
    return out


CUDA = Backend(
    name="cuda",
    description="one NVIDIA GPU: CUDA events around each call (synchronised before reading), "
    "torch peak memory, NVML per-process memory and energy",
    create=CudaSession,
    params=CudaParams,
)
