"""A training method for the multi-gpu tests, importable by name in cell processes."""
from __future__ import annotations

from harness import Method, hookimpl
from harness.plugin.types import Params


class SGDParams(Params):
    lr: float = 0.1


def _apply(model, params, ctx):
    import torch

    ctx.fit(model, optimizer=lambda ps: torch.optim.SGD(ps, lr=params.lr))
    return model


@hookimpl
def register_methods(register):
    register(Method(name="ddp.sgd", kind="optimizer", description="plain SGD through ctx.fit", apply=_apply,
                    params=SGDParams))
