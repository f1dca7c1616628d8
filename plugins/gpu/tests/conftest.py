"""The multi-gpu training tests fork their ranks from the test process, as the backend forks them from a cell's
process. A process that has compiled a model with inductor (the compile plugin's tests do, in-process) can no longer
fork a child that runs autograd ("Unable to handle autograd's threading in combination with fork-based
multiprocessing"); a cell's process never has, so these tests run before any other plugin's."""
from __future__ import annotations

import pytest

FIRST = "test_multigpu"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    forking = [i for i in items if i.path.name.startswith(FIRST)]
    if forking:
        at = min(items.index(i) for i in forking)
        plugin_start = next((k for k, i in enumerate(items) if "plugins" in i.path.parts), at)
        rest = [i for i in items if i not in forking]
        start = min(plugin_start, at)
        items[:] = rest[:start] + forking + rest[start:]
