"""The ``exported`` model: a model saved as a ``torch.export`` archive (``.pt2``) or as TorchScript.

``path`` is the file (relative to the suite file). A ``.pt2`` archive is read with
``torch.export.load(path).module()``; any other file with ``torch.jit.load``. Either way the model
carries its own weights, so it is evaluated as saved: the harness never trains it, and accuracy is
measured when its outputs are one score per class of the dataset.

Both formats are graphs, not trees of layers: an exported program keeps its weights as attributes
called from ``aten`` ops and TorchScript keeps scripted submodules, so methods that look for
``nn.Linear`` or ``nn.Conv2d`` layers (dynamic int8, pruning, SVD, k-means) find none and skip with
that reason. Casting methods (half, bfloat16), ``torch.compile`` and the backends work on them. An
archive exported with a fixed batch size runs only at that size: export with a dynamic batch
dimension (``dynamic_shapes``) to time other batch sizes.
"""
from __future__ import annotations

import hashlib
import logging
import warnings
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from harness.plugin.types import DatasetSplits, Model, Params, SuitePath


class ExportedParams(Params):
    path: SuitePath = Field(description="a torch.export archive (.pt2) or a TorchScript file (relative to the "
                                        "suite file)")
    format: Literal["auto", "export", "torchscript"] = Field(
        "auto", description="auto: .pt2 is torch.export, anything else TorchScript")

    @field_validator("path")
    @classmethod
    def _file(cls, value: str) -> str:
        if not Path(value).is_file():
            raise ValueError(f"no such file {value}")
        return value


def kind_of(params: ExportedParams) -> str:
    if params.format != "auto":
        return params.format
    return "export" if Path(params.path).suffix.lower() == ".pt2" else "torchscript"


def static_batch(module: Any) -> int | None:
    """The batch size an exported graph was traced with, when its first input's batch dimension is fixed."""
    graph = getattr(module, "graph", None)
    for node in getattr(graph, "nodes", ()):
        if node.op != "placeholder":
            continue
        val = node.meta.get("val")
        shape = getattr(val, "shape", None)
        if shape is not None and len(shape) > 0:
            return shape[0] if isinstance(shape[0], int) else None
    return None


def build_exported(params: ExportedParams, data: DatasetSplits) -> Any:
    import torch

    path = Path(params.path)
    kind = kind_of(params)
    quiet = logging.getLogger("torch.export")  # a failed load logs its whole traceback as warnings
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        if kind == "export":
            module = torch.export.load(str(path)).module()
            # The graph runs as it was exported (eval-mode ops baked in); torch makes train()/eval() raise
            # on it, which would stop every caller that sets a mode. Restore nn.Module's own (flags only).
            for name in ("train", "eval"):
                module.__dict__.pop(name, None)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated"
                module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file raises anything
        other = "torchscript" if kind == "export" else "export"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        first = first.split(". Please check the warnings")[0].split(". This is an internal")[0][:300]
        raise ValueError(f"exported: {path} does not load as {'a torch.export archive' if kind == 'export' else 'TorchScript'}"
                         f" ({type(exc).__name__}: {first}); if it is the other kind, set format: {other}") from None
    finally:
        quiet.setLevel(level)
    fixed = static_batch(module) if kind == "export" else None
    if fixed is not None:
        return _fixed_batch_module(module, fixed, path)
    return module


def _fixed_batch_module(module: Any, size: int, path: Path) -> Any:
    """``module`` wrapped so that a batch of another size fails with how to export it (torch's own guard
    says only ``Guard failed: x.size()[0] == 1``)."""
    from torch import nn

    from harness.measure.inputs import batch_size, call_model

    class FixedBatchModule(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.graph_module, self.size, self.path = module, size, path

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            n = batch_size(args[0] if args else next(iter(kwargs.values())))
            if n != self.size:
                raise ValueError(
                    f"exported: {self.path} was exported with a fixed batch size of {self.size} and cannot run a "
                    f"batch of {n}; set measure.batch_sizes to [{self.size}], or export with a dynamic batch "
                    "dimension: torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim('batch')},))")
            return self.graph_module(*args) if args else call_model(self.graph_module, kwargs)

    return FixedBatchModule()


def file_hash(params: ExportedParams) -> str:
    digest = hashlib.sha256()
    with open(params.path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


EXPORTED = Model(
    name="exported",
    description="a saved model graph: a torch.export archive (.pt2) or TorchScript, evaluated as saved",
    build=build_exported,
    params=ExportedParams,
    trainable=False,
    pretrained=lambda params: True,
    fingerprint=file_hash,
)
