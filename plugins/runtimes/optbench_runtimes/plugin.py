"""Entry point module (``optbench`` group): registers the ``onnxruntime`` backend."""
from __future__ import annotations

from collections.abc import Callable

from harness import Backend, hookimpl
from optbench_runtimes.onnxruntime_backend import ONNXRUNTIME


@hookimpl
def register_backends(register: Callable[[Backend], None]) -> None:
    register(ONNXRUNTIME)
