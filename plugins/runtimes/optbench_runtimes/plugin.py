"""Entry point module (``optbench`` group): registers the ``onnxruntime`` and ``openvino`` backends and
the runtimes' own quantizers."""
from __future__ import annotations

from collections.abc import Callable

from harness import Backend, Method, RecordField, hookimpl
from optbench_runtimes.fields import FIELDS
from optbench_runtimes.onnx_quantize import QUANTIZE_DYNAMIC, QUANTIZE_STATIC
from optbench_runtimes.onnxruntime_backend import ONNXRUNTIME
from optbench_runtimes.openvino_backend import OPENVINO
from optbench_runtimes.openvino_quantize import QUANTIZE as OPENVINO_QUANTIZE


@hookimpl
def register_backends(register: Callable[[Backend], None]) -> None:
    register(ONNXRUNTIME)
    register(OPENVINO)


@hookimpl
def register_methods(register: Callable[[Method], None]) -> None:
    register(QUANTIZE_DYNAMIC)
    register(QUANTIZE_STATIC)
    register(OPENVINO_QUANTIZE)


@hookimpl
def register_fields(register: Callable[[RecordField], None]) -> None:
    for declared in FIELDS:
        register(declared)
