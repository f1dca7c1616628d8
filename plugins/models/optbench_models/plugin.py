"""Registers the model adapters, the tiny causal LM, the token dataset and the Hugging Face datasets dataset."""
from __future__ import annotations

from collections.abc import Callable

from harness import Dataset, Model, hookimpl
from optbench_models.causal_lm import TINY_LM
from optbench_models.hf_dataset import HF
from optbench_models.text import TOKENS
from optbench_models.transformers_model import TRANSFORMERS
from optbench_models.vision import TIMM, TORCHVISION


@hookimpl
def register_models(register: Callable[[Model], None]) -> None:
    register(TORCHVISION)
    register(TIMM)
    register(TRANSFORMERS)
    register(TINY_LM)


@hookimpl
def register_datasets(register: Callable[[Dataset], None]) -> None:
    register(TOKENS)
    register(HF)
