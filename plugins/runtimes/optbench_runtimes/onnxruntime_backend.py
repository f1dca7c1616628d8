"""The ``onnxruntime`` backend: a cell's model exported from torch to ONNX and run by ONNX Runtime.

The model that reaches the backend (after the cell's method) is wrapped in ``OnnxModel``, a torch
module whose first call exports it (``torch.onnx.export``, the batch dimension dynamic) and opens
an ``InferenceSession`` on the chosen execution provider; every call after that runs the session on
the same real batches the harness feeds any backend (a tensor, or a dict of tensors as named
inputs), so accuracy, fidelity, latency (``time_calls`` around ``session.run``), memory and size
are measured as for any backend. The first output is what the harness reads (logits, or the last
hidden state of an encoder). Under a torch dispatch mode (the harness's FLOP counter) the torch
model runs instead: FLOPs are those of the graph that was exported.

A runtime-native method (``onnx.quantize_dynamic``, ``onnx.quantize_static``) attaches
``onnx_transform`` to the model: the exported graph goes through it before the session opens.
``model_bytes`` on this backend is the size of the graph the session loads.

A model the exporter cannot take (a torch-converted int8 module: ``quantized::linear_dynamic``
has no ONNX form) ends the cell as skipped with the exporter's reason, never as failed.
onnxruntime is an optional extra, imported only in cells on this backend; without it the cell is
skipped with the command that installs it.
"""
from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

from pydantic import Field

from harness import Backend, BackendSession, MemoryReading, Params, Skip, time_calls
from optbench_runtimes.exported import (
    example_inputs,
    in_dispatch_mode,
    positional,
    split_inputs,
)

EXTRA = "pip install 'optbench-runtimes[onnxruntime]' (in a checkout: pip install -e 'plugins/runtimes[onnxruntime]')"
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
#: The intra-op threads of this process's one ONNX Runtime pool, once a session set it (a cell is a
#: process of its own; in one process, as in tests, the first setting holds).
_pool_threads: int | None = None
EXPORTER = "torch.onnx.export (TorchScript)"


class OrtParams(Params):
    provider: Literal["cpu", "cuda"] = Field("cpu", description="execution provider: cpu (CPUExecutionProvider) "
                                                                "or cuda (CUDAExecutionProvider)")
    threads: int | None = Field(None, ge=1, le=1024,
                                description="intra-op threads of the session; default: torch's default (the cpu "
                                            "backend's), so the two are compared on the same cores")
    graph_optimization: Literal["disable", "basic", "extended", "all"] = Field(
        "all", description="ONNX Runtime's graph optimisation level")
    opset: int = Field(17, ge=9, le=21, description="ONNX opset the model is exported with")


def shared_pool_threads() -> int | None:
    """The threads of this process's one ONNX Runtime pool, or None when sessions have their own."""
    return _pool_threads or None


def import_onnxruntime() -> Any:
    """onnxruntime, or an ImportError whose message says which extra installs it."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ImportError(f"the onnxruntime backend needs onnxruntime and onnx: {EXTRA}") from exc
    return onnxruntime


def onnx_model(model: Any, session: OrtSession) -> Any:
    """A torch module standing in for ``model``, run by ONNX Runtime (exported on its first call)."""
    from torch import nn  # here, so that plugin discovery stays cheap

    class _OnnxModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model  # its parameters count and serialise as the model's own
            self.export_s: float | None = None
            self.transform_s: float | None = None
            self.onnx_bytes: int | None = None
            self._session: Any = None
            self._names: list[str] | None = None

        def state_dict(self, *args: Any, **kwargs: Any) -> Any:  # the model's own: its size, its checkpoint
            return self.model.state_dict(*args, **kwargs)

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            if in_dispatch_mode():  # the FLOP counter: the graph the runtime got, in torch
                return self.model(*args, **kwargs)
            import torch

            names, tensors = split_inputs("onnxruntime", args, kwargs)
            if self._session is None:
                self._export(names, tensors)
            feeds = {i.name: t.detach().cpu().numpy() for i, t in zip(self._session.get_inputs(), tensors,
                                                                        strict=True)}
            return torch.from_numpy(self._session.run(None, feeds)[0])

        def _export(self, names: list[str] | None, tensors: list[Any]) -> None:
            import torch

            ort = import_onnxruntime()
            input_names = names or [f"input_{i}" for i in range(len(tensors))]
            axes = {n: {0: "batch"} for n in input_names}
            axes["output"] = {0: "batch"}
            buf = io.BytesIO()
            t0 = time.perf_counter()
            try:
                with torch.inference_mode(False), torch.no_grad():
                    torch.onnx.export(positional(self.model, names), example_inputs(tensors), buf,
                                      input_names=input_names, output_names=["output"], dynamic_axes=axes,
                                      opset_version=session.params.opset, dynamo=False)
            except Exception as exc:
                first = (str(exc).strip().splitlines() or [""])[0][:300]
                raise Skip(f"onnxruntime: the model cannot be exported to ONNX ({type(exc).__name__}: "
                           f"{first})") from exc
            self.export_s = time.perf_counter() - t0
            graph = buf.getvalue()
            transform = getattr(self.model, "onnx_transform", None)  # a runtime-native method's
            if transform is not None:
                t0 = time.perf_counter()
                graph = transform(graph, input_names)
                self.transform_s = time.perf_counter() - t0
            self.onnx_bytes = len(graph)
            self._session = ort.InferenceSession(graph, session.options(), providers=session.providers())

    return _OnnxModel()


class OrtSession(BackendSession):
    device_key = "cpu"

    def __init__(self, params: OrtParams) -> None:
        self.params = params
        self.threads: int | None = None
        self.exported: Any = None  # the model prepared last: the cell's own (the baseline's copy is first)
        self.shared_pool = False

    def unavailable_reason(self) -> str | None:
        try:
            ort = import_onnxruntime()
        except ImportError as exc:
            return str(exc)
        provider = PROVIDERS[self.params.provider]
        if provider not in ort.get_available_providers():
            return (f"onnxruntime {ort.__version__} here has no {provider} (it has "
                    f"{', '.join(ort.get_available_providers())})"
                    + ("; install onnxruntime-gpu for CUDA" if self.params.provider == "cuda" else ""))
        return None

    def setup(self) -> dict[str, Any]:
        import torch

        ort = import_onnxruntime()
        self.threads = self.params.threads or torch.get_num_threads()
        torch.set_num_threads(self.threads)  # the harness's own glue around the runtime
        # One intra-op pool for every session of the cell: a paired cell holds two (the method's model
        # and the baseline's copy), and two pools of spinning threads made each wait for a CPU a
        # quarter of the time on 2 cores. It must be set before the cell's first session.
        global _pool_threads
        if _pool_threads is None:
            try:
                from onnxruntime.capi import onnxruntime_pybind11_state as capi

                capi.set_global_thread_pool_sizes(self.threads, 1)
                _pool_threads = self.threads
            except Exception:  # noqa: BLE001 - an onnxruntime without it: a pool per session
                _pool_threads = 0
        self.shared_pool = bool(_pool_threads)
        if self.shared_pool:
            self.threads = _pool_threads  # what the sessions run with, whatever this one asked
        return {"threads": self.threads, "runtime": "onnxruntime", "runtime_version": ort.__version__,
                "provider": PROVIDERS[self.params.provider], "exporter": f"{EXPORTER}, torch {torch.__version__}"}

    @property
    def device(self) -> Any:
        import torch

        return torch.device("cpu")  # inputs are handed to the session from host memory

    def options(self) -> Any:
        ort = import_onnxruntime()
        so = ort.SessionOptions()
        if getattr(self, "shared_pool", False):
            so.use_per_session_threads = False
        else:
            so.intra_op_num_threads = self.threads or 0
            so.inter_op_num_threads = 1
        so.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.params.graph_optimization]
        return so

    def providers(self) -> list[str]:
        provider = PROVIDERS[self.params.provider]
        return [provider] if provider == "CPUExecutionProvider" else [provider, "CPUExecutionProvider"]

    def prepare_model(self, model: Any) -> Any:
        self.exported = onnx_model(model.to("cpu").eval(), self)  # the cell's model is prepared last
        return self.exported

    def time_calls(self, fn: Callable[[], Any], warmup: Any, repeat: Any) -> list[int]:
        return time_calls(fn, warmup, repeat)  # session.run returns once its outputs are on the host

    @contextmanager
    def memory_window(self, batch_size: int | None = None) -> Iterator[MemoryReading]:
        reading = MemoryReading()
        yield reading
        model = self.exported
        if model is not None and model.onnx_bytes is not None:
            reading.fields.update(export_s=model.export_s, onnx_bytes=model.onnx_bytes, quantize_s=model.transform_s)

    def deployed_bytes(self) -> int | None:
        """The ONNX graph the session loads: a runtime-native quantizer changes only that, so it is the model's
        size here (model_bytes, and the size ratio against the baseline's graph)."""
        model = self.exported
        return model.onnx_bytes if model is not None else None

    def info(self) -> dict[str, Any]:
        try:
            ort = import_onnxruntime()
        except ImportError as exc:
            return {"unavailable": str(exc)}
        return {"onnxruntime": ort.__version__, "providers_available": ort.get_available_providers(),
                "device": ort.get_device()}


ONNXRUNTIME = Backend(
    name="onnxruntime",
    description="ONNX Runtime: the cell's model exported with torch.onnx and run by an InferenceSession "
                "(CPU or CUDA execution provider)",
    create=OrtSession,
    params=OrtParams,
    preload=("onnxruntime", "onnx"),
)
