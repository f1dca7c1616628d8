"""What the runtime backends share: how a cell's torch model is handed to an exporter and how its
answers are read back.

An exporter is given ``positional(model, names)``: positional tensors in (a dict input's tensors in
the order of its keys, which become the graph's input names), the model's first output out (logits,
or the last hidden state of an encoder). Under a torch dispatch mode (the harness's FLOP counter) a
runtime's model runs the torch model instead, so FLOPs are those of the graph that was exported.
"""
from __future__ import annotations

from typing import Any


def in_dispatch_mode() -> bool:
    """Whether a torch dispatch mode (the harness's FLOP counter) is active."""
    try:
        from torch.utils._python_dispatch import _get_current_dispatch_mode_stack
    except ImportError:  # an older or newer torch without it: export as usual
        return False
    return bool(_get_current_dispatch_mode_stack())


def first_output(out: Any) -> Any:
    """The first tensor of a model's output: itself, the first of a tuple, the first value of a dict."""
    import torch

    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out:
        return first_output(out[0])
    if hasattr(out, "values"):  # a dict, a transformers ModelOutput
        for v in out.values():
            if v is not None:
                return first_output(v)
    raise TypeError(f"the model returned {type(out).__name__}, not a tensor, a tuple of them or a dict of them")


def positional(model: Any, names: list[str] | None) -> Any:
    """A module taking positional tensors (``names``, when given, are the keyword arguments of
    ``model`` they are passed as) and returning ``model``'s first output."""
    from torch import nn

    class Positional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, *args: Any) -> Any:
            out = self.inner(**dict(zip(names, args, strict=True))) if names else self.inner(*args)
            return first_output(out)

    return Positional()


def split_inputs(backend: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[list[str] | None, list[Any]]:
    """A call's inputs as (names or None, tensors): a tensor (or several), or a dict of named tensors."""
    if kwargs:
        if args:
            raise TypeError(f"the {backend} backend takes a tensor or a dict of tensors, not both")
        return list(kwargs), list(kwargs.values())
    return None, list(args)


def example_inputs(tensors: list[Any]) -> tuple[Any, ...]:
    """Copies of a call's tensors an exporter can trace (not inference tensors)."""
    return tuple(t.detach().clone() for t in tensors)
