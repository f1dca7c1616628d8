"""Fixtures of the quantizers' tests: one torch thread for every test, briefly trained digits models and a
MethodContext (``harness.testing``'s), accuracy as the harness computes it, and this plugin's methods."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """On the 2-core machine shared with other jobs, two OpenMP threads spin-wait on each other: training the
    small digits CNN took 41 s with 2 threads and 0.25 s with 1."""


@pytest.fixture
def digits_mlp(trained_digits_model: Callable[..., Any]) -> Any:
    """harness's MLP (64-128-128-10) trained 5 epochs on digits: about 0.95 test accuracy."""
    return trained_digits_model("mlp", epochs=5, lr=3e-3)


@pytest.fixture
def digits_cnn(trained_digits_model: Callable[..., Any]) -> Any:
    """harness's CNN (conv 8, conv 16, max-pool, 32, 10) trained 5 epochs on digits: about 0.94."""
    return trained_digits_model("cnn", epochs=5, lr=3e-3, channels=[8, 16], hidden=32)


@pytest.fixture(scope="session")
def accuracy(optbench_digits: Any) -> Callable:
    """accuracy(model) -> top-1 on the digits test split, as the harness computes it."""
    import torch

    from harness.train.classifier import evaluate_accuracy

    return lambda model: evaluate_accuracy(model, optbench_digits.x_test, optbench_digits.y_test,
                                           device=torch.device("cpu"))


@pytest.fixture(scope="session")
def quantize_method() -> Callable:
    """quantize_method("quantize.half") -> the registered Method, through the real plugin manager."""
    from optbench_quantize import plugin

    from harness.testing import registered_objects

    methods = {m.name: m for m in registered_objects(plugin)}
    return methods.__getitem__
