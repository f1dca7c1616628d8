"""What a cell measures for a causal language model (a model whose plugin declares
``language_model``), in the cell's own process, beside what every cell measures:

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

from harness.measure import contention, memory
from harness.measure.generation import (
    GenerationTiming,
    generate_timed,
    time_generation,
    time_generation_paired,
)
from harness.measure.perplexity import exact_drift, text_quality
from harness.measure.timing import Budget
from harness.plugin.language_model import LanguageModel, split_text
from harness.registry.manager import PluginManager
from harness.results.records import point_key


def language_model_of(pm: PluginManager, model_ref: dict) -> LanguageModel | None:
    """The cell's model as a causal language model, or None when its plugin does not declare one."""
    spec = pm.registry.models[model_ref["name"]]
    if spec.language_model is None:
        return None
    return spec.language_model(spec.params.model_validate(model_ref["params"]))


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


def text_fields(lm: LanguageModel, model: Any, baseline: Any, tokens: torch.Tensor, session: Any,
                settings: dict, *, exact: bool, meaningful: bool, log: Any) -> dict[str, Any]:
    """perplexity (with its window, stride and token count) and, against ``baseline``, kl_div, agreement
    and ppl_ratio; the baseline's own drift is exact. A model with random weights gets the drift but no
    perplexity (as it gets no accuracy)."""
    window = min(settings.get("window") or lm.context, lm.context, int(tokens.numel()))
    stride = min(settings.get("stride") or max(window // 2, 1), window)

    def read(module: Any) -> Any:
        return lambda ids: lm.logits(module, session.prepare_input(ids)).detach().cpu()

    reference = None if exact or baseline is None else read(baseline)
    quality = text_quality(read(model), tokens, window, stride, reference=reference,
                           batch=settings.get("batch", 4))
    if exact:
        exact_drift(quality)
    fields = quality.fields()
    if not meaningful:
        fields.update(perplexity=None, nll_per_token=None, baseline_perplexity=None, ppl_ratio=None)
    if "perplexity" in fields and fields["perplexity"] is not None:
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


def generation_points(lm: LanguageModel, model: Any, baseline: Any, tokens: torch.Tensor, session: Any,
                      measure: dict, seed: int, rss_floor: int, *, unpaired_reason: str | None = None,
                      log: Any) -> tuple[dict, dict]:
    """(per_point fields, per_point samples) for every batch size x prompt length of ``measure.generate``;
    timed against ``baseline``'s generations when it is given (paired), else alone (``unpaired_reason``
    says why, as in every unpaired record)."""
    gen = measure["generate"]
    new_tokens = gen["new_tokens"]
    longest = max(measure["prompt_tokens"]) + new_tokens
    if longest > lm.context:
        raise ValueError(f"measure.generate: a prompt of {max(measure['prompt_tokens'])} tokens and {new_tokens} new "
                         f"ones need {longest} positions; the model takes {lm.context} (its context)")
    decoder = lm.decoder(model)
    base_decoder = lm.decoder(baseline) if baseline is not None else None
    warmup, repeat = Budget(**measure["warmup"]), Budget(**measure["repeat"])
    sync = _sync_for(session.device)
    per_point: dict[str, dict] = {}
    samples: dict[str, list[int]] = {}
    for bs in measure["batch_sizes"]:
        for p in measure["prompt_tokens"]:
            ids = session.prepare_input(prompts(tokens, bs, p))
            mask = torch.ones_like(ids)
            screen = contention.Screen(retries=measure.get("remeasure_contended", contention.RETRIES),
                                       probe=session.block_load)
            # The first generation at this point, apart: what a lazy model pays once for these shapes
            # (torch.compile's graphs, a static cache allocated) lands neither in the peak nor in the timing.
            first = generate_timed(decoder, ids, mask, new_tokens, sync)
            with memory.PeakRSS() as peak, session.memory_window(batch_size=bs) as dev_mem:  # the method alone
                time_generation(decoder, ids, mask, new_tokens, Budget(1), Budget(1), sync)
            if base_decoder is not None:
                paired = time_generation_paired(decoder, base_decoder, ids, mask, new_tokens, warmup, repeat,
                                                screen=screen, seed=seed, sync=sync)
                timing: GenerationTiming = paired.method
                pairing = {"paired": True, "unpaired_reason": None, **paired.fields()}
            else:
                timing = time_generation(decoder, ids, mask, new_tokens, warmup, repeat, sync, screen=screen)
                pairing = {"paired": False, "unpaired_reason": unpaired_reason}  # precision: the summary's
            kv = lm.kv_cache_bytes(model, bs, p + new_tokens) if lm.kv_cache_bytes is not None else None
            s = timing.summary()
            fields = {
                **s,
                **pairing,
                "first_generation_ms": first.e2e_ns / 1e6,
                "host_peak_mb": max(peak.bytes - rss_floor, 0) / 2**20,
                "kv_cache_mb": kv / 2**20 if kv is not None else None,
                **dev_mem.fields,
                **screen.verdict(torch.get_num_threads()),
            }
            key = point_key(bs, p)
            per_point[key] = fields
            samples[key] = [g.e2e_ns for g in timing.generations]
            log(f"batch {bs}, prompt {p}, {new_tokens} new tokens: TTFT {s['ttft_p50_ms']:.2f} ms, TPOT "
                + (f"{s['tpot_p50_ms']:.3f} ms" if s["tpot_p50_ms"] is not None else "-")
                + f", {s['generations_n']} generations (the first one: {first.e2e_ns / 1e6:.1f} ms)"
                + (f"; paired with the baseline: speedup {fields['paired_speedup']:.3f} "
                   f"[{fields['speedup_ci_low']:.3f}, {fields['speedup_ci_high']:.3f}]" if fields.get("paired") else ""))
    return per_point, samples
