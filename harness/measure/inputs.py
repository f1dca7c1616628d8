"""Model inputs: a tensor, or a dict of named tensors (``input_ids``, ``attention_mask``, ...), and how a
model is called on them. The one place that knows both forms, shared by every stage that runs a model."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

#: Keys that stand for a dict batch's size and sample shape, in this order (else its first tensor).
PRIMARY_KEYS = ("input_ids", "pixel_values", "inputs_embeds")


def first_tensor(inputs: Any) -> torch.Tensor:
    """The tensor that stands for a batch: itself, ``input_ids``, ``pixel_values``, or a dict's first tensor."""
    if isinstance(inputs, dict):
        for key in PRIMARY_KEYS:
            if key in inputs:
                return inputs[key]
        if not inputs:
            raise ValueError("an empty dict of inputs")
        return next(iter(inputs.values()))
    return inputs


def batch_size(inputs: Any) -> int:
    """The number of samples in a batch of inputs (a tensor's first dimension, or a dict's first tensor's)."""
    return int(first_tensor(inputs).shape[0])


def map_tensors(inputs: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """``fn`` applied to the tensor, or to every tensor of a dict of inputs."""
    if isinstance(inputs, dict):
        return {k: fn(v) for k, v in inputs.items()}
    return fn(inputs)


def slice_inputs(inputs: Any, start: int, stop: int) -> Any:
    """Samples ``start:stop`` of a batch of inputs."""
    return map_tensors(inputs, lambda t: t[start:stop])


def call_model(model: Any, inputs: Any) -> Any:
    """A model called on a batch: ``model(x)``, or ``model(**x)`` for a dict of named tensors."""
    return model(**inputs) if isinstance(inputs, dict) else model(inputs)
