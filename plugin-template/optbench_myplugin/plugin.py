"""The entry point module: what the plugin registers with optbench.

The example method zeroes every Linear and Conv weight whose magnitude is below
``threshold`` standard deviations of its own layer's weights. Replace it with yours;
keep the shape: a Params class, an ``apply``, and a ``register_*`` hook.
"""
from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from harness import Method, MethodContext, Params, Skip, hookimpl


class ThresholdParams(Params):
    threshold: float = Field(0.5, gt=0.0, le=10.0, description="zero weights below this many standard deviations")


def apply(model: nn.Module, params: ThresholdParams, ctx: MethodContext) -> nn.Module:
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]
    if not layers:
        raise Skip("no Linear or Conv layers to prune")
    zeroed = total = 0
    with torch.no_grad():
        for layer in layers:
            w = layer.weight
            keep = w.abs() >= params.threshold * w.std()
            w.mul_(keep)
            zeroed += int((~keep).sum())
            total += w.numel()
    ctx.log(f"zeroed {zeroed} of {total} weights ({zeroed / total:.1%}) below {params.threshold} std")
    return model


@hookimpl
def register_methods(register):
    register(Method(
        name="myplugin.threshold",
        kind="pruner",
        description="zero Linear/Conv weights below a multiple of their layer's standard deviation",
        apply=apply,
        params=ThresholdParams,
    ))
