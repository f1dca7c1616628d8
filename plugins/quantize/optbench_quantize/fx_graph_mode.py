"""What quantize.static_int8 and quantize.qat share: torch's FX graph-mode quantization flow.

FX (``torch.ao.quantization.quantize_fx``) rather than PT2E: FX's ``convert_fx``
swaps Conv/Linear for ``torch.ao.nn.quantized`` modules that call the real int8
kernels (fbgemm / onednn) in eager mode. PT2E's ``convert_pt2e`` leaves
quantize/dequantize ops around float ops ("reference" representation) that run at
float speed or slower unless the graph is lowered through inductor, so a benchmark
of the eager model would measure the wrong thing.

torch imports stay inside functions: plugin discovery imports this module.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from harness import MethodContext, Skip

if TYPE_CHECKING:
    import torch
    from torch import nn

#: FX qconfig backends in order of preference: "x86" (fbgemm + onednn), then plain fbgemm.
FX_ENGINES = ("x86", "fbgemm")


class NotTraceableError(Skip):
    """The model cannot be symbolically traced by torch.fx, so FX quantization does not
    apply to it: the cell is skipped with the reason (Hugging Face transformers models,
    for example, branch on tensor values in forward)."""


def choose_fx_engine(supported: Sequence[str]) -> str:
    """The quantized engine (and qconfig backend) to use; Skip when there is no x86/fbgemm."""
    for engine in FX_ENGINES:
        if engine in supported:
            return engine
    raise Skip(
        f"no x86/fbgemm quantized engine in this torch build (supported: {list(supported) or 'none'}); "
        "static int8 FX quantization needs one of them"
    )


def require_cpu(ctx: MethodContext, method: str) -> None:
    """FX-converted int8 modules have CPU kernels only: skip other backends instead of failing later."""
    if ctx.device.type != "cpu":
        raise Skip(f"{method}: FX int8 modules have CPU kernels only; backend {ctx.backend!r} runs on {ctx.device}")


@contextmanager
def quiet_ao_warnings() -> Iterator[None]:
    """Hide torch.ao.quantization's deprecation and roadmap warnings inside this block only.

    They are about torch's plans (the API moves to torchao), not about this run. The
    observers' "reduce_range will be deprecated" note is one of them: reduce_range is
    what torch's own x86 qconfig uses. Everything outside the block is untouched.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions.*", category=UserWarning)
        warnings.filterwarnings("ignore", message=r".*reduce_range will be deprecated.*", category=UserWarning)
        yield


def prepare_or_explain(
    prepare: Callable[..., nn.Module], model: nn.Module, qconfig_mapping: Any, example: torch.Tensor, method: str
) -> nn.Module:
    """Run ``prepare_fx`` / ``prepare_qat_fx``; a model torch.fx cannot trace gets a clear error.

    FX traces ``forward`` with proxies, so Python control flow on tensor values,
    calls into non-torch code with tensors, and the like fail deep inside torch with
    messages that do not name the model. Re-raise naming the model class and FX's reason.
    """
    try:
        return prepare(model, qconfig_mapping, (example,))
    except Exception as exc:  # noqa: BLE001 - any tracing failure is re-raised with context
        raise NotTraceableError(
            f"{method}: torch.fx could not trace model {type(model).__name__} for FX graph-mode quantization: "
            f"{type(exc).__name__}: {exc}. FX needs a symbolically traceable forward (no Python control flow "
            "or Python-side logic on tensor values); make forward traceable, or use a method without "
            "tracing such as quantize.dynamic_int8 or quantize.uniform"
        ) from exc


def count_modules(model: nn.Module, types: tuple[type, ...]) -> int:
    return sum(isinstance(m, types) for m in model.modules())


def float_layer_counts(model: nn.Module) -> tuple[int, int]:
    """(conv layers, linear layers) of a float model, for log lines."""
    from torch import nn

    return count_modules(model, (nn.Conv1d, nn.Conv2d, nn.Conv3d)), count_modules(model, (nn.Linear,))


def quantized_layer_count(model: nn.Module) -> int:
    """Modules of the converted model that run int8 kernels (Conv/Linear, fused or not)."""
    from torch.ao.nn import quantized as nnq

    return count_modules(model, (nnq.Linear, nnq.Conv1d, nnq.Conv2d, nnq.Conv3d))
