"""The baseline: the trained model, unchanged. Every relative figure divides by it."""
from __future__ import annotations

from typing import Any

from harness.plugin.types import Method, MethodContext


def apply_baseline(model: Any, params: Any, ctx: MethodContext) -> Any:
    return model


BASELINE = Method(
    name="baseline",
    kind="baseline",
    description="the trained model unchanged; the reference for speedup, size and accuracy",
    apply=apply_baseline,
)
