"""The ``transformers`` model: a Hugging Face model from a hub id (cached), a local directory or a config
dict, read through its own tokenizer (``optbench_models.text``), measured as a causal language model when
its task is ``causal-lm`` (``optbench_models.causal_lm``), and as a generator of text (each call one greedy
generation, its text decoded for BLEU / WER) when it is ``seq2seq``."""
from __future__ import annotations

from harness import Model
from optbench_models.causal_lm import transformers_language_model
from optbench_models.text import (
    TransformersParams,
    build_transformers,
    postprocess_transformers,
    preprocess_transformers,
)

TRANSFORMERS = Model(
    name="transformers",
    description="a Hugging Face transformers model: a hub id (cached), a local directory or a config dict",
    build=build_transformers, params=TransformersParams, trainable=False,
    preprocess=preprocess_transformers, postprocess=postprocess_transformers, pretrained=lambda params: params.source is not None,
    preload=("transformers",), language_model=transformers_language_model,
)
