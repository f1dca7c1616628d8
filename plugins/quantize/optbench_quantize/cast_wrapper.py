"""A module that runs a low-precision model behind a float32 interface.

The harness feeds float32 input and takes argmax over the output; a model cast to
float16/bfloat16 needs its input cast in and its output cast back. Imported only
when a method runs (it imports torch at module level to subclass nn.Module).
"""
from __future__ import annotations

import torch
from torch import nn


class CastWrapper(nn.Module):
    """Casts floating input to ``compute_dtype``, runs ``model``, casts floating output to float32."""

    def __init__(self, model: nn.Module, compute_dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model
        self.compute_dtype = compute_dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x.to(self.compute_dtype) if x.is_floating_point() else x)
        return out.float() if isinstance(out, torch.Tensor) and out.is_floating_point() else out

    def extra_repr(self) -> str:
        return f"compute_dtype={self.compute_dtype}, output=float32"
