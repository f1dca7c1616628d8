"""2:4 semi-structured sparsity on sparse tensor cores (NVIDIA Ampere and newer).

In every group of 4 consecutive weights along the input dimension of an nn.Linear,
the 2 of largest magnitude are kept (magnitude 2:4 masking); the masked weight is then
compressed with ``torch.sparse.to_sparse_semi_structured``, which stores the kept
half plus 2-bit position metadata and multiplies with the sparse tensor-core kernels
(cuSPARSELt or CUTLASS). That only exists on CUDA with compute capability >= 8.0, so
anywhere else the cell is skipped with the reason.

Kernel constraints (torch 2.13, read at run time from the tensor classes'
``_DTYPE_SHAPE_CONSTRAINTS``): a 2-D contiguous CUDA weight of shape
(out_features, in_features), both dimensions positive multiples of (min_rows, min_cols):

- float32: CUTLASS only, (32, 32)
- float16 / bfloat16: cuSPARSELt (16, 16), or CUTLASS (32, 64) when cuSPARSELt is missing
- int8: cuSPARSELt (32, 32), or CUTLASS (16, 128)

Layers that do not fit (e.g. a 10-class classifier) stay dense and are named in the log.
The pure mask, ``mask_2_4``, runs anywhere and is what the CPU tests check.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness import MethodContext, NoParams, Skip

if TYPE_CHECKING:
    import torch
    from torch import nn

NEEDS = "2:4 semi-structured sparsity needs a CUDA GPU with compute capability >= 8.0"


def mask_2_4(weight: torch.Tensor) -> torch.Tensor:
    """Boolean mask keeping the 2 largest |w| of every 4 consecutive weights along the last dim.

    Ties are broken by ``torch.topk``. The last dimension must be a multiple of 4.
    """
    import torch

    if weight.dim() < 1 or weight.shape[-1] % 4:
        raise ValueError(f"2:4 masking needs a last dimension divisible by 4, got shape {tuple(weight.shape)}")
    groups = weight.detach().abs().reshape(-1, 4)
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(1, torch.topk(groups, 2, dim=1).indices, True)
    return keep.view(weight.shape)


def skip_reason(device: torch.device) -> str | None:
    """None when ``device`` has sparse tensor cores, else why the cell is skipped."""
    import torch

    if device.type != "cuda":
        return f"{NEEDS}; this cell runs on {device.type}"
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) < (8, 0):
        name = torch.cuda.get_device_name(device)
        return f"{NEEDS}; this cell runs on {name} (compute capability {major}.{minor})"
    return None


def sparse_class(dtype: torch.dtype) -> Any:
    """The semi-structured tensor class ``to_sparse_semi_structured`` should use for ``dtype``:
    cuSPARSELt where it has the dtype and is available, else CUTLASS; None if neither has it."""
    import torch

    cusparselt = torch.sparse.SparseSemiStructuredTensorCUSPARSELT
    cutlass = torch.sparse.SparseSemiStructuredTensorCUTLASS
    if torch.backends.cusparselt.is_available() and dtype in cusparselt._DTYPE_SHAPE_CONSTRAINTS:
        return cusparselt
    if dtype in cutlass._DTYPE_SHAPE_CONSTRAINTS:
        return cutlass
    return None


def fits(weight: torch.Tensor) -> str | None:
    """None when ``weight`` fits the kernel constraints, else why not."""
    cls = sparse_class(weight.dtype)
    if cls is None:
        return f"dtype {weight.dtype} has no semi-structured kernel"
    if weight.dim() != 2:
        return f"{weight.dim()}-D weight"
    c = cls._DTYPE_SHAPE_CONSTRAINTS[weight.dtype]
    rows, cols = weight.shape
    if rows < c.sparse_min_rows or rows % c.sparse_min_rows or cols < c.sparse_min_cols or cols % c.sparse_min_cols:
        multiple = f"({c.sparse_min_rows}, {c.sparse_min_cols})"
        return f"shape {tuple(weight.shape)} is not a multiple of {multiple} for {cls.BACKEND}"
    return None


def to_semi_structured(weight: torch.Tensor) -> torch.Tensor:
    """Compress an already 2:4-masked CUDA weight with the class ``sparse_class`` chose."""
    import torch
    from torch.sparse import SparseSemiStructuredTensor

    force = sparse_class(weight.dtype) is torch.sparse.SparseSemiStructuredTensorCUTLASS
    saved = SparseSemiStructuredTensor._FORCE_CUTLASS
    SparseSemiStructuredTensor._FORCE_CUTLASS = force  # how torch picks CUTLASS over cuSPARSELt
    try:
        return torch.sparse.to_sparse_semi_structured(weight.contiguous())
    finally:
        SparseSemiStructuredTensor._FORCE_CUTLASS = saved


def apply(model: nn.Module, params: NoParams, ctx: MethodContext) -> nn.Module:
    import torch
    from torch import nn

    reason = skip_reason(ctx.device)
    if reason:
        raise Skip(reason)
    model = model.to(ctx.device)
    names = {module: name for name, module in model.named_modules()}
    converted, dense = [], []
    for layer in [m for m in model.modules() if isinstance(m, nn.Linear)]:
        why = fits(layer.weight)
        if why:
            dense.append(f"{names[layer]} ({why})")
            continue
        with torch.no_grad():
            masked = layer.weight.detach() * mask_2_4(layer.weight)
        layer.weight = nn.Parameter(to_semi_structured(masked), requires_grad=False)
        converted.append(f"{names[layer]} {tuple(masked.shape)}")
    if not converted:
        raise Skip(f"no nn.Linear weight fits the 2:4 kernel constraints: {', '.join(dense) or 'no nn.Linear'}")
    ctx.log(
        f"prune.semi_structured: 2:4 sparse {', '.join(converted)}"
        + (f"; left dense: {', '.join(dense)}" if dense else "")
    )
    return model
