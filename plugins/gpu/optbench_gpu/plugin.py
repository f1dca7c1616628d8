"""Entry point module (``optbench`` group): registers the ``cuda`` backend."""
from __future__ import annotations

from collections.abc import Callable

from harness import Backend, hookimpl
from optbench_gpu.backend import CUDA


@hookimpl
def register_backends(register: Callable[[Backend], None]) -> None:
    register(CUDA)
