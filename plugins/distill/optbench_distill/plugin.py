"""Entry point module (``optbench`` group): registers the distillation methods."""
from __future__ import annotations

from collections.abc import Callable

from harness import Method, hookimpl
from optbench_distill import feature, kd


@hookimpl
def register_methods(register: Callable[[Method], None]) -> None:
    register(
        Method(
            name=kd.NAME,
            kind="distiller",
            trains=True,
            description="Hinton knowledge distillation: the teacher's temperature-softened probabilities on every "
            "input plus cross-entropy on the labelled ones; paired with the student trained alone",
            params=kd.KDParams,
            apply=kd.apply,
        )
    )
    register(
        Method(
            name=feature.NAME,
            kind="distiller",
            trains=True,
            description="FitNets hints: MSE between a projected student feature and a teacher feature (forward "
            "hooks) plus cross-entropy, optionally soft targets; paired with the student trained alone",
            params=feature.FeatureParams,
            apply=feature.apply,
        )
    )
