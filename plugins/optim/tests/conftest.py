"""Let the tests run from a checkout where this distribution is not pip-installed."""
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

DISTRIBUTION_ROOT = str(Path(__file__).resolve().parents[1])
if DISTRIBUTION_ROOT not in sys.path:
    sys.path.insert(0, DISTRIBUTION_ROOT)


@pytest.fixture
def optim_entry_point(optbench_plugin):
    """The installed entry point, as a user gets it; this checkout's plugin module when the
    distribution is not pip-installed (a CI that installs only some plugins)."""
    if not any(ep.name == "optim" for ep in entry_points(group="optbench")):
        from optbench_optim import plugin

        optbench_plugin(plugin, name="optim")
