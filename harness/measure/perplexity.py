"""Quality of a language model on held-out text: perplexity, and drift from the baseline's
next-token distributions on the same tokens.

Perplexity is computed over one token stream with a sliding window (the way Hugging Face's
perplexity guide and lm-eval's rolling log-likelihood do it): windows of ``window`` tokens start every
``stride`` tokens; each window scores only the tokens the previous one did not (the first window all
but its first token), so every token after the first is scored once, with up to ``window - stride``
tokens of context before the ones scored. ``perplexity = exp(mean negative log-likelihood)`` over the
scored tokens; ``stride == window`` gives disjoint windows (less context, faster), a smaller stride
more context for the price of more forward passes.

Drift, on the same windows and scored positions, as llama.cpp's ``perplexity --kl-divergence``
reports it: ``kl_div`` is the mean over scored positions of KL(baseline || model) of the next-token
distributions (nats), ``agreement`` the share of positions where both pick the same top token, and
``ppl_ratio`` the model's perplexity over the baseline's. For the baseline itself they are exact
(0, 1, 1) and not computed.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

#: ``logits(input_ids) -> (batch, positions, vocab)``: one model's next-token scores for a batch of windows.
Logits = Callable[[Any], Any]


def windows(n_tokens: int, window: int, stride: int) -> Iterator[tuple[int, int, int]]:
    """(begin, end, scored): each window's token range and how many of its last tokens it scores."""
    if window < 2:
        raise ValueError(f"window must be at least 2 tokens, got {window}")
    if not 1 <= stride <= window:
        raise ValueError(f"stride must be in [1, window={window}], got {stride}")
    prev_end = 0
    begin = 0
    while prev_end < n_tokens:
        end = min(begin + window, n_tokens)
        scored = end - max(prev_end, begin + 1)  # position begin has no context inside its window
        if scored > 0:
            yield begin, end, scored
        prev_end = end
        if end == n_tokens:
            break
        begin += stride


@dataclass
class TextQuality:
    """Perplexity over the scored tokens, and drift from the baseline where one was given."""

    tokens: int  # scored tokens
    nll: float  # mean negative log-likelihood, nats per token
    window: int
    stride: int
    ref_nll: float | None = None
    kl_div: float | None = None
    agreement: float | None = None

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll)

    def fields(self) -> dict[str, Any]:
        """The record's fields."""
        out: dict[str, Any] = {
            "perplexity": self.perplexity,
            "nll_per_token": self.nll,
            "perplexity_tokens": self.tokens,
            "perplexity_window": self.window,
            "perplexity_stride": self.stride,
        }
        if self.ref_nll is not None:
            out.update(kl_div=self.kl_div, agreement=self.agreement,
                       baseline_perplexity=math.exp(self.ref_nll),
                       ppl_ratio=math.exp(self.nll - self.ref_nll))
        return out


def text_quality(logits: Logits, tokens: Any, window: int, stride: int, *, reference: Logits | None = None,
                 batch: int = 4) -> TextQuality:
    """Perplexity of ``logits``' model over the 1-D token tensor ``tokens``, and with ``reference`` (the
    baseline's model) its drift from it on the same windows. Windows of equal length go through the
    model ``batch`` at a time; log-softmax is in float32 whatever the model's dtype."""
    import torch

    tokens = torch.as_tensor(tokens, dtype=torch.long).flatten()
    if tokens.numel() < 2:
        raise ValueError(f"perplexity needs at least 2 tokens of text, got {tokens.numel()}")
    spans = list(windows(int(tokens.numel()), window, stride))
    nll_sum = ref_sum = kl_sum = 0.0
    agree = 0
    scored_total = 0
    # Group windows of the same length (all but possibly the last) into batches.
    groups: dict[int, list[tuple[int, int, int]]] = {}
    for span in spans:
        groups.setdefault(span[1] - span[0], []).append(span)
    with torch.inference_mode():
        for spans_of_len in groups.values():
            for i in range(0, len(spans_of_len), batch):
                chunk = spans_of_len[i:i + batch]
                ids = torch.stack([tokens[b:e] for b, e, _ in chunk])
                lp = torch.log_softmax(logits(ids).float(), dim=-1)
                ref = torch.log_softmax(reference(ids).float(), dim=-1) if reference is not None else None
                for row, (b, e, scored) in enumerate(chunk):
                    length = e - b
                    # position t predicts token t + 1: the last `scored` targets are ids[row, length-scored:]
                    pred = slice(length - scored - 1, length - 1)
                    target = ids[row, length - scored:]
                    m = lp[row, pred]
                    nll_sum += float(-m.gather(-1, target[:, None]).sum())
                    if ref is not None:
                        r = ref[row, pred]
                        ref_sum += float(-r.gather(-1, target[:, None]).sum())
                        kl_sum += float((r.exp() * (r - m)).sum())
                        agree += int((r.argmax(-1) == m.argmax(-1)).sum())
                    scored_total += scored
    out = TextQuality(tokens=scored_total, nll=nll_sum / scored_total, window=window, stride=stride)
    if reference is not None:
        out.ref_nll = ref_sum / scored_total
        out.kl_div = max(kl_sum / scored_total, 0.0)  # rounding can leave -1e-9 for identical models
        out.agreement = agree / scored_total
    return out


def exact_drift(quality: TextQuality) -> TextQuality:
    """The baseline's own drift fields: exact, not computed (KL 0, agreement 1, the same perplexity)."""
    quality.ref_nll, quality.kl_div, quality.agreement = quality.nll, 0.0, 1.0
    return quality
