"""A module that runs a low-precision model behind a float32 interface.

The harness feeds float32 input and takes argmax over the output; a model cast to
float16/bfloat16 needs its input cast in and its output cast back. Imported only
when a method runs (it imports torch at module level to subclass nn.Module).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


class CastWrapper(nn.Module):
    """Casts floating input to ``compute_dtype``, runs ``model``, casts floating output to float32."""

    #: Only dtypes change around ``self.model``: a language model's generation (integer token ids in)
    #: may call the wrapped model directly (``harness.plugin.language_model.unwrap``).
    passes_through = "model"

    def __init__(self, model: nn.Module, compute_dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model
        self.compute_dtype = compute_dtype

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Positional or named inputs (``input_ids``, ``attention_mask``: integers pass unchanged)."""
        args = tuple(self._in(a) for a in args)
        kwargs = {k: self._in(v) for k, v in kwargs.items()}
        return self._out(self.model(*args, **kwargs))

    def _in(self, value: Any) -> Any:
        return value.to(self.compute_dtype) if isinstance(value, torch.Tensor) and value.is_floating_point() else value

    def _out(self, value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.float() if value.is_floating_point() else value
        if isinstance(value, dict):  # a Hugging Face ModelOutput is a dict: cast its tensors in place
            for key in list(value.keys()):
                value[key] = self._out(value[key])
            return value
        if isinstance(value, tuple):
            return type(value)(self._out(v) for v in value) if not hasattr(value, "_fields") else value
        return value

    def extra_repr(self) -> str:
        return f"compute_dtype={self.compute_dtype}, output=float32"
