"""Hugging Face transformers models, and a synthetic token-id dataset to feed them.

A model comes from a local directory (``path``; weights used when the directory holds
them) or from a config dict (``config`` with ``model_type``; random weights). Nothing
is downloaded: the hub is switched off before transformers is imported.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from harness import Dataset, DatasetSplits, Model, Params
from optbench_models.requirements import check_input_shape, require


class TransformersParams(Params):
    config: dict[str, Any] | None = Field(None, description="config dict with model_type (random weights)")
    path: str | None = Field(None, description="local directory of a saved model (from_pretrained, offline)")
    task: Literal["sequence-classification", "base"] = Field(
        "sequence-classification", description="classification head (logits) or the bare model (last hidden state)"
    )
    seq_len: int = Field(128, ge=1, le=1_000_000, description="tokens per sample; must match the dataset")

    @model_validator(mode="after")
    def _one_source(self) -> TransformersParams:
        if (self.config is None) == (self.path is None):
            raise ValueError("give exactly one of `config` (a dict with model_type) or `path` (a local directory)")
        if self.config is not None and "model_type" not in self.config:
            raise ValueError("`config` needs a `model_type`, e.g. bert")
        return self



def build_transformers(params: TransformersParams, data: DatasetSplits) -> Any:
    transformers = require("transformers", "transformers")
    import torch

    check_input_shape([params.seq_len], data.input_shape, "transformers model")
    auto = (transformers.AutoModelForSequenceClassification if params.task == "sequence-classification"
            else transformers.AutoModel)
    if params.path is not None:
        inner = auto.from_pretrained(params.path, local_files_only=True)
    else:
        cfg = dict(params.config)
        cfg.setdefault("num_labels", data.num_classes)
        config = transformers.AutoConfig.for_model(cfg.pop("model_type"), **cfg)
        inner = auto.from_config(config)

    class TransformersModel(torch.nn.Module):
        def __init__(self, model: Any, task: str) -> None:
            super().__init__()
            self.model, self.task = model, task

        def forward(self, input_ids: Any) -> Any:
            out = self.model(input_ids=input_ids.long())
            return out.logits if self.task == "sequence-classification" else out.last_hidden_state

    return TransformersModel(inner, params.task)


class TokenParams(Params):
    seq_len: int = Field(128, ge=1, le=1_000_000, description="tokens per sample")
    vocab: int = Field(1000, ge=2, le=10_000_000, description="token ids are drawn from [0, vocab)")
    classes: int = Field(2, ge=2, le=100_000, description="output classes of a classification head")
    samples: int = Field(64, ge=1, le=1_000_000, description="samples in each split")


def load_tokens(params: TokenParams, seed: int) -> DatasetSplits:
    """Random token ids for speed-only benchmarks of text models; no labels, so no accuracy."""
    import torch

    g = torch.Generator().manual_seed(seed)
    x_train = torch.randint(0, params.vocab, (params.samples, params.seq_len), generator=g)
    x_test = torch.randint(0, params.vocab, (params.samples, params.seq_len), generator=g)
    return DatasetSplits(x_train=x_train, y_train=None, x_test=x_test, y_test=None, num_classes=params.classes)


TRANSFORMERS = Model(
    name="transformers", description="a Hugging Face transformers model from a local directory or a config dict",
    build=build_transformers, params=TransformersParams, trainable=False,
)
TOKENS = Dataset(
    name="tokens", description="random token ids of a declared length, for text models (no accuracy)",
    load=load_tokens, params=TokenParams,
)
