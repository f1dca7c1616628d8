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

from harness.measure.stats import precise_enough
from harness.measure.timing import Budget


class Decoder(Protocol):
    """One model's greedy generation: ``generate`` makes exactly ``new_tokens`` tokens after each prompt
    and returns them, shape (batch, new_tokens), calling ``first_token()`` once, as soon as the first
    new token of every sequence is chosen (the end of the prefill)."""

    def generate(self, input_ids: Any, attention_mask: Any, new_tokens: int,
                 first_token: Callable[[], None]) -> Any: ...


class StepDecoder:
    """A decoder driven step by step by the harness: ``prefill`` (the prompt in, the first token out)
    and ``decode`` (the last token in, the next one out), each returning the next token of every
    sequence, shape (batch,), and the state the next step needs (a key/value cache, the mask)."""

    def prefill(self, input_ids: Any, attention_mask: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    def decode(self, tokens: Any, state: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    def generate(self, input_ids: Any, attention_mask: Any, new_tokens: int,
                 first_token: Callable[[], None]) -> Any:
        import torch

        token, state = self.prefill(input_ids, attention_mask)
        first_token()
        made = [token]
        for _ in range(new_tokens - 1):
            token, state = self.decode(token, state)
            made.append(token)
        return torch.stack(made, 1)


class CausalLMDecoder(StepDecoder):
    """A greedy loop of the harness's own over a model with the Hugging Face causal-LM call:
    ``model(input_ids=, attention_mask=, <cache>=, use_cache=True)`` returning ``.logits`` (batch,
    positions, vocab) and the cache. For a model plugin whose module has that call but no ``generate``.
    The cache's name is read off the model's signature (``cache`` in transformers 5, ``past_key_values``
    before), and where the model takes ``logits_to_keep`` the prefill asks for the last position's
    logits only. Prompts are left-padded (or unpadded): the last position is the one read."""

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


class GenerateDecoder:
    """transformers' own ``generate``, greedy, with exactly ``new_tokens`` new tokens: what a user of
    the model runs, its per-step work (logits processors, stopping checks, cache updates) included.
    The first token is seen through a streamer: ``generate`` hands it the prompt, then each new token
    as soon as it is chosen (on the host, so after the device finished it)."""

    def __init__(self, model: Any, pad_token_id: int | None = None) -> None:
        self.model = model
        self.pad_token_id = pad_token_id

    def generate(self, input_ids: Any, attention_mask: Any, new_tokens: int,
                 first_token: Callable[[], None]) -> Any:
        from transformers import GenerationConfig

        calls = 0

        class _First:
            def put(self, value: Any) -> None:
                nonlocal calls
                calls += 1
                if calls == 2:  # the first call is the prompt
                    first_token()

            def end(self) -> None:
                pass

        config = GenerationConfig(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, num_beams=1,
                                  use_cache=True,
                                  pad_token_id=0 if self.pad_token_id is None else self.pad_token_id)
        out = self.model.generate(input_ids, attention_mask=attention_mask, generation_config=config,
                                  streamer=_First())
        if calls < 2:
            raise RuntimeError("generate made no new token")
        return out[:, input_ids.shape[1]:]


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
    first: list[int] = []

    def first_token() -> None:
        sync()
        first.append(time.perf_counter_ns())

    with torch.inference_mode():
        sync()
        t0 = time.perf_counter_ns()
        tokens = decoder.generate(input_ids, attention_mask, new_tokens, first_token)
        sync()
        t_end = time.perf_counter_ns()
    if len(first) != 1:
        raise RuntimeError(f"the decoder reported its first token {len(first)} times, not once")
    if tuple(tokens.shape) != (input_ids.shape[0], new_tokens):
        raise RuntimeError(f"the decoder made tokens of shape {tuple(tokens.shape)}, not "
                           f"{(int(input_ids.shape[0]), new_tokens)}: it must not stop early")
    return Generation(ttft_ns=first[0] - t0, e2e_ns=t_end - t0, new_tokens=new_tokens, tokens=tokens)


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
                    repeat: Budget, sync: Callable[[], None] = lambda: None, screen: Any = None) -> GenerationTiming:
    """Warm-up generations, then timed ones, by the harness's repetition rules (the precision target,
    if any, is on the median TPOT, or on TTFT when only one token is made). With ``screen`` (a
    ``harness.measure.contention.Screen``) each timed generation is a screened block: one measured
    while other work took the CPUs is made again."""
    def one() -> Generation:
        return generate_timed(decoder, input_ids, attention_mask, new_tokens, sync)

    def run_until(budget: Budget, keep: list[Generation] | None) -> bool | None:
        t0, n = time.perf_counter(), 0
        while True:
            g = one() if keep is None or screen is None else screen.run(one)
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


class _KeptGenerations:
    """A contention screen that also keeps the generations of the blocks it keeps: a block measured
    again drops the generations of its contended try. Everything else is the screen's."""

    def __init__(self, screen: Any) -> None:
        self.screen = screen
        self.active = False
        self.pending: dict[str, list[Generation]] = {}
        self.generations: dict[str, list[Generation]] = {"method": [], "baseline": []}
        self.unscreened_s = 0.0

    def __getattr__(self, name: str) -> Any:
        if self.screen is None and name == "kept_s":  # no screen: every block is kept
            return self.unscreened_s
        return getattr(self.screen, name)

    def add(self, arm: str, g: Generation) -> Generation:
        if self.active:
            self.pending[arm].append(g)
        return g

    def run(self, block: Callable[[], Any]) -> Any:
        def attempt() -> Any:
            self.pending = {"method": [], "baseline": []}
            self.active = True
            try:
                return block()
            finally:
                self.active = False

        if self.screen is None:
            t0 = time.perf_counter()
            result = attempt()
            self.unscreened_s += time.perf_counter() - t0
        else:
            result = self.screen.run(attempt)
        for arm, gens in self.pending.items():
            self.generations[arm].extend(gens)
        return result


@dataclass
class PairedGeneration:
    """A method's and its baseline's generations, timed in alternating blocks (``pairing``)."""

    method: GenerationTiming
    baseline: GenerationTiming
    paired: Any  # harness.measure.pairing.PairedTiming over end-to-end times

    def fields(self) -> dict[str, Any]:
        """The record's pairing fields: the end-to-end speedup with its interval, and the baseline's
        TTFT, TPOT and e2e from the same blocks with the TTFT and decode ratios they give."""
        m, b = self.method.summary(), self.baseline.summary()

        def ratio(key: str) -> float | None:
            return b[key] / m[key] if b.get(key) and m.get(key) else None

        return {
            "paired_speedup": self.paired.speedup,
            "speedup_ci_low": self.paired.ci_low,
            "speedup_ci_high": self.paired.ci_high,
            "pair_blocks": self.paired.blocks,
            "precision_reached": self.paired.precision_reached,
            "timing_s": self.paired.seconds,
            "baseline_p50_ms": b["e2e_p50_ms"],
            "baseline_ttft_p50_ms": b["ttft_p50_ms"],
            "baseline_tpot_p50_ms": b["tpot_p50_ms"],
            "ttft_speedup": ratio("ttft_p50_ms"),
            "decode_speedup": ratio("tpot_p50_ms"),
        }


def time_generation_paired(method: Decoder, baseline: Decoder, input_ids: Any, attention_mask: Any,
                           new_tokens: int, warmup: Budget, repeat: Budget, *, screen: Any = None, seed: int = 0,
                           sync: Callable[[], None] = lambda: None) -> PairedGeneration:
    """The method's and the baseline's generations of the same prompts in alternating ABBA blocks
    (``harness.measure.pairing``: the speedup is of the end-to-end time, with a bootstrap interval and
    the precision target of the repeat budget); TTFT and TPOT of each come from the same blocks."""
    from harness.measure import pairing

    kept = _KeptGenerations(screen)

    def arm(name: str, decoder: Decoder) -> Callable[[], Generation]:
        return lambda: kept.add(name, generate_timed(decoder, input_ids, attention_mask, new_tokens, sync))

    def time_calls(fn: Callable[[], Generation], warm: Budget, budget: Budget) -> list[int]:
        t0 = time.perf_counter()
        n = 0
        while n < warm.min_iters or time.perf_counter() - t0 < warm.min_seconds:
            fn()
            n += 1
        out: list[int] = []
        t0 = time.perf_counter()
        while len(out) < budget.min_iters or time.perf_counter() - t0 < budget.min_seconds:
            out.append(fn().e2e_ns)
        return out

    paired = pairing.time_paired(time_calls, arm("method", method), arm("baseline", baseline), warmup, repeat,
                                 target_rel_ci=repeat.target_rel_ci, max_seconds=repeat.max_seconds, seed=seed,
                                 screen=kept)
    b, p = int(input_ids.shape[0]), int(input_ids.shape[1])
    return PairedGeneration(
        method=GenerationTiming(b, p, new_tokens, kept.generations["method"], paired.precision_reached),
        baseline=GenerationTiming(b, p, new_tokens, kept.generations["baseline"], paired.precision_reached),
        paired=paired)

