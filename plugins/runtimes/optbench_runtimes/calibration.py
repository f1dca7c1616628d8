"""What the runtime-native quantizers share: they run only on their runtime's backend, and static
quantization calibrates on batches of the dataset's training split."""
from __future__ import annotations

from typing import Any

from harness import MethodContext, Skip


def runtime_only(ctx: MethodContext, method: str, backend: str, graph: str) -> None:
    """Skip, with the reason, a runtime's quantizer in a cell on another backend."""
    if ctx.backend != backend:
        raise Skip(f"{method} quantizes the graph {graph} runs: it runs on the {backend} backend, "
                   f"not on {ctx.backend}")


def calibration_batches(ctx: MethodContext, method: str, batches: int, batch_size: int) -> list[Any]:
    """Up to ``batches`` shuffled batches (their inputs: a tensor or a dict of tensors) of the training
    split, read now (seeded by the cell's seed)."""
    split = ctx.data.train
    limit = min(len(split), batches * batch_size)
    out = [b.inputs for b in split.batches(batch_size, limit=limit, shuffle=True, seed=ctx.seed)]
    if not out:
        raise Skip(f"{method}: the training split is empty, so there is nothing to calibrate on")
    return out


def named_arrays(x: Any, input_names: list[str]) -> dict[str, Any]:
    """One calibration batch as the graph's named numpy inputs."""
    tensors = [x[n] for n in input_names] if isinstance(x, dict) else [x]
    return {n: t.detach().cpu().numpy() for n, t in zip(input_names, tensors, strict=True)}
