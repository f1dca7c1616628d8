"""Optional libraries, imported only when a cell uses them, and the errors when something is missing:
a package (with the command that installs it) or a download (with where it was looked for and the
command that fetches it ahead of time)."""
from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or fail saying which package to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"this model needs the package '{module.split('.')[0]}', which is not importable here ({exc}); "
            f"install it with: pip install 'optbench-models[{extra}]'"
        ) from exc


class Unavailable(RuntimeError):
    """Pretrained weights, a tokenizer or a dataset that could not be had: not in the cache and not
    downloadable here (offline, or no such id). One line, with where it was looked for and how to fetch it."""


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:299] + "…"


def hub_error(what: str, source: str | None, revision: str | None, exc: BaseException, *, local: bool,
              repo_type: str = "model") -> Unavailable:
    """The error for a Hugging Face model, tokenizer or dataset that did not load."""
    if local:
        return Unavailable(f"the {what} could not be loaded from the local directory {source}: "
                           f"{type(exc).__name__}: {_first_line(exc)}")
    try:
        from huggingface_hub import constants

        cache, offline = constants.HF_HUB_CACHE, constants.HF_HUB_OFFLINE
    except ImportError:  # pragma: no cover - transformers depends on huggingface_hub
        cache, offline = "the Hugging Face cache", False
    rev = f" --revision {revision}" if revision else ""
    kind = " --repo-type dataset" if repo_type == "dataset" else ""
    why = "HF_HUB_OFFLINE is set" if offline else f"{type(exc).__name__}: {_first_line(exc)}"
    return Unavailable(f"{repo_type} {source!r}{f' (revision {revision})' if revision else ''}: the {what} is not in "
                       f"the Hugging Face cache ({cache}) and could not be downloaded ({why}); on a machine with a "
                       f"network, fetch it ahead with: hf download {source}{rev}{kind}")


def check_input_shape(declared: list[int], actual: tuple[int, ...], model: str) -> None:
    if tuple(declared) != tuple(actual):
        raise ValueError(
            f"{model} declares input_shape {list(declared)} but the dataset gives samples of shape "
            f"{list(actual)}; use a dataset that fits, e.g. {{name: synthetic, params: {{shape: {list(declared)}}}}}"
        )
