"""Size and work of a model: serialized bytes, parameter counts, FLOPs.

- ``model_bytes``: length of ``torch.save(model.state_dict())`` in memory, i.e. what a
  checkpoint of the model would take on disk (quantized packed weights included).
- ``params_count`` / ``nonzero_params``: elements of every parameter, counting the
  packed weights and biases of quantized modules (which are not ``nn.Parameter``s).
- ``flops``: for one sample: Linear/Conv layers from their shapes (2 per multiply-add,
  whatever kernel runs them), everything else from ``torch.utils.flop_counter``.
- ``effective_flops``: ``flops`` with each Linear/Conv layer's share scaled by the
  fraction of its weights that are nonzero, i.e. what a kernel that skipped every zero
  weight would do. ``theoretical_speedup`` = baseline effective_flops / effective_flops.
"""
from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any

from harness.measure.inputs import call_model

if TYPE_CHECKING:
    import torch
    from torch import nn


def model_bytes(model: nn.Module) -> int:
    import torch

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


def tensor_bytes(model: nn.Module) -> int:
    """Bytes of the state_dict's plain tensors, without the checkpoint container."""
    import torch

    return sum(t.numel() * t.element_size() for t in model.state_dict().values() if isinstance(t, torch.Tensor))


def _quantized(module: nn.Module) -> bool:
    mod = type(module).__module__
    return ".quantized" in mod and (mod.startswith("torch.ao.nn") or mod.startswith("torch.nn"))


def _packed(module: nn.Module) -> bool:
    """A layer that keeps its weight packed (no ``weight`` parameter) and gives it back through
    ``dequantize()``: hqq's HQQLinear (bit-packed codes as a uint8 parameter, scales and zeros)."""
    return (callable(getattr(module, "dequantize", None)) and hasattr(module, "in_features")
            and hasattr(module, "out_features") and "weight" not in dict(module.named_parameters(recurse=False)))


def _tensors_of(module: nn.Module) -> list[torch.Tensor]:
    """The weights of one module (not its children), packed quantized ones included."""
    import torch

    if _packed(module):  # its parameters are the packed codes: count the weight they stand for
        tensors = [module.dequantize()]
        bias = getattr(module, "bias", None)
        if isinstance(bias, torch.Tensor):
            tensors.append(bias)
        return tensors
    tensors = list(module.parameters(recurse=False))
    if _quantized(module):
        for attr in ("weight", "bias"):
            fn = getattr(module, attr, None)
            if callable(fn):
                try:
                    t = fn()
                except Exception:
                    continue
                if t is not None:
                    tensors.append(t)
    return tensors


def _plain(t: torch.Tensor) -> torch.Tensor:
    """A dense float view of a weight: quantized and semi-structured sparse ones included."""
    import torch

    if type(t) not in (torch.Tensor, torch.nn.Parameter) and callable(getattr(t, "dequantize", None)):
        return t.dequantize()  # tensor subclasses such as torchao's quantized weights
    t = t.detach()
    if t.is_quantized:
        return t.dequantize()
    semi = getattr(torch.sparse, "SparseSemiStructuredTensor", None)
    if semi is not None and isinstance(t, semi):
        return t.to_dense()
    return t


def param_counts(model: nn.Module) -> tuple[int, int]:
    """(params_count, nonzero_params) over all modules."""
    total = nonzero = 0
    for module in model.modules():
        for t in _tensors_of(module):
            t = _plain(t)
            total += t.numel()
            nonzero += int((t != 0).sum())
    return total, nonzero


def _quantized_flops(module: nn.Module, out: Any) -> int:
    if not hasattr(out, "shape"):
        return 0
    if hasattr(module, "in_features"):
        rows = out.numel() // max(module.out_features, 1)
        return 2 * rows * module.in_features * module.out_features
    if hasattr(module, "in_channels") and hasattr(module, "kernel_size"):
        k = module.kernel_size if isinstance(module.kernel_size, tuple) else (module.kernel_size,)
        return 2 * out.numel() * (module.in_channels // module.groups) * math.prod(k)
    return 0


def _is_weight_layer(module: nn.Module) -> bool:
    from torch import nn

    return isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)) or _packed(module) or (
        _quantized(module) and (hasattr(module, "in_features") or hasattr(module, "in_channels"))
    )


def _zero_fraction(module: nn.Module) -> float:
    weights = [t for t in _tensors_of(module) if t.dim() > 1]
    total = sum(t.numel() for t in weights)
    if not total:
        return 0.0
    zeros = sum(int((_plain(t) == 0).sum()) for t in weights)
    return zeros / total


def count_flops(model: nn.Module, sample: Any) -> tuple[int | None, int | None]:
    """(flops, effective_flops) of one forward pass on ``sample`` (a batch of one).

    Linear/Conv layers are counted from their shapes (2 per multiply-add), whatever
    kernel runs them: torch's counter sees nothing of quantized kernels and silently
    counts zero for some tensor-subclass ones (torchao's int8 matmuls). Everything else
    comes from ``FlopCounterMode``: its total minus what it attributed inside those
    layers. None for both when the model cannot be run at all.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    layers = [m for m in model.modules() if _is_weight_layer(m)]
    with torch.no_grad():
        zero_fraction = {id(m): _zero_fraction(m) for m in layers}  # outside the forward pass
    counter: FlopCounterMode | None = None
    layer_flops = counted_inside = 0
    skippable = 0.0  # flops of zero weights in Linear/Conv layers
    started: dict[int, int] = {}

    def before(module: nn.Module, _inp: Any) -> None:
        started[id(module)] = counter.get_total_flops() if counter is not None else 0

    def after(module: nn.Module, _inp: Any, out: Any) -> None:
        nonlocal layer_flops, counted_inside, skippable
        flops = _quantized_flops(module, out)  # from shapes; same formula as the counter's
        layer_flops += flops
        skippable += flops * zero_fraction[id(module)]
        if counter is not None:
            counted_inside += counter.get_total_flops() - started.pop(id(module), 0)

    handles = [m.register_forward_pre_hook(before) for m in layers]
    handles += [m.register_forward_hook(after) for m in layers]
    try:
        try:
            with torch.inference_mode(), FlopCounterMode(display=False) as counter:
                call_model(model, sample)
            total = counter.get_total_flops() - counted_inside + layer_flops
        except Exception:
            # The counter cannot run some models at all: count Linear/Conv layers alone.
            counter, layer_flops, counted_inside, skippable = None, 0, 0, 0.0
            with torch.inference_mode():
                call_model(model, sample)
            total = layer_flops
        return int(total), max(int(round(total - skippable)), 0)
    except Exception:
        return None, None
    finally:
        for h in handles:
            h.remove()
