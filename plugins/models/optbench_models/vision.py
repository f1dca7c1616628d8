"""torchvision and timm models by constructor name, with random weights.

Weights are never downloaded: ``weights``/``pretrained`` arguments are refused; give
the suite entry a ``checkpoint`` (a state_dict file) to measure accuracy.
"""
from __future__ import annotations

from typing import Any

from pydantic import Field

from harness import DatasetSplits, Model, Params
from optbench_models.requirements import check_input_shape, require

REFUSED = {"weights", "pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path"}


class VisionParams(Params):
    arch: str = Field(min_length=1, description="constructor name, e.g. resnet18")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="constructor keyword arguments")
    input_shape: list[int] = Field([3, 224, 224], min_length=1, description="shape of one input sample")


def _kwargs(params: VisionParams, data: DatasetSplits) -> dict[str, Any]:
    refused = REFUSED & set(params.kwargs)
    if refused:
        raise ValueError(f"{sorted(refused)}: nothing is downloaded at run time; give the model a `checkpoint` instead")
    return {"num_classes": data.num_classes, **params.kwargs}


def build_torchvision(params: VisionParams, data: DatasetSplits) -> Any:
    models = require("torchvision.models", "torchvision")
    check_input_shape(params.input_shape, data.input_shape, f"torchvision {params.arch}")
    available = models.list_models()
    if params.arch not in available:
        import difflib

        near = difflib.get_close_matches(params.arch, available, n=3)
        raise ValueError(f"torchvision has no model {params.arch!r}" + (f"; did you mean {near}?" if near else ""))
    return models.get_model(params.arch, weights=None, **_kwargs(params, data))


def build_timm(params: VisionParams, data: DatasetSplits) -> Any:
    timm = require("timm", "timm")
    check_input_shape(params.input_shape, data.input_shape, f"timm {params.arch}")
    return timm.create_model(params.arch, pretrained=False, **_kwargs(params, data))


TORCHVISION = Model(
    name="torchvision", description="any torchvision.models constructor by name (random weights unless a checkpoint)",
    build=build_torchvision, params=VisionParams, trainable=False,
)
TIMM = Model(
    name="timm", description="any timm model by name (random weights unless a checkpoint)",
    build=build_timm, params=VisionParams, trainable=False,
)
