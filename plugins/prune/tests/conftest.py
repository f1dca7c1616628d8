"""Let the tests run from a checkout where this distribution is not pip-installed,
and share a trained model per architecture across the test session."""
import copy
import sys
from pathlib import Path

import pytest

DISTRIBUTION_ROOT = str(Path(__file__).resolve().parents[1])
if DISTRIBUTION_ROOT not in sys.path:
    sys.path.insert(0, DISTRIBUTION_ROOT)

#: Training epochs of the session's digits models: about 0.95 test accuracy for both, in about a second each.
EPOCHS = 10


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a small shared machine two threads fight other work and
    training gets several times slower; the figures do not depend on it."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def digits():
    from harness.builtin.datasets import DIGITS, DigitsParams

    return DIGITS.load(DigitsParams(), 0)


@pytest.fixture(scope="session")
def _trained_states(digits):
    return {}


@pytest.fixture
def trained(digits, _trained_states):
    """``trained("mlp" | "cnn")``: a fresh copy of that built-in model trained on digits
    (seed 0, ``EPOCHS`` epochs), trained once per session."""
    import torch

    from harness.builtin.models import CNN, MLP, CNNParams, MLPParams
    from harness.train.classifier import train_classifier

    specs = {"mlp": (MLP, MLPParams), "cnn": (CNN, CNNParams)}

    def get(name: str):
        spec, params = specs[name]
        if name not in _trained_states:
            torch.manual_seed(0)
            model = spec.build(params(), digits)
            train_classifier(model, digits, epochs=EPOCHS, lr=1e-3, batch_size=64, seed=0)
            _trained_states[name] = model
        return copy.deepcopy(_trained_states[name]).eval()

    return get


@pytest.fixture
def run_method(digits):
    """``run_method(name, model, seed=0, data=digits, logs=None, **params)``: apply a method
    registered by this plugin, as the harness would on the cpu backend."""
    import torch
    from optbench_prune import plugin

    from harness import MethodContext
    from harness.testing import registered_objects

    methods = {m.name: m for m in registered_objects(plugin)}

    def run(name, model, *, seed=0, data=None, logs=None, device=None, **params):
        method = methods[name]
        ctx = MethodContext(
            data=digits if data is None else data,
            device=device or torch.device("cpu"),
            backend="cpu",
            seed=seed,
            log=(lambda _msg: None) if logs is None else logs.append,
        )
        return method.apply(model, method.params(**params), ctx)

    return run
