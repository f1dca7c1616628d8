"""Where optbench keeps what it computed once and reuses: ``$OPTBENCH_CACHE_DIR``, else
``$XDG_CACHE_HOME/optbench``, else ``~/.cache/optbench`` (trained weights under ``weights/``, prepared
datasets under ``datasets/``). A plugin that caches something of its own keeps it here too."""
from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "OPTBENCH_CACHE_DIR"


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "optbench"))
