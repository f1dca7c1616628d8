"""A causal language model's quality and latency steps (a model whose plugin declares ``language_model``):

- quality on the dataset's held-out text (``harness.measure.perplexity``): perplexity with a sliding
  window, and against the baseline's copy on the same windows the KL divergence of the next-token
  distributions and how often both pick the same top token (exact for the baseline itself);
- with ``measure.generate``, generation instead of one forward pass: for each batch size and prompt
  length, greedy generations of a fixed number of new tokens (``harness.measure.generation``),
  paired with the baseline's copy where the cell's timing is paired. A record's latency is then
  the end-to-end time of one generation (a request), its speedup the paired ratio of those.
"""
from __future__ import annotations

from typing import Any

import torch

from harness.measure import contention, memory, model_stats
from harness.measure.generation import GenerationTiming, generate_timed, time_generation, time_generation_paired
from harness.measure.perplexity import exact_drift, text_quality
from harness.measure.timing import Budget
from harness.plugin.language_model import LanguageModel, split_text
from harness.record.schema import RecordPart
from harness.results.records import point_key
from harness.run.cell_log import log
from harness.run.cell_state import CellState, LatencyStep, QualityStep
from harness.run.latency_steps import memory_part

LANGUAGE_QUALITY = "language-model quality"
GENERATION = "generation"


def held_out_tokens(lm: LanguageModel, split: Any, max_tokens: int) -> torch.Tensor:
    """The held-out split as one token stream: its text through the model's tokenizer, or, for a
    dataset of token ids, its samples' ids one after another (padding left out)."""
    first = split.sample(0)[0] if len(split) else None
    if isinstance(first, torch.Tensor):
        parts = []
        for i in range(len(split)):
            parts.append(torch.as_tensor(split.sample(i)[0]).long().flatten())
            if sum(p.numel() for p in parts) >= max_tokens:
                break
        return torch.cat(parts)[:max_tokens]
    text = split_text(split)
    # Tokenize a prefix long enough for max_tokens (at most 16 characters a token), not a whole corpus.
    ids = lm.tokenize(text[: max_tokens * 16])
    return torch.as_tensor(list(ids), dtype=torch.long)[:max_tokens]


class LanguageQuality(QualityStep):
    """Perplexity (with its window, stride and token count) and, against the baseline's copy, kl_div, agreement
    and ppl_ratio; the baseline's own drift is exact. A model with random weights gets the drift but no
    perplexity (as it gets no accuracy)."""

    def __init__(self, lm: LanguageModel, tokens: torch.Tensor) -> None:
        self.lm, self.tokens = lm, tokens
        self.fields: dict[str, Any] | None = None

    def against_baseline(self, state: CellState) -> None:
        self.fields = self._measure(state, state.baseline_copy)

    def parts(self, state: CellState) -> list[RecordPart]:
        if self.fields is None:  # no baseline copy to read drift against: perplexity alone
            self.fields = self._measure(state, None)
        return [RecordPart(LANGUAGE_QUALITY, self.fields)]

    def _measure(self, state: CellState, baseline: Any) -> dict[str, Any]:
        lm, tokens, settings, session = self.lm, self.tokens, state.payload.measure.perplexity, state.session
        window = min(settings.window or lm.context, lm.context, int(tokens.numel()))
        stride = min(settings.stride or max(window // 2, 1), window)

        def read(module: Any) -> Any:
            return lambda ids: lm.logits(module, session.prepare_input(ids)).detach().cpu()

        exact = state.plan.baseline
        reference = None if exact or baseline is None else read(baseline)
        quality = text_quality(read(state.model), tokens, window, stride, reference=reference, batch=settings.batch)
        if exact:
            exact_drift(quality)
        fields = quality.fields()
        if not state.meaningful:
            fields.update(perplexity=None, nll_per_token=None, baseline_perplexity=None, ppl_ratio=None)
        if fields.get("perplexity") is not None:
            log(f"perplexity {fields['perplexity']:.4g} over {quality.tokens} held-out tokens (window {window}, "
                f"stride {stride})")
        if quality.kl_div is not None:
            log(f"next-token drift from the baseline: kl_div {quality.kl_div:.4g}, agreement {quality.agreement:.4f}")
        return fields


def prompts(tokens: torch.Tensor, batch: int, length: int) -> torch.Tensor:
    """``batch`` prompts of ``length`` tokens: consecutive stretches of the held-out stream (wrapping
    around when it is short), so every method is given the same real text."""
    need = batch * length
    reps = -(-need // max(int(tokens.numel()), 1))
    stream = tokens.repeat(reps)[:need] if reps > 1 else tokens[:need]
    return stream.reshape(batch, length)


def _sync_for(device: Any) -> Any:
    if getattr(device, "type", "cpu") == "cuda":
        return torch.cuda.synchronize
    return lambda: None


class GenerationLatency(LatencyStep):
    """Every batch size x prompt length of ``measure.generate``, timed against the baseline's generations when
    the cell is paired, else alone (``unpaired`` says why, as in every unpaired record)."""

    def __init__(self, lm: LanguageModel, tokens: torch.Tensor) -> None:
        self.lm, self.tokens = lm, tokens

    def measure(self, state: CellState) -> tuple[dict[str, list[RecordPart]], dict[str, list[int]]]:
        lm, cell, gen = self.lm, state.payload.cell, state.payload.measure.generate
        assert gen is not None  # planned: a cell generates only under measure.generate
        new_tokens = gen.new_tokens
        longest = max(cell.prompt_tokens) + new_tokens
        if longest > lm.context:
            raise ValueError(f"measure.generate: a prompt of {max(cell.prompt_tokens)} tokens and {new_tokens} new "
                             f"ones need {longest} positions; the model takes {lm.context} (its context)")
        decoders = (lm.decoder(state.model), lm.decoder(state.pair_with) if state.pair_with is not None else None)
        points: dict[str, list[RecordPart]] = {}
        samples: dict[str, list[int]] = {}
        for bs in cell.batch_sizes:
            for p in cell.prompt_tokens:
                fields, reading, ns = self._point(state, decoders, bs, p, new_tokens)
                points[point_key(bs, p)] = [RecordPart(GENERATION, fields), memory_part(state, reading)]
                samples[point_key(bs, p)] = ns
        return points, samples

    def _point(self, state: CellState, decoders: tuple[Any, Any], bs: int, p: int, new_tokens: int
               ) -> tuple[dict[str, Any], dict[str, Any], list[int]]:
        session, (decoder, base_decoder) = state.session, decoders
        ids = session.prepare_input(prompts(self.tokens, bs, p))
        mask = torch.ones_like(ids)
        sync = _sync_for(session.device)
        screen = contention.Screen(retries=state.payload.measure.remeasure_contended, probe=session.block_load)
        # The first generation at this point, apart: what a lazy model pays once for these shapes
        # (torch.compile's graphs, a static cache allocated) lands neither in the peak nor in the timing.
        first = generate_timed(decoder, ids, mask, new_tokens, sync)
        with memory.PeakRSS() as peak, session.memory_window(batch_size=bs) as dev_mem:  # the method alone
            time_generation(decoder, ids, mask, new_tokens, Budget(1), Budget(1), sync)
        if base_decoder is not None:
            paired = time_generation_paired(decoder, base_decoder, ids, mask, new_tokens, state.warmup, state.repeat,
                                            screen=screen, seed=state.seed, sync=sync)
            timing: GenerationTiming = paired.method
            pairing = {"paired": True, "unpaired_reason": None, **paired.fields()}
        else:
            timing = time_generation(decoder, ids, mask, new_tokens, state.warmup, state.repeat, sync, screen=screen)
            pairing = {"paired": False, "unpaired_reason": state.unpaired}  # precision: the summary's
        kv = self.lm.kv_cache_bytes(state.model, bs, p + new_tokens) if self.lm.kv_cache_bytes is not None else None
        s = {k: v for k, v in timing.summary().items() if k not in ("prompt_tokens", "new_tokens")}  # the runner's
        rss_floor = state.rss_before_model + (model_stats.tensor_bytes(state.pair_with) if state.pair_with is not None else 0)
        fields = {**s, **pairing, "first_generation_ms": first.e2e_ns / 1e6,
                  "host_peak_mb": max(peak.bytes - rss_floor, 0) / 2**20,
                  "kv_cache_mb": kv / 2**20 if kv is not None else None, **screen.verdict(torch.get_num_threads())}
        log(f"batch {bs}, prompt {p}, {new_tokens} new tokens: TTFT {s['ttft_p50_ms']:.2f} ms, TPOT "
            + (f"{s['tpot_p50_ms']:.3f} ms" if s["tpot_p50_ms"] is not None else "-")
            + f", {s['generations_n']} generations (the first one: {first.e2e_ns / 1e6:.1f} ms)"
            + (f"; paired with the baseline: speedup {fields['paired_speedup']:.3f} "
               f"[{fields['speedup_ci_low']:.3f}, {fields['speedup_ci_high']:.3f}]" if fields.get("paired") else ""))
        return fields, dev_mem.fields, [g.e2e_ns for g in timing.generations]
