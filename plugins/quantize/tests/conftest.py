"""Shared fixtures: briefly trained digits models, and one torch thread per test.

Also lets the tests run from a checkout where this distribution is not pip-installed.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

DISTRIBUTION_ROOT = str(Path(__file__).resolve().parents[1])
if DISTRIBUTION_ROOT not in sys.path:
    sys.path.insert(0, DISTRIBUTION_ROOT)


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread inside these tests, restored afterwards.

    On the 2-core machine shared with other jobs, two OpenMP threads spin-wait on each
    other: training the small digits CNN took 41 s with 2 threads and 0.25 s with 1.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def digits():
    from harness.builtin.datasets import DIGITS, DigitsParams

    return DIGITS.load(DigitsParams(), 0)


def _train(build: Callable, params, data, epochs: int):
    import torch

    from harness.train.classifier import train_classifier

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_classifier(build(params, data), data, epochs=epochs, lr=3e-3, batch_size=64, seed=0)
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def digits_mlp(digits):
    """harness's MLP (64-128-128-10) trained 5 epochs on digits: about 0.95 test accuracy. Do not modify it."""
    from harness.builtin.models import MLP, MLPParams

    return _train(MLP.build, MLPParams(), digits, epochs=5)


@pytest.fixture(scope="session")
def digits_cnn(digits):
    """harness's CNN (conv 8, conv 16, max-pool, 32, 10) trained 5 epochs on digits: about 0.94. Do not modify it."""
    from harness.builtin.models import CNN, CNNParams

    return _train(CNN.build, CNNParams(channels=[8, 16], hidden=32), digits, epochs=5)


@pytest.fixture(scope="session")
def make_ctx() -> Callable:
    """make_ctx(data, logs=None, device="cpu") -> a MethodContext as the harness builds one."""
    import torch

    from harness import MethodContext

    def make(data, logs: list[str] | None = None, device: str = "cpu") -> MethodContext:
        return MethodContext(
            data=data,
            device=torch.device(device),
            backend=device,
            seed=0,
            log=(logs.append if logs is not None else lambda line: None),
        )

    return make


@pytest.fixture(scope="session")
def accuracy(digits) -> Callable:
    """accuracy(model) -> top-1 on the digits test split, as the harness computes it."""
    import torch

    from harness.train.classifier import evaluate_accuracy

    return lambda model: evaluate_accuracy(model, digits.x_test, digits.y_test, device=torch.device("cpu"))


@pytest.fixture(scope="session")
def quantize_method() -> Callable:
    """quantize_method("quantize.half") -> the registered Method, through the real plugin manager."""
    from optbench_quantize import plugin

    from harness.testing import registered_objects

    methods = {m.name: m for m in registered_objects(plugin)}
    return methods.__getitem__
