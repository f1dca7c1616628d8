"""Causal language models as the harness measures them (``harness.LanguageModel``): the
``transformers`` model with ``task: causal-lm``, and ``tiny-lm``, a small Llama-architecture model
with a byte-level tokenizer that the harness trains on the fly on a text that ships with Python
(the ``python-docs`` dataset), so perplexity and drift mean something with no download.

Both generate with transformers' own ``generate`` (greedy, a fixed number of new tokens), on the
model as the method left it: a quantized or factorized model generates through its changed layers.
"""
from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from harness import DatasetSplits, GenerateDecoder, LanguageModel, Model, Skip, TrainableParams, unwrap
from optbench_models.requirements import require
from optbench_models.text import (
    TransformersParams,
    is_transformers_module,
    pretrained_tokenizer,
    transformers_module,
)


def hf_model(module: Any) -> Any:
    """The transformers model inside a (changed) cell module, or a Skip that says why there is none."""
    module = unwrap(module)
    compiled = hasattr(module, "_orig_mod")
    if compiled:  # torch.compile's wrapper compiles the forward pass; generate calls the model inside it
        module = unwrap(module._orig_mod)
    inner = getattr(module, "model", None)
    if not is_transformers_module(module) or not hasattr(inner, "generate"):
        raise Skip(f"the method left a {type(module).__name__}, not the transformers model, so there is nothing to "
                   "call generate on")
    if compiled and getattr(inner.generation_config, "compile_config", None) is None:
        raise Skip("the model is under torch.compile's wrapper, but its generation config has no compile_config: "
                   "generate would run the uncompiled model (compile.torch sets one up)")
    return inner


def kv_cache_bytes(module: Any, batch: int, tokens: int) -> int | None:
    """Keys and values of every layer at ``tokens`` positions per sequence, in the model's dtype: from the
    attention blocks' own key and value projections where they have them (so a model whose heads were
    pruned is counted as it is), else from the config (layers x 2 x key/value heads x head size)."""
    outer = unwrap(module)
    inner = getattr(unwrap(getattr(outer, "_orig_mod", outer)), "model", None)
    import torch

    try:
        dtype_bytes = next(p for p in inner.parameters() if p.is_floating_point()).element_size()
    except (StopIteration, AttributeError):
        return None
    per_token = [m.k_proj.out_features + m.v_proj.out_features for m in inner.modules()
                 if isinstance(getattr(m, "k_proj", None), torch.nn.Linear)
                 and isinstance(getattr(m, "v_proj", None), torch.nn.Linear)]
    if per_token:
        return int(batch * tokens * sum(per_token) * dtype_bytes)
    config = getattr(inner, "config", None)
    if config is None:
        return None
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    layers = getattr(text, "num_hidden_layers", None) or getattr(text, "n_layer", None)
    heads = getattr(text, "num_attention_heads", None) or getattr(text, "n_head", None)
    hidden = getattr(text, "hidden_size", None) or getattr(text, "n_embd", None)
    if not (layers and heads and hidden):
        return None
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or hidden // heads
    return int(batch * tokens * layers * 2 * kv_heads * head_dim * dtype_bytes)


def transformers_language_model(params: TransformersParams) -> LanguageModel | None:
    """A ``task: causal-lm`` transformers model's tokenizer, window and generation (cheap: the tokenizer
    loads on first use). Its window for perplexity is ``seq_len``, the tokens it is fed per sample."""
    if params.task != "causal-lm":
        return None
    cached: dict[str, Any] = {}

    def tokenizer() -> Any:
        if "tok" not in cached:
            if params.source is None:
                raise ValueError("this model comes from a config (random weights) and has no tokenizer, so it "
                                 "cannot read text; give `model_id` or `path` of a model saved with its tokenizer")
            cached["tok"] = pretrained_tokenizer(params)
        return cached["tok"]

    def tokenize(text: str) -> list[int]:
        return list(tokenizer()(text, add_special_tokens=False)["input_ids"])

    def decoder(module: Any) -> GenerateDecoder:
        inner = hf_model(module)
        pad = getattr(getattr(inner, "generation_config", None), "pad_token_id", None)
        if pad is None:
            pad = getattr(inner.config, "pad_token_id", None)
        if pad is None and "tok" in cached:
            pad = cached["tok"].pad_token_id or cached["tok"].eos_token_id
        return GenerateDecoder(inner, pad_token_id=pad)

    return LanguageModel(tokenize=tokenize, context=params.seq_len, decoder=decoder, kv_cache_bytes=kv_cache_bytes)


# -- tiny-lm -------------------------------------------------------------------------------------

#: Byte-level: token i is the byte i of the UTF-8 text; 0 (NUL, absent from text) pads.
BYTE_VOCAB = 256
PAD = 0


class TinyLMParams(TrainableParams):
    layers: int = Field(2, ge=1, le=64, description="transformer blocks")
    hidden: int = Field(128, ge=8, le=8192, description="hidden size")
    heads: int = Field(4, ge=1, le=128, description="attention heads (hidden must divide by it)")
    kv_heads: int | None = Field(None, ge=1, le=128, description="key/value heads (grouped-query attention; "
                                                                 "default: heads)")
    intermediate: int = Field(384, ge=8, le=65_536, description="MLP width (SwiGLU)")
    context: int = Field(512, ge=8, le=65_536, description="most positions the model takes (rotary, no learned "
                                                          "positions): the longest prompt plus new tokens")
    seq_len: int = Field(128, ge=2, le=65_536, description="bytes per training sample (padded or truncated)")
    epochs: int = Field(2, ge=0, le=10_000, description="training epochs over the dataset's training text")
    lr: float = Field(3e-3, gt=0.0, le=10.0, description="Adam learning rate")
    batch_size: int = Field(32, ge=1, le=65_536, description="training batch size")

    @model_validator(mode="after")
    def _shape(self) -> TinyLMParams:
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must divide by heads ({self.heads})")
        if self.kv_heads is not None and self.heads % self.kv_heads:
            raise ValueError(f"heads ({self.heads}) must divide by kv_heads ({self.kv_heads})")
        if self.seq_len > self.context:
            raise ValueError(f"seq_len ({self.seq_len}) must be at most context ({self.context})")
        return self


def build_tiny_lm(params: TinyLMParams, data: DatasetSplits) -> Any:
    transformers = require("transformers", "transformers")
    config = transformers.LlamaConfig(
        vocab_size=BYTE_VOCAB, hidden_size=params.hidden, intermediate_size=params.intermediate,
        num_hidden_layers=params.layers, num_attention_heads=params.heads,
        num_key_value_heads=params.kv_heads or params.heads, max_position_embeddings=params.context,
        tie_word_embeddings=True, pad_token_id=PAD, bos_token_id=None, eos_token_id=None)
    return transformers_module(transformers.LlamaForCausalLM(config), "causal-lm", "none")


def encode_bytes(text: str) -> list[int]:
    return list(text.encode("utf-8"))


def preprocess_tiny_lm(params: TinyLMParams, data: DatasetSplits) -> Any:
    """Text samples -> UTF-8 bytes, right-padded (0) or truncated to seq_len, with the attention mask."""
    import torch

    def tokenize(raw: list[Any]) -> dict[str, Any]:
        if isinstance(raw[0], torch.Tensor):
            ids = torch.stack([torch.as_tensor(r) for r in raw]).long()
            return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        ids = torch.full((len(raw), params.seq_len), PAD, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, text in enumerate(raw):
            if not isinstance(text, str):
                raise TypeError(f"tiny-lm reads text samples, got {type(text).__name__}")
            b = encode_bytes(text)[:params.seq_len]
            ids[row, :len(b)] = torch.tensor(b, dtype=torch.long)
            mask[row, :len(b)] = 1
        return {"input_ids": ids, "attention_mask": mask}

    return tokenize


def tiny_lm_language_model(params: TinyLMParams) -> LanguageModel:
    def decoder(module: Any) -> GenerateDecoder:
        return GenerateDecoder(hf_model(module), pad_token_id=PAD)

    return LanguageModel(tokenize=encode_bytes, context=params.context, decoder=decoder,
                         kv_cache_bytes=kv_cache_bytes)


TINY_LM = Model(
    name="tiny-lm",
    description="a small Llama-architecture causal LM with a byte-level tokenizer, trained by the harness on a "
                "text dataset (python-docs ships with Python): perplexity, drift and generation with no download",
    build=build_tiny_lm, params=TinyLMParams, trainable=True, preprocess=preprocess_tiny_lm,
    language_model=tiny_lm_language_model, preload=("transformers",),
)
