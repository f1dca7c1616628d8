"""torchvision and timm models by constructor name, with random or pretrained weights.

Pretrained weights come through each library's own cache: torchvision's ``weights`` (an enum name of
the architecture, or DEFAULT) from torch hub's cache (``$TORCH_HOME/hub/checkpoints``), timm's
``pretrained`` from the Hugging Face cache. When this machine is online a missing file is downloaded
there; offline (``OPTBENCH_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``) it is loaded from the cache, and a
missing one is one clear error naming the file, where it was looked for and the command that fetches
it. With pretrained weights the model brings its own preprocessing (the weights' transforms: resize,
crop, normalize), applied to whatever images the dataset gives; accuracy is measured when the
dataset's classes are the weights' (ImageNet's 1000 for most), fidelity always.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from harness import DatasetSplits, Model, Params
from optbench_models.requirements import (
    Unavailable,
    check_input_shape,
    hub_error,
    require,
)

OWN_PARAMS = {"weights", "pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path"}


def offline() -> bool:
    """Whether downloads are off: OPTBENCH_OFFLINE, or Hugging Face's own HF_HUB_OFFLINE."""
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
               for k in ("OPTBENCH_OFFLINE", "HF_HUB_OFFLINE"))


class VisionParams(Params):
    arch: str = Field(min_length=1, description="constructor name, e.g. resnet18")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="constructor keyword arguments")
    input_shape: list[int] = Field([3, 224, 224], min_length=1, description="shape of one input sample")

    @model_validator(mode="after")
    def _own_params(self) -> VisionParams:
        given = OWN_PARAMS & set(self.kwargs)
        if given:
            raise ValueError(f"give {sorted(given)} as the model's own params (weights: DEFAULT, pretrained: true), "
                             "not in kwargs")
        return self


class TorchvisionParams(VisionParams):
    weights: str | None = Field(None, description="pretrained weights: an enum name of the architecture "
                                                  "(IMAGENET1K_V1, ...) or DEFAULT (torch hub's cache)")

    @model_validator(mode="after")
    def _names(self) -> TorchvisionParams:
        try:
            torchvision_weights(self)  # validate says what is wrong with arch or weights, before anything runs
        except ImportError:
            pass  # no torchvision here: the cell says which package to install
        return self


class TimmParams(VisionParams):
    pretrained: bool = Field(False, description="the architecture's pretrained weights (Hugging Face cache)")


def _num_classes(params: VisionParams, data: DatasetSplits, pretrained: bool) -> dict[str, Any]:
    """The dataset's class count for a fresh head; pretrained weights keep their own head."""
    return dict(params.kwargs) if pretrained else {"num_classes": data.num_classes, **params.kwargs}


# --- torchvision ---------------------------------------------------------------------------

def torchvision_weights(params: TorchvisionParams) -> Any:
    """The weights enum member that ``params.weights`` names, or a ValueError listing the valid names."""
    models = require("torchvision.models", "torchvision")
    available = models.list_models()
    if params.arch not in available:
        import difflib

        near = difflib.get_close_matches(params.arch, available, n=3)
        raise ValueError(f"torchvision has no model {params.arch!r}" + (f"; did you mean {near}?" if near else ""))
    if params.weights is None:
        return None
    enum = models.get_model_weights(params.arch)
    name = params.weights.split(".")[-1]
    if name == "DEFAULT":
        return enum.DEFAULT
    if name not in enum.__members__:
        raise ValueError(f"torchvision {params.arch} has no weights {params.weights!r}; "
                         f"its weights: DEFAULT, {', '.join(n for n in enum.__members__ if n != 'DEFAULT')}")
    return enum[name]


def torch_hub_file(weights: Any) -> Path:
    """Where torch hub keeps a weights file: $TORCH_HOME/hub/checkpoints/<file name of its URL>."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def build_torchvision(params: TorchvisionParams, data: DatasetSplits) -> Any:
    models = require("torchvision.models", "torchvision")
    check_input_shape(params.input_shape, data.input_shape, f"torchvision {params.arch}")
    weights = torchvision_weights(params)
    if weights is not None:
        cached = torch_hub_file(weights)
        fetch = (f"python -c \"import torchvision; torchvision.models.get_model('{params.arch}', "
                 f"weights='{weights}')\"")
        if offline() and not cached.is_file():
            raise Unavailable(f"torchvision weights {weights} are not in torch hub's cache ({cached}) and downloads "
                              f"are off (OPTBENCH_OFFLINE or HF_HUB_OFFLINE); on a machine with a network, fetch them "
                              f"ahead with: {fetch}")
        try:
            return models.get_model(params.arch, weights=weights, **_num_classes(params, data, True))
        except (OSError, RuntimeError) as exc:
            if cached.is_file():
                raise
            raise Unavailable(f"torchvision weights {weights} are not in torch hub's cache ({cached}) and could not "
                              f"be downloaded ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); fetch "
                              f"them ahead with: {fetch}") from None
    return models.get_model(params.arch, weights=None, **_num_classes(params, data, False))


def _as_rgb(image: Any) -> Any:
    """A PIL image in RGB, or a (C, H, W) tensor with a grey channel repeated to three."""
    import torch

    if isinstance(image, torch.Tensor):
        return image.expand(3, *image.shape[1:]) if image.dim() == 3 and image.shape[0] == 1 else image
    return image.convert("RGB") if getattr(image, "mode", "RGB") != "RGB" else image


def _transform_each(transform: Any) -> Any:
    import torch

    def preprocess(raw: list[Any]) -> Any:
        return torch.stack([transform(_as_rgb(r)) for r in raw])

    return preprocess


def preprocess_torchvision(params: TorchvisionParams, data: DatasetSplits) -> Any:
    """The weights' own transforms (resize, crop, normalize), when the model has pretrained weights."""
    weights = torchvision_weights(params)
    return None if weights is None else _transform_each(weights.transforms())


# --- timm --------------------------------------------------------------------------------------

def build_timm(params: TimmParams, data: DatasetSplits) -> Any:
    timm = require("timm", "timm")
    check_input_shape(params.input_shape, data.input_shape, f"timm {params.arch}")
    if not params.pretrained:
        return timm.create_model(params.arch, pretrained=False, **_num_classes(params, data, False))
    cfg = timm.models.get_pretrained_cfg(params.arch)
    repo = getattr(cfg, "hf_hub_id", None) or f"timm/{params.arch}"
    try:
        return timm.create_model(params.arch, pretrained=True, **_num_classes(params, data, True))
    except (OSError, RuntimeError, ValueError) as exc:
        raise hub_error("pretrained weights", repo, None, exc, local=False) from None


def preprocess_timm(params: TimmParams, data: DatasetSplits) -> Any:
    """timm's data config of the architecture's pretrained weights, as an eval transform."""
    if not params.pretrained:
        return None
    timm = require("timm", "timm")
    from timm.data import create_transform, resolve_data_config

    cfg = timm.models.get_pretrained_cfg(params.arch)
    config = resolve_data_config(pretrained_cfg=cfg.to_dict() if cfg is not None else {})
    return _transform_each(create_transform(**config, is_training=False))


TORCHVISION = Model(
    name="torchvision",
    description="any torchvision.models constructor by name; pretrained weights through torch hub's cache",
    build=build_torchvision, params=TorchvisionParams, trainable=False, preprocess=preprocess_torchvision,
    pretrained=lambda params: params.weights is not None, preload=("torchvision",),
)
TIMM = Model(
    name="timm", description="any timm model by name; pretrained weights through the Hugging Face cache",
    build=build_timm, params=TimmParams, trainable=False, preprocess=preprocess_timm,
    pretrained=lambda params: params.pretrained, preload=("timm",),
)
