"""Optional libraries: imported only when a cell uses them, with an error that names them."""
from __future__ import annotations

import importlib
import os
from types import ModuleType


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or fail saying which package to install."""
    if module.split(".")[0] in ("transformers", "huggingface_hub"):
        # Nothing is ever downloaded at run time: weights come from local files or nowhere.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"this model needs the package '{module.split('.')[0]}', which is not importable here ({exc}); "
            f"install it with: pip install 'optbench-models[{extra}]'"
        ) from exc


def check_input_shape(declared: list[int], actual: tuple[int, ...], model: str) -> None:
    if tuple(declared) != tuple(actual):
        raise ValueError(
            f"{model} declares input_shape {list(declared)} but the dataset gives samples of shape "
            f"{list(actual)}; use a dataset that fits, e.g. {{name: synthetic, params: {{shape: {list(declared)}}}}}"
        )
