"""Entry point module (``optbench`` group): registers the pruning methods."""
from __future__ import annotations

from collections.abc import Callable

from harness import Method, hookimpl

from optbench_prune import magnitude


@hookimpl
def register_methods(register: Callable[[Method], None]) -> None:
    register(
        Method(
            name="prune.magnitude",
            kind="pruner",
            description="unstructured L1-magnitude pruning of Linear/Conv weights, per layer or global",
            params=magnitude.MagnitudeParams,
            apply=magnitude.apply,
        )
    )
