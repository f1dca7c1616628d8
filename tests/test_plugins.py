"""Plugin discovery: real entry points, registration errors, broken and blocked plugins."""
from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

import harness
from harness import Method, Params, hookimpl
from harness.errors import RegistrationError
from harness.registry.manager import PluginManager


def make_distribution(site: Path, dist: str, entry_name: str, module: str, source: str | None) -> None:
    """An installed distribution on disk: dist-info with an ``optbench`` entry point."""
    info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[optbench]\n{entry_name} = {module}\n")
    if source is not None:
        (site / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    yield site
    for name in [m for m in sys.modules if m.startswith("obtest_")]:
        del sys.modules[name]


GOOD = """
from harness import Method, hookimpl
@hookimpl
def register_methods(register):
    register(Method(name="good.identity", kind="pruner", description="changes nothing", apply=lambda m, p, c: m))
"""


def test_first_party_plugins_load_through_their_installed_entry_points():
    pm = PluginManager.load()
    assert pm.broken == {}
    owner = pm.owner(pm.registry.methods["prune.magnitude"])
    assert (owner.name, owner.distribution) == ("prune", "optbench-prune")
    assert pm.owner(pm.registry.methods["quantize.dynamic_int8"]).distribution == "optbench-quantize"
    assert pm.owner(pm.registry.backends["cpu"]).distribution == "optbench"  # built-ins use the same hooks
    assert {"mlp", "cnn"} <= set(pm.registry.models) and {"digits", "synthetic"} <= set(pm.registry.datasets)


def test_plugins_command_lists_distribution_version_and_parameters(cli):
    out = cli("plugins", "--json")
    assert out.returncode == 0, out.stderr
    plugins = {p["distribution"]: p for p in json.loads(out.stdout)}
    prune = plugins["optbench-prune"]
    assert prune["version"] == "0.1.0" and prune["error"] is None
    method = next(m for m in prune["registers"] if m["name"] == "prune.magnitude")
    assert (method["kind"], method["type"]) == ("pruner", "method")
    sparsity = next(p for p in method["params"] if p["name"] == "sparsity")
    assert sparsity["type"] == "float" and sparsity["default"] == 0.5
    assert sparsity["bounds"] == {"minimum": 0.0, "maximum": 1.0}
    text = cli("plugins")
    assert "optbench-quantize 0.1.0" in text.stdout and "dtype: Literal['qint8', 'float16'] = \"qint8\"" in text.stdout


def test_broken_plugins_are_reported_by_name_and_the_others_still_load(site):
    make_distribution(site, "obtest-missing", "missing", "obtest_does_not_exist", None)
    make_distribution(site, "obtest-raises", "raises", "obtest_raises", """
        from harness import hookimpl
        @hookimpl
        def register_methods(register):
            raise ValueError("boom in hook")
    """)
    make_distribution(site, "obtest-misspelt", "misspelt", "obtest_misspelt", """
        from harness import hookimpl
        @hookimpl
        def register_method(register):
            pass
    """)
    make_distribution(site, "obtest-good", "good", "obtest_good", GOOD)
    pm = PluginManager.load()
    assert "good.identity" in pm.registry.methods
    assert pm.owner(pm.registry.methods["good.identity"]).distribution == "obtest-good"
    assert set(pm.broken) == {"missing", "raises", "misspelt"}
    assert "import failed" in pm.broken["missing"].error and "obtest_does_not_exist" in pm.broken["missing"].error
    assert "boom in hook" in pm.broken["raises"].error
    assert "unknown hook(s) register_method" in pm.broken["misspelt"].error
    assert "prune.magnitude" in pm.registry.methods


def test_a_plugin_calling_sys_exit_is_broken_and_every_command_still_runs(site, cli):
    """SystemExit is not an Exception: a plugin that exits at import or in a hook used to end every
    command with no output."""
    make_distribution(site, "obtest-exit-import", "exitimport", "obtest_exit_import", "import sys\nsys.exit(3)\n")
    make_distribution(site, "obtest-exit-hook", "exithook", "obtest_exit_hook", """
        import sys
        from harness import hookimpl
        @hookimpl
        def register_methods(register):
            sys.exit("leaving")
    """)
    make_distribution(site, "obtest-good", "good", "obtest_good", GOOD)
    pm = PluginManager.load()
    assert {"exitimport", "exithook"} <= set(pm.broken) and "good.identity" in pm.registry.methods
    assert "SystemExit" in pm.broken["exitimport"].error and "leaving" in pm.broken["exithook"].error
    out = cli("plugins", env={"PYTHONPATH": str(site)})
    assert out.returncode == 0 and "BROKEN obtest-exit-hook 1.2.3" in out.stdout and "good.identity" in out.stdout


def test_broken_plugin_shows_in_cli_and_disable_env_blocks_plugins(site, cli):
    make_distribution(site, "obtest-missing", "missing", "obtest_does_not_exist", None)
    make_distribution(site, "obtest-good", "good", "obtest_good", GOOD)
    env = {"PYTHONPATH": str(site)}
    out = cli("plugins", env=env)
    assert out.returncode == 0
    assert "BROKEN obtest-missing 1.2.3" in out.stdout and "good.identity" in out.stdout
    blocked = cli("plugins", "--json", env={**env, "OPTBENCH_DISABLE_PLUGINS": "good, missing,prune"})
    names = {p["plugin"] for p in json.loads(blocked.stdout)}
    assert {"builtins", "quantize"} <= names and not names & {"good", "missing", "prune"}


def _register_plugin(obj, name="p"):
    pm = PluginManager.load(entry_points=False, extra=[])
    pm.add(obj, name=name, distribution="obtest-dist", version="9.9")
    return pm


class _Plugin:
    def __init__(self, *objs):
        self.objs = objs

    @hookimpl
    def register_methods(self, register):
        for o in self.objs:
            register(o)


def _method(**kw):
    base = dict(name="x.ok", kind="pruner", description="fine", apply=lambda m, p, c: m)
    return Method(**{**base, **kw})


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (_method(name="baseline"), "already registered by plugin 'builtins' (distribution optbench"),
        (_method(name="Bad Name"), "name 'Bad Name' is not valid"),
        (_method(kind="quantiser"), "kind 'quantiser'"),
        (_method(description=""), "needs a one-line description"),
        (_method(params=dict), "params must be a harness.Params subclass"),
        (_method(apply="not callable"), ".apply must be callable"),
        ("just a string", "expected a harness.Method"),
    ],
)
def test_malformed_registration_fails_naming_the_distribution(obj, message):
    with pytest.raises(RegistrationError) as err:
        _register_plugin(_Plugin(obj))
    assert message in str(err.value)
    assert "obtest-dist" in str(err.value)


def test_a_failed_plugin_registers_nothing():
    with pytest.raises(RegistrationError):
        _register_plugin(_Plugin(_method(name="x.first"), _method(name="x.first")))
    pm = PluginManager.load(entry_points=False, extra=[])
    assert "x.first" not in pm.registry.methods


def test_hooks_are_called_with_keywords_only_so_plugins_may_omit_arguments():
    class NoArgs:
        called = False

        @hookimpl
        def register_methods(self):
            NoArgs.called = True

    _register_plugin(NoArgs())
    assert NoArgs.called


def test_in_test_plugin_fixture_registers_and_unregisters(optbench_plugin):
    class Local(Params):
        pass

    optbench_plugin(_Plugin(_method(name="x.fixture")), name="fixture-plugin")
    assert "x.fixture" in PluginManager.load().registry.methods


def test_fixture_plugins_do_not_leak_between_tests():
    assert "x.fixture" not in PluginManager.load().registry.methods


def test_every_hookspec_is_documented_and_exported():
    from harness.plugin import hookspecs

    docs = (Path(__file__).resolve().parents[1] / "docs" / "plugins" / "index.md").read_text()
    specs = [n for n in dir(hookspecs) if n.startswith("register_")]
    assert specs == ["register_backends", "register_datasets", "register_fields", "register_methods",
                     "register_metrics", "register_models"]
    for name in specs:
        assert getattr(hookspecs, name).__doc__, name
        assert f"def {name}(register)" in docs, f"{name} missing from docs/plugins/index.md"
    assert harness.hookimpl is hookspecs.hookimpl


def test_a_test_registering_an_installed_plugin_is_not_an_error(site):
    """The common case: a plugin's own tests call optbench_plugin(its_module) while it is pip-installed."""
    import importlib

    make_distribution(site, "obtest-installed", "installed_ep", "obtest_installed", GOOD)
    module = importlib.import_module("obtest_installed")
    pm = PluginManager.load(extra=[("in-test-name", module)])
    assert "in-test-name" not in pm.plugins and pm.broken == {}
    owner = pm.owner(pm.registry.methods["good.identity"])
    assert (owner.name, owner.distribution) == ("installed_ep", "obtest-installed")
    assert pm.add(module, name="again").name == "installed_ep"  # and again at run time
    rebuilt = PluginManager.from_payload(pm.setup_payload())  # what a cell process does
    assert rebuilt.owner(rebuilt.registry.methods["good.identity"]).distribution == "obtest-installed"


def test_a_different_module_registering_an_installed_name_still_fails(site):
    import types

    make_distribution(site, "obtest-installed2", "installed_ep2", "obtest_installed2", GOOD)
    copy = types.ModuleType("obtest_copy")
    exec(compile(textwrap.dedent(GOOD), "obtest_copy", "exec"), copy.__dict__)
    with pytest.raises(RegistrationError, match="already registered by plugin 'installed_ep2'"):
        PluginManager.load(extra=[("copy", copy)])


def test_plugins_command_says_when_a_model_is_trained_with_the_harness_defaults(optbench_plugin, cli):
    import optbench_test_plugins

    from harness.registry.manager import describe_object

    optbench_plugin(optbench_test_plugins, name="misbehaving")
    pm = PluginManager.load()
    plain = describe_object(pm.registry.models["test.plain"])
    assert plain["training_defaults"] == {"epochs": 20, "lr": 0.001, "batch_size": 64}
    assert describe_object(pm.registry.models["mlp"])["training_defaults"] == {}
