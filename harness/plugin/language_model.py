"""The language-model contract: what a model plugin declares so the harness can measure it as a
causal language model (generation speed, perplexity, drift from the baseline's next-token
distributions), besides one forward pass.

A ``Model`` declares ``language_model(params) -> LanguageModel | None``; None (or no such field) means
the model does not generate. The call must be cheap: it runs when the suite is planned, so it builds
nothing and loads nothing (a tokenizer is loaded on the first ``tokenize``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.measure.generation import CausalLMDecoder, Decoder
from harness.measure.inputs import call_model

if TYPE_CHECKING:
    import torch
    from torch import nn


def default_logits(module: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """``module(input_ids=, attention_mask=)`` of unpadded windows: (batch, positions, vocab) logits."""
    import torch

    out = call_model(module, {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)})
    logits = getattr(out, "logits", out)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 3 or logits.shape[:2] != input_ids.shape:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"a language model's call must return next-token logits of shape (batch, positions, "
                         f"vocab) = {tuple(input_ids.shape)} + (vocab,); got {shape}")
    return logits


def next_token_loss(output: torch.Tensor, x: Any, y: Any = None) -> torch.Tensor:
    """The causal language-modelling objective (a text dataset's ``objective``): cross-entropy of the
    logits at each position against the next token, padding (attention mask 0) left out."""
    import torch.nn.functional as F

    ids = x["input_ids"] if isinstance(x, dict) else x
    logits = getattr(output, "logits", output)
    target = ids[:, 1:].long()
    mask = x.get("attention_mask") if isinstance(x, dict) else None
    if mask is not None:
        target = target.masked_fill(mask[:, 1:] == 0, -100)
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), target.reshape(-1),
                           ignore_index=-100)


def split_text(split: Any) -> str:
    """The whole text of a split: a ``TextSplit``'s own (also under a model's preprocess view), else its
    raw samples joined by blank lines (a text dataset of documents or lines)."""
    inner: Any = split
    while inner is not None:
        if isinstance(getattr(inner, "text", None), str):
            return inner.text
        inner = getattr(inner, "base", None)
    texts = [split.sample(i)[0] for i in range(len(split))]
    texts = [t[0] if isinstance(t, tuple) else t for t in texts]
    if not all(isinstance(t, str) for t in texts):
        raise TypeError("perplexity needs a text dataset: this one's samples are not text")
    return "\n\n".join(texts)


@dataclass(frozen=True)
class LanguageModel:
    """How the harness reads a causal language model.

    - ``tokenize(text) -> token ids``: the model's own tokenizer (no special tokens added), used for
      the held-out text of perplexity and for the prompts of generation;
    - ``context``: the most positions the model takes in one call (its window for perplexity);
    - ``decoder(module) -> Decoder``: greedy generation of the module as the method left it (default:
      the harness's own loop over the Hugging Face causal-LM call, ``CausalLMDecoder``); raise
      ``harness.Skip`` when a method's module cannot generate;
    - ``logits(module, input_ids) -> (batch, positions, vocab)``: next-token scores of unpadded windows
      (default: ``module(input_ids=, attention_mask=)``);
    - ``kv_cache_bytes(module, batch, tokens)``: bytes the key/value cache holds at that many tokens per
      sequence, or None when unknown.
    """

    tokenize: Callable[[str], Sequence[int]]
    context: int
    decoder: Callable[[Any], Decoder] = CausalLMDecoder
    logits: Callable[[Any, Any], Any] = default_logits
    kv_cache_bytes: Callable[[Any, int, int], int | None] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.context, int) or self.context < 2:
            raise ValueError(f"LanguageModel.context must be an int of at least 2 positions, got {self.context!r}")


def unwrap(module: Any) -> Any:
    """The module inside wrappers that declare they only adapt dtypes around it (a class attribute
    ``passes_through`` naming the attribute that holds it, as quantize.half's cast wrapper does):
    integer token ids pass such a wrapper unchanged, so generation may call what is inside."""
    seen = 0
    while isinstance(getattr(type(module), "passes_through", None), str) and seen < 16:
        module = getattr(module, type(module).passes_through)
        seen += 1
    return module
