"""Entry point module (``optbench`` group): registers the ``onnxruntime`` backend and ONNX Runtime's own
quantizers."""
from __future__ import annotations

from collections.abc import Callable

from harness import Backend, Method, hookimpl
from optbench_runtimes.onnx_quantize import QUANTIZE_DYNAMIC, QUANTIZE_STATIC
from optbench_runtimes.onnxruntime_backend import ONNXRUNTIME


@hookimpl
def register_backends(register: Callable[[Backend], None]) -> None:
    register(ONNXRUNTIME)


@hookimpl
def register_methods(register: Callable[[Method], None]) -> None:
    register(QUANTIZE_DYNAMIC)
    register(QUANTIZE_STATIC)
