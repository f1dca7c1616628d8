"""The optim plugin as its tests load it: through its installed entry point when there is one."""
from importlib.metadata import entry_points

import pytest


@pytest.fixture
def optim_entry_point(optbench_plugin):
    """The installed entry point, as a user gets it; this checkout's plugin module when the
    distribution is not pip-installed (a CI that installs only some plugins)."""
    if not any(ep.name == "optim" for ep in entry_points(group="optbench")):
        from optbench_optim import plugin

        optbench_plugin(plugin, name="optim")
