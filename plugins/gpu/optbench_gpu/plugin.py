"""Entry point module (``optbench`` group): registers the ``cuda`` and ``multi-gpu`` backends."""
from __future__ import annotations

from collections.abc import Callable

from harness import Backend, RecordField, hookimpl
from optbench_gpu.backend import CUDA
from optbench_gpu.fields import FIELDS
from optbench_gpu.multigpu import MULTI_GPU


@hookimpl
def register_backends(register: Callable[[Backend], None]) -> None:
    register(CUDA)
    register(MULTI_GPU)


@hookimpl
def register_fields(register: Callable[[RecordField], None]) -> None:
    for declared in FIELDS:
        register(declared)
