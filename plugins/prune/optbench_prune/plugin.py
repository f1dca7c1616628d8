"""Entry point module (``optbench`` group): registers the pruning methods."""
from __future__ import annotations

from collections.abc import Callable

from harness import Method, NoParams, hookimpl
from optbench_prune import (
    gradient,
    magnitude,
    random_unstructured,
    semi_structured,
    structured,
    transformer_pruning,
)


@hookimpl
def register_methods(register: Callable[[Method], None]) -> None:
    register(
        Method(
            name="prune.magnitude",
            kind="pruner",
            finetune_after=True,
            description="unstructured L1-magnitude pruning of Linear/Conv weights, per layer or global",
            params=magnitude.MagnitudeParams,
            apply=magnitude.apply,
        )
    )
    register(
        Method(
            name="prune.random",
            kind="pruner",
            finetune_after=True,
            description="unstructured pruning of a seeded random fraction of Linear/Conv weights (the control)",
            params=random_unstructured.RandomParams,
            apply=random_unstructured.apply,
        )
    )
    register(
        Method(
            name="prune.gradient",
            kind="pruner",
            finetune_after=True,
            description="unstructured pruning of the Linear/Conv weights with the least |w * dL/dw| on training data",
            params=gradient.GradientParams,
            apply=gradient.apply,
        )
    )
    register(
        Method(
            name="prune.structured",
            kind="pruner",
            finetune_after=True,
            description="removes conv channels / linear features with Torch-Pruning: a smaller dense model",
            params=structured.StructuredParams,
            apply=structured.apply,
        )
    )
    register(
        Method(
            name=transformer_pruning.NAME,
            kind="pruner",
            finetune_after=True,
            description="removes a share of every transformer MLP block's intermediate channels (SwiGLU or fc1/fc2): "
                        "smaller dense layers",
            params=transformer_pruning.MLPChannelParams,
            apply=transformer_pruning.apply,
        )
    )
    register(
        Method(
            name=transformer_pruning.HEADS_NAME,
            kind="pruner",
            finetune_after=True,
            description="removes a share of every attention block's key/value heads with their query heads "
                        "(transformers' Llama family): smaller layers and KV cache",
            params=transformer_pruning.AttentionHeadParams,
            apply=transformer_pruning.apply_heads,
        )
    )
    register(
        Method(
            name="prune.semi_structured",
            kind="pruner",
            finetune_after=True,
            description="2:4 magnitude sparsity of Linear weights as semi-structured sparse tensors (CUDA sm80+)",
            params=NoParams,
            apply=semi_structured.apply,
        )
    )
