"""torchao's ``quantize_``: tensor-subclass quantization of nn.Linear weights.

torchao is where PyTorch's quantization work continues (torch.ao.quantization is
deprecated). ``quantize_`` swaps each nn.Linear weight for a quantized tensor
subclass whose matmul dispatches to torchao / torch kernels. Which kernels exist
depends on the device: some configs run only on recent GPUs, so ``apply`` runs one
forward pass and turns a missing kernel into a skipped cell with torchao's reason.

torchao is imported inside ``apply`` only: plugin discovery must work without it.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from harness import MethodContext, Params, Skip, call_model, map_tensors

if TYPE_CHECKING:
    import torch
    from torch import nn

NAME = "quantize.torchao"
#: The torchao release this plugin is tested with (also pinned in pyproject.toml).
TORCHAO_VERSION = "0.18.0"
#: int4 weight-only group size: the smallest torchao offers, so narrow layers (in_features 32, 64, ...)
#: are quantized too; a Linear whose in_features is not a multiple of it is left float by torchao.
INT4_GROUP_SIZE = 32
#: float8 matmuls need these CUDA compute capabilities (Ada, Hopper and later).
FLOAT8_MIN_CAPABILITY = (8, 9)
#: Exceptions torchao and torch raise for a kernel or device that is not there; they become Skip.
UNSUPPORTED_ERRORS = (AssertionError, NotImplementedError, ImportError, RuntimeError)
#: Loggers that report at import which optional compiled extensions (CUDA-only ones on a CPU build) did not load.
IMPORT_LOGGERS = ("torchao", "torch.utils._pytree")


class TorchAOParams(Params):
    config: Literal["int8_weight_only", "int8_dynamic", "int4_weight_only", "float8_dynamic"] = Field(
        "int8_weight_only",
        description="torchao config: int8_weight_only (Int8WeightOnlyConfig), int8_dynamic "
        "(Int8DynamicActivationInt8WeightConfig), int4_weight_only (Int4WeightOnlyConfig, group size 32, "
        "bfloat16 activations), float8_dynamic (Float8DynamicActivationFloat8WeightConfig, CUDA sm >= 8.9)",
    )


def float8_unavailable_reason(device: torch.device) -> str | None:
    """Why float8_dynamic cannot run on ``device``, or None when torchao should be tried."""
    import torch

    need = f"needs a CUDA GPU with compute capability >= {FLOAT8_MIN_CAPABILITY[0]}.{FLOAT8_MIN_CAPABILITY[1]}"
    if device.type == "xpu":
        return None
    if device.type != "cuda" or not torch.cuda.is_available():
        return f"float8_dynamic {need} (or MI300+ / XPU); this backend runs on {device}"
    if torch.version.hip is None:
        capability = torch.cuda.get_device_capability(device)
        if capability < FLOAT8_MIN_CAPABILITY:
            return f"float8_dynamic {need}; {torch.cuda.get_device_name(device)} has {capability[0]}.{capability[1]}"
    return None


@contextmanager
def captured_import_logs(lines: list[str]) -> Iterator[None]:
    """Collect what torchao logs while it is imported instead of printing it.

    On a CPU-only torch, torchao's CUDA extension libraries fail to load (each one is
    logged as a warning); that is expected there, so it becomes one log line of the cell.
    """

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Collect(logging.WARNING)
    saved = []
    for name in IMPORT_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.propagate, list(logger.handlers)))
        logger.handlers = [handler]
        logger.propagate = False
    try:
        yield
    finally:
        for logger, propagate, handlers in saved:
            logger.handlers = handlers
            logger.propagate = propagate


def import_torchao(ctx: MethodContext) -> Any:
    """Import torchao (first use in the process pays for it), with a clear error when it is missing."""
    lines: list[str] = []
    try:
        with captured_import_logs(lines):
            import torchao
            import torchao.quantization
    except ImportError as exc:
        raise ImportError(
            f"{NAME} needs the torchao package: pip install torchao=={TORCHAO_VERSION} "
            f"(the version optbench-quantize is tested with; import failed: {exc})"
        ) from exc
    version = getattr(torchao, "__version__", "unknown")
    if version != TORCHAO_VERSION:
        ctx.log(f"{NAME}: torchao {version} is installed; this plugin is tested with torchao=={TORCHAO_VERSION}")
    if lines:
        ctx.log(
            f"{NAME}: torchao {version} import notes (its CUDA-only extensions do not load on a CPU torch build): "
            + " | ".join(line[:200] for line in lines)
        )
    return torchao


def make_config(quantization: Any, name: str) -> Any:
    if name == "int8_weight_only":
        return quantization.Int8WeightOnlyConfig()
    if name == "int8_dynamic":
        return quantization.Int8DynamicActivationInt8WeightConfig()
    if name == "int4_weight_only":
        # tile_packed_to_4d is torch's own tinygemm int4 kernel (CUDA, bfloat16). torchao 0.18's
        # default "plain" format needs the separate mslk package.
        return quantization.Int4WeightOnlyConfig(group_size=INT4_GROUP_SIZE, int4_packing_format="tile_packed_to_4d")
    if name == "float8_dynamic":
        return quantization.Float8DynamicActivationFloat8WeightConfig()
    raise ValueError(f"unknown torchao config {name!r}")


def is_quantized(weight: torch.Tensor) -> bool:
    import torch

    return type(weight) not in (torch.Tensor, torch.nn.Parameter)


def apply(model: nn.Module, params: TorchAOParams, ctx: MethodContext) -> nn.Module:
    import torch
    from torch import nn

    if params.config == "float8_dynamic":
        reason = float8_unavailable_reason(ctx.device)
        if reason:
            raise Skip(reason)
    torchao = import_torchao(ctx)
    config = make_config(torchao.quantization, params.config)
    example = map_tensors(ctx.data.train.example(min(32, len(ctx.data.train))), lambda t: t.to(ctx.device))
    # Quantize on the backend's device: some packed layouts (int4 tinygemm) are built by device kernels.
    model = model.to(ctx.device).eval()
    if params.config == "int4_weight_only":
        from optbench_quantize.cast_wrapper import CastWrapper

        model = CastWrapper(model.to(torch.bfloat16), torch.bfloat16)
    linears = sum(isinstance(m, nn.Linear) for m in model.modules())
    try:
        torchao.quantize_(model, config)
        with torch.no_grad():
            call_model(model, example)
    except UNSUPPORTED_ERRORS as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise Skip(
            f"torchao {torchao.__version__} {params.config} cannot run on {ctx.device}: {type(exc).__name__}: {message}"
        ) from exc
    done = sum(isinstance(m, nn.Linear) and is_quantized(m.weight) for m in model.modules())
    note = "" if done == linears else f"; {linears - done} left unquantized (shape not supported by the config)"
    ctx.log(f"{NAME}: {done} of {linears} nn.Linear weight(s) -> torchao {params.config} on {ctx.device}{note}")
    return model
