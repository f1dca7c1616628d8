"""On-disk cache of trained baseline weights.

Keyed by model name and params, dataset name and params, seed, torch version and
the version of the distribution that provides the model, so a change to any of them
trains afresh. Files are written to a temporary name and renamed into place, so a
killed process or two cells training at once never leave a half-written file.
Weights are loaded with ``torch.load(weights_only=True)``: no pickled code runs.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from harness.plugin.cache_root import cache_root


def cache_dir() -> Path:
    return cache_root() / "weights"


#: An optional part of ``baseline_identity`` that is absent (None is a value a fingerprint may return).
ABSENT: Any = object()


def baseline_identity(model: str, params: dict[str, Any], dataset: tuple[str, dict[str, Any]], seed: int,
                      provider: tuple[str, str], training: Any = ABSENT, code: Any = ABSENT,
                      data: Any = ABSENT, targets: Any = ABSENT) -> dict[str, Any]:
    """What a baseline's trained weights depend on, as ``cache_key`` hashes it: the model and its params, the
    dataset and its params, the seed, the distribution and version that provide the model, the training
    settings when the model's params do not hold them (the harness's defaults stand in), the model's code
    (``Model.fingerprint``: an edit retrains it), the data (``Dataset.fingerprint``: new files retrain it) and,
    for targets that are not class indices or a loss the suite names, the task and loss it trained with."""
    ident: dict[str, Any] = {"model": model, "params": params, "dataset": list(dataset), "seed": seed,
                             "provider": list(provider)}
    for key, value in (("training", training), ("code", code), ("data", data), ("targets", targets)):
        if value is not ABSENT:
            ident[key] = value
    return ident


def cache_key(parts: dict[str, Any]) -> str:
    import torch

    blob = json.dumps({**parts, "torch": torch.__version__}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def load(key: str) -> dict[str, Any] | None:
    import torch

    path = cache_dir() / f"{key}.pt"
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None  # unreadable cache entry: retrain and overwrite


def save(key: str, state_dict: dict[str, Any]) -> Path:
    import torch

    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state_dict, tmp)
        os.replace(tmp, folder / f"{key}.pt")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return folder / f"{key}.pt"
