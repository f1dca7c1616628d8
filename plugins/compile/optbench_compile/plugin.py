"""Entry point module (``optbench`` group): registers the compiler methods."""
from __future__ import annotations

from collections.abc import Callable

from harness import Method, hookimpl
from optbench_compile import torch_compile


@hookimpl
def register_methods(register: Callable[[Method], None]) -> None:
    register(
        Method(
            name="compile.torch",
            kind="compiler",
            description="torch.compile (inductor), compiled and warmed at every measured batch size",
            params=torch_compile.CompileParams,
            apply=torch_compile.apply,
        )
    )
