"""Hugging Face transformers models, and a synthetic token-id dataset to feed them.

A model comes from the Hugging Face hub (``model_id``, with ``revision``: fetched into the hub's own
cache when this machine is online, loaded from that cache when it is not), from a local directory
(``path``, what ``save_pretrained`` wrote) or from a config dict (``config`` with ``model_type``;
random weights). The tokenizer comes with the model: text samples are tokenized to ``seq_len``
tokens (padded or truncated), and the model is called with ``input_ids``, ``attention_mask`` and,
where the tokenizer gives them, ``token_type_ids``, as it was trained. Samples that are already token
ids (the ``tokens`` dataset) get an all-ones attention mask.
"""
from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field, model_validator

from harness import Dataset, DatasetSplits, Params, SuitePath
from optbench_models.requirements import check_input_shape, hub_error, require

TASKS = ("sequence-classification", "base", "causal-lm", "seq2seq")


class TransformersParams(Params):
    model_id: str | None = Field(None, description="a Hugging Face hub id, e.g. sentence-transformers/all-MiniLM-L6-v2 "
                                                   "(the hub's cache; downloaded when online)")
    revision: str | None = Field(None, description="hub revision of model_id: a branch, tag or commit")
    path: SuitePath | None = Field(None, description="a local directory a model was saved to (save_pretrained)")
    config: dict[str, Any] | None = Field(None, description="config dict with model_type (random weights)")
    task: Literal["sequence-classification", "base", "causal-lm", "seq2seq"] = Field(
        "sequence-classification",
        description="classification head (logits), the bare encoder (hidden states or a pooled embedding), "
                    "a language-model head (next-token logits), or an encoder-decoder that generates text "
                    "(translation, summarisation: a call is one greedy generation)")
    max_new_tokens: int = Field(32, ge=1, le=100_000, description="task seq2seq: the most tokens one generation "
                                                                  "makes (it stops sooner at the end of sequence)")
    pooling: Literal["none", "mean", "cls"] = Field(
        "none", description="task base: the last hidden state (none), its mean over real tokens (a sentence "
                            "embedding, as sentence-transformers compute it) or the first token's")
    seq_len: int = Field(128, ge=1, le=1_000_000, description="tokens per sample: text is padded or truncated to it")

    @model_validator(mode="after")
    def _one_source(self) -> TransformersParams:
        given = [k for k in ("model_id", "path", "config") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of `model_id` (a hub id), `path` (a local directory) or `config` "
                             f"(a dict with model_type); got {given or 'none'}")
        if self.config is not None and "model_type" not in self.config:
            raise ValueError("`config` needs a `model_type`, e.g. bert")
        if self.revision is not None and self.model_id is None:
            raise ValueError("`revision` goes with `model_id`")
        if self.pooling != "none" and self.task != "base":
            raise ValueError("`pooling` applies to task base (the bare encoder's hidden states)")
        if self.path is not None and not os.path.isdir(self.path):
            raise ValueError(f"no such model directory {self.path}")
        return self

    @property
    def source(self) -> str | None:
        return self.path or self.model_id


def _pretrained(loader: Any, params: TransformersParams, what: str, **kwargs: Any) -> Any:
    """``loader.from_pretrained`` of the params' source, or one clear error when it is not to be had."""
    source = params.source
    extra = {"revision": params.revision} if params.revision else {}
    try:
        return loader.from_pretrained(source, **extra, **kwargs)
    except (OSError, ValueError) as exc:
        raise hub_error(what, source, params.revision, exc, local=params.path is not None) from None


def _module_class() -> type:
    """TransformersModule's class, made on first use (it subclasses torch.nn.Module, and this module is
    imported when plugins load, before torch need be)."""
    global _MODULE_CLASS
    if _MODULE_CLASS is not None:
        return _MODULE_CLASS
    import inspect

    import torch

    class TransformersModule(torch.nn.Module):
        """The transformers model behind one tensor output: logits, hidden states or a pooled embedding.
        ``.model`` is the transformers model itself (what a causal LM's ``generate`` is called on)."""

        def __init__(self, model: Any, task: str, pooling: str, max_new_tokens: int = 32) -> None:
            super().__init__()
            self.model, self.task, self.pooling, self.max_new_tokens = model, task, pooling, max_new_tokens
            self.accepts = set(inspect.signature(model.forward).parameters)

        def forward(self, input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None) -> Any:
            kwargs = {"input_ids": input_ids.long()}
            if attention_mask is not None:
                kwargs["attention_mask"] = attention_mask
            if token_type_ids is not None and "token_type_ids" in self.accepts:
                kwargs["token_type_ids"] = token_type_ids
            if self.task == "seq2seq":  # one greedy generation of the batch: the generated token ids
                return self.model.generate(**kwargs, max_new_tokens=self.max_new_tokens, do_sample=False,
                                           num_beams=1)
            out = self.model(**kwargs)
            if self.task != "base":
                return out.logits
            hidden = out.last_hidden_state
            if self.pooling == "mean":
                mask = (attention_mask if attention_mask is not None else torch.ones_like(input_ids)).to(hidden.dtype)
                mask = mask.unsqueeze(-1)
                return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1e-9)
            if self.pooling == "cls":
                return hidden[:, 0]
            return hidden

    _MODULE_CLASS = TransformersModule
    return _MODULE_CLASS


_MODULE_CLASS: type | None = None


def transformers_module(model: Any, task: str, pooling: str, max_new_tokens: int = 32) -> Any:
    """A cell's module around a transformers model (the class from ``_module_class``)."""
    return _module_class()(model, task, pooling, max_new_tokens)


def is_transformers_module(module: Any) -> bool:
    return _MODULE_CLASS is not None and isinstance(module, _MODULE_CLASS)


def pretrained_tokenizer(params: TransformersParams) -> Any:
    """The model's own tokenizer from its source (the hub's cache or a local directory)."""
    transformers = require("transformers", "transformers")
    return _pretrained(transformers.AutoTokenizer, params, "tokenizer")


def build_transformers(params: TransformersParams, data: DatasetSplits) -> Any:
    transformers = require("transformers", "transformers")

    check_input_shape([params.seq_len], data.input_shape, "transformers model")
    auto = {"sequence-classification": transformers.AutoModelForSequenceClassification,
            "base": transformers.AutoModel, "causal-lm": transformers.AutoModelForCausalLM,
            "seq2seq": transformers.AutoModelForSeq2SeqLM}[params.task]
    if params.source is not None:
        inner = _pretrained(auto, params, "model")
        labels = getattr(inner.config, "num_labels", None)
        if params.task == "sequence-classification" and data.has_labels and labels != data.num_classes:
            raise ValueError(f"the model's classification head has {labels} labels, the dataset {data.num_classes} "
                             "classes; use a dataset with the model's classes, or task: base for its embeddings")
    else:
        cfg = dict(params.config)
        if data.num_classes:
            cfg.setdefault("num_labels", data.num_classes)
        config = transformers.AutoConfig.for_model(cfg.pop("model_type"), **cfg)
        inner = auto.from_config(config)
    return transformers_module(inner, params.task, params.pooling, params.max_new_tokens)


def postprocess_transformers(params: TransformersParams, data: DatasetSplits) -> Any:
    """A seq2seq model's generated token ids -> their text, decoded by its own tokenizer (None for other tasks:
    their metrics read the outputs)."""
    if params.task != "seq2seq":
        return None
    tokenizer = None

    def decode(ids: Any) -> list[str]:
        nonlocal tokenizer
        if tokenizer is None:
            if params.source is None:
                raise ValueError("this model comes from a config (random weights) and has no tokenizer to decode "
                                 "its generations with; give `model_id` or `path` of a model saved with one")
            tokenizer = pretrained_tokenizer(params)
        return [text.strip() for text in tokenizer.batch_decode(ids, skip_special_tokens=True)]

    return decode


def preprocess_transformers(params: TransformersParams, data: DatasetSplits) -> Any:
    """raw samples -> {input_ids, attention_mask[, token_type_ids]}: text through the model's own tokenizer
    (padded or truncated to seq_len), token-id tensors as they are with an all-ones mask."""
    import torch

    tokenizer = None

    def tokenize(raw: list[Any]) -> dict[str, Any]:
        nonlocal tokenizer
        first = raw[0]
        if isinstance(first, torch.Tensor):
            ids = torch.stack([torch.as_tensor(r) for r in raw]).long()
            return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        if tokenizer is None:
            if params.source is None:
                raise ValueError("this model comes from a config (random weights) and has no tokenizer, so it "
                                 "cannot read text; give `model_id` or `path` of a model saved with its tokenizer")
            tokenizer = pretrained_tokenizer(params)
        pairs = isinstance(first, tuple)
        texts = [r[0] if pairs else r for r in raw]
        second = [r[1] for r in raw] if pairs else None
        enc = tokenizer(texts, second, padding="max_length", truncation=True, max_length=params.seq_len,
                        return_tensors="pt")
        return {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}

    return tokenize


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


TOKENS = Dataset(
    name="tokens", description="random token ids of a declared length, for text models (no accuracy)",
    load=load_tokens, params=TokenParams,
)
