"""The trained model every method of a compression cell starts from: the user's checkpoint, cached
weights, or trained now with the model's own settings and cached (``harness.train.weight_cache``).
Also a distiller's teacher."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from harness.plugin.targets import CLASSIFICATION
from harness.plugin.types import TRAINING_FIELDS, DatasetSplits, Model, training_settings
from harness.registry.manager import PluginManager
from harness.train import classifier, weight_cache


def returned(obj: Any, expected: type, plugin: Any, call: str) -> Any:
    """``obj`` when a plugin's callable returned what the contract asks for, else a TypeError that
    names the plugin, the call and what came back (instead of an AttributeError cells later)."""
    if not isinstance(obj, expected):
        wanted = "a torch.nn.Module" if expected is torch.nn.Module else f"a harness.{expected.__name__}"
        raise TypeError(f"{plugin.plugin_type} {plugin.name!r}: {call} returned {type(obj).__name__}; "
                        f"expected {wanted}")
    return obj


def build_model(spec: Model, params: Any, data: DatasetSplits) -> torch.nn.Module:
    """``spec.build(params, data)``, checked to be a module."""
    return returned(spec.build(params, data), torch.nn.Module, spec, "build(params, data)")


def trained_model(pm: PluginManager, name: str, raw_params: dict[str, Any], dataset: tuple[str, dict[str, Any]],
                  data: DatasetSplits, seed: int, checkpoint: str | None = None) -> tuple[Any, str, bool]:
    """(model, where its weights came from, whether they mean anything). Random weights give speed and size
    but no accuracy: a model the harness does not train, without a checkpoint or pretrained weights, or a
    dataset without labels to train on."""
    spec = pm.registry.models[name]
    params = spec.params.model_validate(raw_params)
    torch.manual_seed(seed)  # the same initial weights whatever ran before in this process (a teacher)
    model = build_model(spec, params, data)
    if checkpoint:
        path = Path(checkpoint)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.eval(), f"checkpoint {path}", True
    if not spec.trainable:
        if spec.pretrained is not None and spec.pretrained(params):
            return model.eval(), "pretrained weights, as built", True
        return model.eval(), "random weights (the model is not trained by the harness; give a checkpoint)", False
    settings = training_settings(params)
    if settings["epochs"] == 0:  # its own initial weights, or weights its build loaded itself
        return model.eval(), "as built (epochs 0: not trained by the harness)", True
    if not data.trainable:
        return model.eval(), "random weights (the dataset has no labels to train on)", False
    key = weight_cache.cache_key(_identity(pm, spec, params, raw_params, dataset, seed, settings, data))
    state = weight_cache.load(key)
    if state is not None:
        model.load_state_dict(state)
        return model.eval(), f"cached weights {key}", True
    t0 = time.perf_counter()
    classifier.train_classifier(model, data, seed=seed, **settings)
    weight_cache.save(key, model.state_dict())
    return model.eval(), f"trained in {time.perf_counter() - t0:.1f}s, cached as {key}", True


def _identity(pm: PluginManager, spec: Model, params: Any, raw_params: dict[str, Any],
              dataset: tuple[str, dict[str, Any]], seed: int, settings: dict[str, Any],
              data: DatasetSplits) -> dict[str, Any]:
    owner = pm.owner(spec)
    ds_spec = pm.registry.datasets[dataset[0]]
    optional: dict[str, Any] = {}
    if any(name not in spec.params.model_fields for name in TRAINING_FIELDS):
        optional["training"] = settings  # the harness's defaults stand in for fields the params lack
    if spec.fingerprint is not None:
        optional["code"] = spec.fingerprint(params)
    if ds_spec.fingerprint is not None:
        optional["data"] = ds_spec.fingerprint(ds_spec.params.model_validate(dataset[1]))
    if data.objective is None and (data.task != CLASSIFICATION or data.loss_name is not None):
        optional["targets"] = [data.task, data.loss_name]  # what it trained on, and with what loss
    return weight_cache.baseline_identity(spec.name, raw_params, dataset, seed, (owner.distribution, owner.version),
                                          **optional)
