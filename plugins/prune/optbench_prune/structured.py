"""Structured pruning that removes whole channels, with Torch-Pruning's dependency graph.

Unstructured zeros leave every tensor its size; this method deletes output channels
of convolutions and output features of linear layers, together with the input
channels of whatever consumes them (Torch-Pruning traces the model once and groups
the coupled dimensions), so the result is a smaller *dense* model that any kernel
runs faster. The classifier's outputs are never removed: the output shape stays
``(N, num_classes)``.

``torch_pruning`` (pinned to 1.6.1 in pyproject.toml) is imported inside ``apply``:
discovery must not need it, and a missing install is a clear error in the one cell
that uses it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from harness import MethodContext, Params, Skip, call_model, map_tensors, output_tensor
from optbench_prune.gradient import NEEDS_LABELS, eval_mode, training_batches
from optbench_prune.magnitude import prunable_layers

if TYPE_CHECKING:
    from torch import nn

TORCH_PRUNING = "torch-pruning==1.6.1"
#: Samples of ctx.data.x_train traced to build the dependency graph, and per taylor batch.
BATCH_SIZE = 64


class StructuredParams(Params):
    ratio: float = Field(
        0.5,
        ge=0.0,
        lt=1.0,
        description="fraction of the output channels (conv) / features (linear) removed from each "
        "prunable layer; the classifier is never pruned",
    )
    importance: Literal["l1", "l2", "taylor", "random"] = Field(
        "l1",
        description="channel ranking: l1/l2 norm of the channel's weights across coupled layers, "
        "taylor |w*dL/dw| on training batches, or random (seeded)",
    )
    batches: int = Field(
        4,
        ge=1,
        le=1000,
        description=f"training batches of {BATCH_SIZE} for the taylor gradients (other rankings ignore it)",
    )


def classifier_layer(model: nn.Module, num_classes: int) -> nn.Module:
    """The layer whose outputs are the class scores: the last nn.Linear with
    ``num_classes`` outputs, else the last prunable layer (whose outputs must stay)."""
    from torch import nn

    linears = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == num_classes]
    if linears:
        return linears[-1]
    layers = prunable_layers(model)
    if not layers:
        raise Skip.no_layers("prune.structured", "nn.Linear/nn.Conv1d/nn.Conv2d", model)
    return layers[-1]


def attention_blocks(model: nn.Module) -> list[str]:
    """Class names of the model's attention blocks: nn.MultiheadAttention, or a module holding
    query/key/value projections (BERT-style self-attention)."""
    from torch import nn

    found = []
    for module in model.modules():
        if isinstance(module, nn.MultiheadAttention) or all(
                isinstance(getattr(module, k, None), nn.Linear) for k in ("query", "key", "value")):
            found.append(type(module).__name__)
    return found


def layer_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Weight shape of every prunable layer, by module name."""
    names = {module: name for name, module in model.named_modules()}
    return {names[layer]: tuple(layer.weight.shape) for layer in prunable_layers(model)}


def _importance(tp: Any, name: str) -> Any:
    imp = tp.importance
    return {
        "l1": lambda: imp.MagnitudeImportance(p=1),
        "l2": lambda: imp.MagnitudeImportance(p=2),
        "taylor": lambda: imp.TaylorImportance(),
        "random": lambda: imp.RandomImportance(),
    }[name]()


def _check_ratio_leaves_a_channel(model: nn.Module, classifier: nn.Module, ratio: float) -> None:
    names = {module: name for name, module in model.named_modules()}
    for layer in prunable_layers(model):
        width = layer.weight.shape[0]
        if layer is not classifier and int(width * (1 - ratio)) < 1:
            raise ValueError(
                f"ratio {ratio} would remove all {width} output channels of layer '{names[layer]}'; "
                f"use ratio < {1 - 1 / width:.4g}"
            )


def apply(model: nn.Module, params: StructuredParams, ctx: MethodContext) -> nn.Module:
    import torch
    from torch.nn import functional as F

    if params.importance == "taylor" and not ctx.data.train.has_labels:
        raise Skip(f"importance taylor {NEEDS_LABELS}")
    try:
        import torch_pruning as tp
    except ImportError as exc:
        raise ModuleNotFoundError(
            f"prune.structured needs the torch-pruning package: pip install '{TORCH_PRUNING}'", name="torch_pruning"
        ) from exc

    classifier = classifier_layer(model, ctx.data.num_classes)
    _check_ratio_leaves_a_channel(model, classifier, params.ratio)
    device = next(model.parameters()).device
    example = map_tensors(ctx.data.train.example(min(BATCH_SIZE, len(ctx.data.train))), lambda t: t.to(device))
    before = layer_shapes(model)
    params_before = sum(p.numel() for p in model.parameters())
    with torch.no_grad(), eval_mode(model):
        out_shape = tuple(output_tensor(call_model(model, example)).shape)
    attention = attention_blocks(model)
    if attention and not (len(out_shape) == 2 and out_shape[1] == ctx.data.num_classes):
        raise Skip(f"prune.structured: this transformer ({attention[0]} and {len(attention) - 1} more attention block(s)) "
                   f"outputs {list(out_shape[1:])} per input, not {ctx.data.num_classes} class scores: its hidden "
                   "size is its output, which pruning the residual stream would change; use a model with a "
                   "classification head (task: sequence-classification)")

    # RandomImportance draws from torch's global generator: seed a fork of it.
    with torch.random.fork_rng(devices=[]), eval_mode(model), torch.enable_grad():
        torch.manual_seed(ctx.seed)
        pruner = tp.pruner.BasePruner(  # MetaPruner in older releases; an alias of it in 1.6.1
            model,
            example_inputs=example,
            importance=_importance(tp, params.importance),
            pruning_ratio=params.ratio,
            ignored_layers=[classifier],
        )
        try:
            if params.importance == "taylor":
                model.zero_grad(set_to_none=True)
                for x, y in training_batches(ctx.data, params.batches, BATCH_SIZE, ctx.seed):
                    out = call_model(model, map_tensors(x, lambda t: t.to(device)))
                    (F.cross_entropy(output_tensor(out), y.to(device)) / params.batches).backward()
            pruner.step()
        finally:
            model.zero_grad(set_to_none=True)

    with torch.no_grad(), eval_mode(model):
        new_shape = tuple(output_tensor(call_model(model, example)).shape)
    if new_shape != out_shape:
        raise RuntimeError(f"structured pruning changed the output shape from {out_shape} to {new_shape}")
    after = layer_shapes(model)
    params_after = sum(p.numel() for p in model.parameters())
    changes = ", ".join(
        f"{name} {tuple(before[name])}->{tuple(after[name])}" for name in before if before[name] != after[name]
    )
    ctx.log(
        f"prune.structured: {params.importance} importance, ratio {params.ratio}: "
        f"{changes or 'no layer changed'}; parameters {params_before} -> {params_after} "
        f"({params_after / params_before:.1%})"
    )
    return model
