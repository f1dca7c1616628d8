"""Generation timing for causal language models: time to first token (prefill) and time per output
token after it (decode), from greedy generations of a fixed number of new tokens.

One generation is a prefill (the prompt in, the first new token chosen) and ``new_tokens - 1`` decode
steps (the last token in, with the model's cache, the next one chosen). ``perf_counter_ns`` is read at
the start, when the first token is chosen and after the last step, each time after ``sync()`` (for an
asynchronous device), so:

- ``ttft`` = first token chosen - start (the prefill, the first token's argmax included);
- ``tpot`` = (last step done - first token chosen) / (new_tokens - 1);
- ``e2e`` = last step done - start.

Decoding is greedy (argmax) and always makes ``new_tokens`` tokens, end-of-sequence or not
(optimum-benchmark's ``min_new_tokens = max_new_tokens``): every method does the same amount of work,
so a decode time never depends on when a model happened to stop.

Repetition follows the harness's rules (``timing.Budget``): warm-up generations until both of the
warm-up's minimums hold, then timed generations until both of the repeat's minimums hold, then, with
a precision target, until the median TPOT's 95% interval is within it or ``max_seconds`` have passed.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.measure.timing import Budget, median_interval, precise_enough


class Decoder(Protocol):
    """One model's greedy step functions. Both return the next token of every sequence, shape
    (batch,), and the state the next step needs (a key/value cache, the attention mask)."""

    def prefill(self, input_ids: Any, attention_mask: Any) -> tuple[Any, Any]: ...

    def decode(self, tokens: Any, state: Any) -> tuple[Any, Any]: ...


class CausalLMDecoder:
    """A model with the Hugging Face causal-LM call: ``model(input_ids=, attention_mask=, <cache>=,
    use_cache=True)`` returning ``.logits`` (batch, positions, vocab) and the cache. The cache's name is
    read off the model's signature (``cache`` in transformers 5, ``past_key_values`` before), and where
    the model takes ``logits_to_keep`` the prefill asks for the last position's logits only, as
    ``generate`` does. Prompts are left-padded (or unpadded): the last position is the one read."""

    def __init__(self, model: Any) -> None:
        import inspect

        self.model = model
        try:
            names = set(inspect.signature(model.forward).parameters)
        except (TypeError, ValueError):
            names = set()
        self.cache_arg = "cache" if "cache" in names else "past_key_values"
        keep = next((n for n in ("logits_to_keep", "num_logits_to_keep") if n in names), None)
        self.keep_last = {keep: 1} if keep else {}

    def _cache(self, out: Any) -> Any:
        cache = getattr(out, "cache", None)
        return cache if cache is not None else out.past_key_values

    def prefill(self, input_ids: Any, attention_mask: Any) -> tuple[Any, Any]:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=True, **self.keep_last)
        return out.logits[:, -1].argmax(-1), (self._cache(out), attention_mask)

    def decode(self, tokens: Any, state: Any) -> tuple[Any, Any]:
        import torch

        cache, mask = state
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        out = self.model(input_ids=tokens[:, None], attention_mask=mask, use_cache=True, **{self.cache_arg: cache})
        return out.logits[:, -1].argmax(-1), (self._cache(out), mask)


@dataclass(frozen=True)
class Generation:
    """One timed generation: its prefill and end-to-end times (ns) and the tokens it made."""

    ttft_ns: int
    e2e_ns: int
    new_tokens: int
    tokens: Any = field(repr=False)  # (batch, new_tokens)

    @property
    def decode_ns(self) -> int:
        return self.e2e_ns - self.ttft_ns

    @property
    def tpot_ns(self) -> float | None:
        return self.decode_ns / (self.new_tokens - 1) if self.new_tokens > 1 else None


def generate_timed(decoder: Decoder, input_ids: Any, attention_mask: Any, new_tokens: int,
                   sync: Callable[[], None] = lambda: None) -> Generation:
    """One greedy generation of exactly ``new_tokens`` tokens, timed (see the module's rules)."""
    import torch

    if new_tokens < 1:
        raise ValueError(f"new_tokens must be >= 1, got {new_tokens}")
    with torch.inference_mode():
        sync()
        t0 = time.perf_counter_ns()
        token, state = decoder.prefill(input_ids, attention_mask)
        sync()
        t_first = time.perf_counter_ns()
        made = [token]
        for _ in range(new_tokens - 1):
            token, state = decoder.decode(token, state)
            made.append(token)
        sync()
        t_end = time.perf_counter_ns()
    return Generation(ttft_ns=t_first - t0, e2e_ns=t_end - t0, new_tokens=new_tokens, tokens=torch.stack(made, 1))


@dataclass
class GenerationTiming:
    """Every timed generation of one (batch size, prompt length, new tokens) point."""

    batch_size: int
    prompt_tokens: int
    new_tokens: int
    generations: list[Generation]
    precision_reached: bool | None = None

    def summary(self) -> dict[str, Any]:
        """The record's generation fields: p50/p90 of TTFT and TPOT (ms), the p50 end-to-end time, and
        throughputs from the medians: prefill tokens/s = batch x prompt tokens / TTFT, decode tokens/s =
        batch x (new tokens - 1) / decode time."""
        import numpy as np

        ttft = np.asarray([g.ttft_ns for g in self.generations], dtype=np.float64) / 1e6
        e2e = np.asarray([g.e2e_ns for g in self.generations], dtype=np.float64) / 1e6
        decode = np.asarray([g.decode_ns for g in self.generations], dtype=np.float64) / 1e6
        tpot = [g.tpot_ns / 1e6 for g in self.generations if g.tpot_ns is not None]
        ttft_p50, ttft_p90 = (float(v) for v in np.percentile(ttft, [50, 90]))
        tpot_p50, tpot_p90 = (float(v) for v in np.percentile(tpot, [50, 90])) if tpot else (None, None)
        decode_p50 = float(np.median(decode))
        return {
            "prompt_tokens": self.prompt_tokens,
            "new_tokens": self.new_tokens,
            "ttft_p50_ms": ttft_p50,
            "ttft_p90_ms": ttft_p90,
            "tpot_p50_ms": tpot_p50,
            "tpot_p90_ms": tpot_p90,
            "e2e_p50_ms": float(np.median(e2e)),
            "prefill_tokens_per_s": self.batch_size * self.prompt_tokens / (ttft_p50 / 1e3) if ttft_p50 > 0 else None,
            "decode_tokens_per_s": (self.batch_size * (self.new_tokens - 1) / (decode_p50 / 1e3)
                                    if self.new_tokens > 1 and decode_p50 > 0 else None),
            "generations_n": len(self.generations),
            "precision_reached": self.precision_reached,
        }


def time_generation(decoder: Decoder, input_ids: Any, attention_mask: Any, new_tokens: int, warmup: Budget,
                    repeat: Budget, sync: Callable[[], None] = lambda: None) -> GenerationTiming:
    """Warm-up generations, then timed ones, by the harness's repetition rules (the precision target,
    if any, is on the median TPOT, or on TTFT when only one token is made)."""
    def run_until(budget: Budget, keep: list[Generation] | None) -> bool | None:
        t0, n = time.perf_counter(), 0
        while True:
            g = generate_timed(decoder, input_ids, attention_mask, new_tokens, sync)
            n += 1
            if keep is not None:
                keep.append(g)
            if n < budget.min_iters or time.perf_counter() - t0 < budget.min_seconds:
                continue
            if keep is None or budget.target_rel_ci is None:
                return None
            key = [int(x.tpot_ns) if x.tpot_ns is not None else x.ttft_ns for x in keep]
            if len(key) >= 3 and precise_enough(key, budget.target_rel_ci):
                return True
            if budget.max_seconds is not None and time.perf_counter() - t0 >= budget.max_seconds:
                return False

    run_until(warmup, None)
    generations: list[Generation] = []
    reached = run_until(Budget(max(repeat.min_iters, 1), repeat.min_seconds, repeat.target_rel_ci,
                               repeat.max_seconds), generations)
    return GenerationTiming(batch_size=int(input_ids.shape[0]), prompt_tokens=int(input_ids.shape[1]),
                            new_tokens=new_tokens, generations=generations, precision_reached=reached)


def tpot_interval(timing: GenerationTiming) -> tuple[float, float, float] | None:
    """(median, low, high) of the TPOT in ms with its distribution-free 95% interval, or None."""
    tpot = [g.tpot_ns / 1e6 for g in timing.generations if g.tpot_ns is not None]
    return median_interval(tpot) if tpot else None
