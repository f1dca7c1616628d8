"""The essential built-ins, registered through the same hooks as any plugin."""
from __future__ import annotations

from collections.abc import Callable

from harness.builtin.baseline import BASELINE
from harness.builtin.cpu import CPU
from harness.builtin.datasets import DIGITS, QUADRATIC, SYNTHETIC
from harness.builtin.exported_model import EXPORTED
from harness.builtin.image_folder import IMAGE_FOLDER
from harness.builtin.metrics import BUILTIN_METRICS
from harness.builtin.models import CNN, LOGREG, MLP, THETA
from harness.builtin.python_dataset import PYTHON_DATASET
from harness.builtin.python_model import PYTHON
from harness.builtin.tensor_files import TENSOR_FILES
from harness.builtin.text_corpus import PYTHON_DOCS
from harness.plugin.hookspecs import hookimpl
from harness.plugin.metric import Metric
from harness.plugin.types import Backend, Dataset, Method, Model


@hookimpl
def register_methods(register: Callable[[Method], None]) -> None:
    register(BASELINE)


@hookimpl
def register_backends(register: Callable[[Backend], None]) -> None:
    register(CPU)


@hookimpl
def register_models(register: Callable[[Model], None]) -> None:
    register(MLP)
    register(CNN)
    register(LOGREG)
    register(THETA)
    register(PYTHON)
    register(EXPORTED)


@hookimpl
def register_datasets(register: Callable[[Dataset], None]) -> None:
    register(DIGITS)
    register(SYNTHETIC)
    register(QUADRATIC)
    register(IMAGE_FOLDER)
    register(TENSOR_FILES)
    register(PYTHON_DATASET)
    register(PYTHON_DOCS)


@hookimpl
def register_metrics(register: Callable[[Metric], None]) -> None:
    for metric in BUILTIN_METRICS:
        register(metric)
