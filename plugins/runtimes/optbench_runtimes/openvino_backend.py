"""The ``openvino`` backend: a cell's model converted from torch by OpenVINO and compiled for a device.

The model that reaches the backend (after the cell's method) is wrapped in a torch module whose first
call converts it (``openvino.convert_model``, OpenVINO's PyTorch frontend, with the same real batch as
example input and the batch dimension dynamic) and compiles it for the device; every call after that
runs an infer request on the same real batches the harness feeds any backend (a tensor, or a dict
of tensors as named inputs), so accuracy, fidelity, latency, memory and size are measured as for any
backend. The first output is what the harness reads. Under a torch dispatch mode (the harness's FLOP
counter) the torch model runs instead.

Precision: OpenVINO's CPU plugin runs in bf16 by default on a CPU with avx512_bf16 or AMX, which is
not the fp32 a torch baseline runs. ``precision`` (``f32`` by default, or ``bf16``, ``f16``) is set
as the compiled model's ``INFERENCE_PRECISION_HINT``; every record carries the precision the compiled
model reports (``runtime_precision``), how many of its executed nodes ran in each precision
(``precision_ops``) and the device's default (``default_precision``), so a row never hides that it
ran in bf16.

A runtime-native method (``openvino.quantize``) attaches ``openvino_transform`` to the model: the
converted ``openvino.Model`` goes through it before it is compiled. ``model_bytes`` on this backend is
the size of the model as OpenVINO IR (xml and bin, weights as the model holds them).

A model the converter cannot take (a torch-converted int8 module: ``quantized::linear_dynamic`` has
no conversion rule) ends the cell as skipped with the converter's reason, never as failed. openvino
is an optional extra, imported only in cells on this backend; without it the cell is skipped with
the command that installs it.
"""
from __future__ import annotations

import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from harness import Backend, BackendSession, MemoryReading, Params, Skip, time_calls
from optbench_runtimes.exported import (
    example_inputs,
    in_dispatch_mode,
    positional,
    split_inputs,
)

EXTRA = "pip install 'optbench-runtimes[openvino]' (in a checkout: pip install -e 'plugins/runtimes[openvino]')"
DEVICES = {"cpu": "CPU", "gpu": "GPU"}
#: OpenVINO's element type names, as the harness writes precisions.
PRECISIONS = {"f32": "f32", "float32": "f32", "bf16": "bf16", "bfloat16": "bf16", "f16": "f16", "float16": "f16"}
EXPORTER = "openvino.convert_model (PyTorch frontend)"


class OvParams(Params):
    device: Literal["cpu", "gpu"] = Field("cpu", description="OpenVINO device: cpu or gpu (an Intel GPU)")
    precision: Literal["f32", "bf16", "f16"] = Field(
        "f32", description="inference precision hint of the compiled model (OpenVINO's CPU default is bf16 "
                           "on a CPU with bf16 support; here f32 unless asked, so it matches torch's fp32)")
    threads: int | None = Field(None, ge=1, le=1024,
                                description="inference threads (CPU); default: torch's default (the cpu "
                                            "backend's), so the two are compared on the same cores")
    performance_hint: Literal["latency", "throughput"] = Field(
        "latency", description="OpenVINO's performance hint: latency (one stream) or throughput (several)")


def import_openvino() -> Any:
    """openvino, or an ImportError whose message says which extra installs it."""
    try:
        import openvino
    except ImportError as exc:
        raise ImportError(f"the openvino backend needs openvino: {EXTRA}") from exc
    return openvino


def precision_name(element_type: Any) -> str:
    """An OpenVINO element type (``<Type: 'bfloat16'>``) as the harness writes it (``bf16``)."""
    name = getattr(element_type, "type_name", None) or str(element_type)
    name = name.removeprefix("<Type: '").removesuffix("'>")
    return PRECISIONS.get(name, name)


def runtime_precisions(compiled: Any) -> Counter[str]:
    """How many of the compiled model's executed nodes ran in each precision (its ``runtimePrecision``)."""
    counts: Counter[str] = Counter()
    try:
        ops = compiled.get_runtime_model().get_ordered_ops()
    except Exception:  # noqa: BLE001 - a device plugin without an execution graph
        return counts
    for op in ops:
        info = op.get_rt_info()
        if "runtimePrecision" in info:
            counts[precision_name(info["runtimePrecision"].astype(str))] += 1
    return counts


def _conversion_reason(exc: Exception) -> str:
    """The converter's summary lines (which operations have no rule), else its first line."""
    text = str(exc)
    if "Summary:" in text:
        lines = [ln.strip(" -") for ln in text.split("Summary:", 1)[1].splitlines() if ln.strip(" -")]
        if lines:
            return "; ".join(lines)[:300]
    return (text.strip().splitlines() or [""])[0][:300]


def openvino_model(model: Any, session: OvSession) -> Any:
    """A torch module standing in for ``model``, run by OpenVINO (converted on its first call)."""
    from torch import nn  # here, so that plugin discovery stays cheap

    class _OpenVinoModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model  # its parameters count and serialise as the model's own
            self.export_s: float | None = None
            self.transform_s: float | None = None
            self.ir_bytes: int | None = None
            self.compiled: Any = None
            self._request: Any = None
            self._names: list[str] = []
            self._dims: list[tuple[int, ...]] = []  # each input's shape after the (dynamic) batch dimension

        def state_dict(self, *args: Any, **kwargs: Any) -> Any:  # the model's own: its size, its checkpoint
            return self.model.state_dict(*args, **kwargs)

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            if in_dispatch_mode():  # the FLOP counter: the graph the runtime got, in torch
                return self.model(*args, **kwargs)
            import torch

            names, tensors = split_inputs("openvino", args, kwargs)
            if self.compiled is None:
                self._convert(names, tensors)
            dims = [tuple(t.shape[1:]) for t in tensors]
            if dims != self._dims:  # OpenVINO can answer a mismatched shape with the last call's output
                bad = next(i for i, (d, want) in enumerate(zip(dims, self._dims, strict=True)) if d != want)
                raise ValueError(f"openvino: input {self._names[bad]!r} has shape {tuple(tensors[bad].shape)}; the "
                                 f"model was converted for (batch, {', '.join(map(str, self._dims[bad]))})")
            out = self._request.infer({n: t.detach().cpu().numpy() for n, t in zip(self._names, tensors,
                                                                                   strict=True)})
            return torch.from_numpy(out[self.compiled.output(0)])

        def _convert(self, names: list[str] | None, tensors: list[Any]) -> None:
            import torch

            ov = import_openvino()
            input_names = names or [f"input_{i}" for i in range(len(tensors))]
            # the batch dimension dynamic, the others as in the real batch, each input's own dtype
            shapes = [(ov.PartialShape([-1, *t.shape[1:]]), ov.Type(t.detach().cpu().numpy().dtype))
                      for t in tensors]
            t0 = time.perf_counter()
            try:
                with torch.inference_mode(False), torch.no_grad():
                    converted = ov.convert_model(positional(self.model, names), example_input=example_inputs(tensors),
                                                 input=shapes)
            except Exception as exc:
                raise Skip(f"openvino: the model cannot be converted ({type(exc).__name__}: "
                           f"{_conversion_reason(exc)})") from exc
            for port, name in zip(converted.inputs, input_names, strict=True):
                port.get_tensor().set_names({name})
            self.export_s = time.perf_counter() - t0
            transform = getattr(self.model, "openvino_transform", None)  # a runtime-native method's
            if transform is not None:
                t0 = time.perf_counter()
                converted = transform(converted, input_names)
                self.transform_s = time.perf_counter() - t0
            self.ir_bytes = ir_bytes(converted)
            self.compiled = session.core.compile_model(converted, session.device_name, session.config())
            self._request = self.compiled.create_infer_request()
            self._names = input_names
            self._dims = [tuple(t.shape[1:]) for t in tensors]

    return _OpenVinoModel()


def ir_bytes(model: Any) -> int:
    """The size of ``model`` saved as OpenVINO IR (xml and bin), its weights as it holds them."""
    ov = import_openvino()
    with tempfile.TemporaryDirectory(prefix="optbench-ov-") as tmp:
        path = Path(tmp) / "model.xml"
        ov.save_model(model, path, compress_to_fp16=False)
        return sum(p.stat().st_size for p in Path(tmp).iterdir())


class OvSession(BackendSession):
    device_key = "cpu"

    def __init__(self, params: OvParams) -> None:
        self.params = params
        self.threads: int | None = None
        self.core: Any = None
        self.exported: Any = None  # the model prepared last: the cell's own (the baseline's copy is first)

    @property
    def device_name(self) -> str:
        return DEVICES[self.params.device]

    def unavailable_reason(self) -> str | None:
        try:
            ov = import_openvino()
        except ImportError as exc:
            return str(exc)
        available = ov.Core().available_devices
        if not any(d.split(".")[0] == self.device_name for d in available):
            return (f"openvino {ov.__version__.split('-')[0]} here has no {self.device_name} device (it has "
                    f"{', '.join(available) or 'none'})")
        return None

    def setup(self) -> dict[str, Any]:
        import torch

        ov = import_openvino()
        self.core = ov.Core()
        self.threads = self.params.threads or torch.get_num_threads()
        torch.set_num_threads(self.threads)  # the harness's own glue around the runtime
        default = precision_name(self.core.get_property(self.device_name, "INFERENCE_PRECISION_HINT"))
        return {"threads": self.threads if self.params.device == "cpu" else None, "runtime": "openvino",
                "runtime_version": ov.__version__.split("-")[0], "provider": self.device_name,
                "exporter": f"{EXPORTER}, torch {torch.__version__}", "default_precision": default}

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": self.params.precision,
                                  "PERFORMANCE_HINT": self.params.performance_hint.upper()}
        if self.params.device == "cpu":
            config["INFERENCE_NUM_THREADS"] = self.threads or 0
        return config

    @property
    def device(self) -> Any:
        import torch

        return torch.device("cpu")  # inputs are handed to the infer request from host memory

    def prepare_model(self, model: Any) -> Any:
        self.exported = openvino_model(model.to("cpu").eval(), self)  # the cell's model is prepared last
        return self.exported

    def time_calls(self, fn: Callable[[], Any], warmup: Any, repeat: Any) -> list[int]:
        return time_calls(fn, warmup, repeat)  # a synchronous infer returns once its outputs are on the host

    @contextmanager
    def memory_window(self, batch_size: int | None = None) -> Iterator[MemoryReading]:
        reading = MemoryReading()
        yield reading
        model = self.exported
        if model is not None and model.compiled is not None:
            ran = runtime_precisions(model.compiled)
            reading.fields.update(
                export_s=model.export_s, ir_bytes=model.ir_bytes,
                quantize_s=model.transform_s,
                runtime_precision=precision_name(model.compiled.get_property("INFERENCE_PRECISION_HINT")),
                precision_ops=", ".join(f"{p} {n}" for p, n in ran.most_common()) or None)

    def deployed_bytes(self) -> int | None:
        """The OpenVINO IR the runtime compiles (xml and bin): the model's size here."""
        model = self.exported
        return model.ir_bytes if model is not None else None

    def info(self) -> dict[str, Any]:
        try:
            ov = import_openvino()
        except ImportError as exc:
            return {"unavailable": str(exc)}
        core = ov.Core()
        return {"openvino": ov.__version__, "devices": {d: core.get_property(d, "FULL_DEVICE_NAME")
                                                        for d in core.available_devices}}


OPENVINO = Backend(
    name="openvino",
    description="OpenVINO: the cell's model converted with openvino.convert_model and compiled for a device "
                "(CPU or Intel GPU), at the precision asked (f32 by default)",
    create=OvSession,
    params=OvParams,
    preload=("openvino",),
)
