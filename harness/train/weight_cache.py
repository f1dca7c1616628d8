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
