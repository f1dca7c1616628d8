"""Entry point module (``optbench`` group): registers the low-rank factorization methods."""
from __future__ import annotations

from collections.abc import Callable

from harness import Method, hookimpl
from optbench_lowrank import svd


@hookimpl
def register_methods(register: Callable[[Method], None]) -> None:
    register(
        Method(
            name="lowrank.svd",
            kind="factorizer",
            finetune_after=True,
            description="truncated-SVD factorization of Linear/Conv2d layers into two thinner layers",
            params=svd.SVDParams,
            apply=svd.apply,
        )
    )
