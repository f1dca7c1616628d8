"""HQQ (Half-Quadratic Quantization, Mobius Labs): calibration-free k-bit weight quantization of
nn.Linear layers, the LLM quantizer library whose wheel builds here.

Each chosen nn.Linear becomes an ``hqq.core.quantize.HQQLinear``: its weight is split into groups of
``group_size`` along ``axis``, each group quantized to ``nbits`` with a scale and zero point that HQQ
fits by half-quadratic optimization of a sparsity-promoting loss (``optimize``), no data needed. The
codes are bit-packed (two 4-bit codes per byte, ...); the checkpoint (``model_bytes``) holds the packed
codes, the scales and zeros, so the size the record shows is HQQ's own.

How it runs: with HQQ's ``pytorch`` backend every call dequantizes the weight to ``compute_dtype`` and
runs a dense matmul, so on a CPU it saves memory and storage, not time (the record says what it costs).
HQQ's fast kernels (torchao int4, gemlite, bitblas, marlin) are CUDA-only and not wired here.

The language-model head is left alone by default (``exclude: lm_head``): HQQ's own Hugging Face
integration skips it, and in a model with tied embeddings quantizing it would store the matrix twice.

hqq is imported inside ``apply`` only: plugin discovery must work without it.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from harness import MethodContext, Params, Regex, Skip, call_model, map_tensors

if TYPE_CHECKING:
    from torch import nn

NAME = "quantize.hqq"
#: The hqq release this plugin is tested with (requirements: optbench-quantize[hqq]).
HQQ_VERSION = "0.2.8.post1"
INSTALL = f"DISABLE_CUDA=1 pip install hqq=={HQQ_VERSION}"


class HQQParams(Params):
    nbits: Literal[8, 4, 3, 2, 1] = Field(4, description="bits per weight code")
    group_size: int = Field(64, ge=8, le=65_536, description="weights per scale/zero group (a multiple of 8); a "
                                                            "layer whose weight count it does not divide is left float")
    axis: Literal[0, 1] = Field(1, description="the axis groups run along: 1 (input features, HQQ's default, the "
                                               "one its fast kernels take) or 0 (output features, often more accurate)")
    optimize: bool = Field(True, description="fit each group's scale and zero by HQQ's half-quadratic solver "
                                             "(false: plain min/max rounding)")
    compute_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="the dtype weights are dequantized to and the model computes in; auto: float32 on a "
                            "CPU, float16 on CUDA (HQQ's default); a lower one casts the whole model, float32 outside")
    include: Regex | None = Field(None, description="quantize only nn.Linear layers whose module name matches this "
                                                  "regular expression (searched); default: every one")
    exclude: Regex | None = Field("lm_head", description="leave nn.Linear layers whose module name matches this "
                                                       "regular expression alone (default: a language model's head)")

    @field_validator("group_size")
    @classmethod
    def _multiple_of_8(cls, value: int) -> int:
        if value % 8:
            raise ValueError(f"must be a multiple of 8 (HQQ packs groups of 8), got {value}")
        return value


def import_hqq() -> Any:
    try:
        from hqq.core import quantize
    except ImportError as exc:
        raise ImportError(f"{NAME} needs the hqq package: {INSTALL} (import failed: {exc})") from exc
    return quantize


def resolve_dtype(name: str, device: Any) -> Any:
    import torch

    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return getattr(torch, name)


def chosen_linears(model: nn.Module, params: HQQParams) -> tuple[list[tuple[nn.Module, str, str]], list[str], list[str]]:
    """(parent, child name, full name) of the nn.Linear layers to quantize; the names left out by the
    regular expressions; the names whose weight count ``group_size`` does not divide."""
    from torch import nn

    include = re.compile(params.include) if params.include is not None else None
    exclude = re.compile(params.exclude) if params.exclude is not None else None
    chosen, excluded, indivisible = [], [], []
    for parent_name, parent in model.named_modules():
        for child_name, child in parent.named_children():
            if not isinstance(child, nn.Linear):
                continue
            full = f"{parent_name}.{child_name}" if parent_name else child_name
            if (include is not None and not include.search(full)) or (exclude is not None and exclude.search(full)):
                excluded.append(full)
            elif child.weight.numel() % params.group_size:
                indivisible.append(full)
            else:
                chosen.append((parent, child_name, full))
    return chosen, excluded, indivisible


def apply(model: nn.Module, params: HQQParams, ctx: MethodContext) -> nn.Module:
    import torch

    quantize = import_hqq()
    import hqq

    version = getattr(hqq, "__version__", None)
    if version is not None and version != HQQ_VERSION:
        ctx.log(f"{NAME}: hqq {version} is installed; this plugin is tested with hqq=={HQQ_VERSION}")
    dtype = resolve_dtype(params.compute_dtype, ctx.device)
    model = model.to(ctx.device).eval()
    if dtype != torch.float32:
        from optbench_quantize.cast_wrapper import CastWrapper

        model = CastWrapper(model.to(dtype), dtype)
    chosen, excluded, indivisible = chosen_linears(model, params)
    if not chosen:
        if excluded or indivisible:
            raise Skip(f"{NAME}: no nn.Linear layer to quantize: {len(excluded)} left out by include/exclude, "
                       f"{len(indivisible)} whose weight count group_size {params.group_size} does not divide")
        raise Skip.no_layers(NAME, "nn.Linear", model)
    config = quantize.BaseQuantizeConfig(nbits=params.nbits, group_size=params.group_size, axis=params.axis)
    config["weight_quant_params"]["optimize"] = params.optimize
    quantize.HQQLinear.set_backend(quantize.HQQBackend.PYTORCH)
    for parent, child_name, _ in chosen:
        linear = getattr(parent, child_name)
        setattr(parent, child_name, quantize.HQQLinear(linear, config, compute_dtype=dtype, device=str(ctx.device),
                                                       del_orig=True))
    example = map_tensors(ctx.data.train.example(min(8, len(ctx.data.train))), lambda t: t.to(ctx.device))
    with torch.inference_mode():
        call_model(model, example)
    notes = []
    if excluded:
        notes.append(f"{len(excluded)} left float by include/exclude ({', '.join(excluded[:3])}"
                     f"{', ...' if len(excluded) > 3 else ''})")
    if indivisible:
        notes.append(f"{len(indivisible)} left float: weight count not a multiple of group_size {params.group_size}")
    ctx.log(f"{NAME}: {len(chosen)} nn.Linear layer(s) -> HQQ {params.nbits}-bit, group {params.group_size} along "
            f"axis {params.axis}, {'optimized' if params.optimize else 'min/max'} scales and zeros, computing in "
            f"{str(dtype).removeprefix('torch.')} on {ctx.device} (pytorch backend: the weight is dequantized at "
            f"every call)" + (f"; {'; '.join(notes)}" if notes else ""))
    return model
