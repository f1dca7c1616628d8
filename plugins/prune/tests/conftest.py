"""Fixtures of the pruners' tests: one torch thread for every test (``harness.testing``'s), and a pruner of this
plugin applied as a cell would apply it."""
import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """One intra-op thread: on a small shared machine two threads fight other work and training gets several
    times slower; the figures do not depend on it."""


@pytest.fixture
def trained(trained_digits_model):
    """``trained("mlp" | "cnn")``: a fresh copy of that built-in model trained on digits (seed 0, 10 epochs,
    about 0.95 test accuracy for both), trained once per session."""
    return trained_digits_model


@pytest.fixture
def run_method(optbench_digits, method_context):
    """``run_method(name, model, seed=0, data=digits, logs=None, **params)``: apply a method
    registered by this plugin, as the harness would on the cpu backend."""
    from optbench_prune import plugin

    from harness.testing import registered_objects

    methods = {m.name: m for m in registered_objects(plugin)}

    def run(name, model, *, seed=0, data=None, logs=None, device=None, **params):
        method = methods[name]
        ctx = method_context(optbench_digits if data is None else data, logs=logs, device=str(device or "cpu"),
                             seed=seed)
        return method.apply(model, method.params(**params), ctx)

    return run
