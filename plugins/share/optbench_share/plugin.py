"""Entry point module (``optbench`` group): registers the weight-sharing methods."""
from __future__ import annotations

from collections.abc import Callable

from harness import Method, hookimpl
from optbench_share import kmeans


@hookimpl
def register_methods(register: Callable[[Method], None]) -> None:
    register(
        Method(
            name="share.kmeans",
            kind="sharing",
            description="per-layer k-means weight sharing (2**bits shared values per Linear/Conv weight)",
            params=kmeans.KMeansParams,
            apply=kmeans.apply,
        )
    )
