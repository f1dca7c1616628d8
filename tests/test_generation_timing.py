"""Generation timing (issue 16): the prefill/decode split on a model whose steps take a known time,
the same tokens as transformers' own greedy generate, and the throughputs from the medians."""
from __future__ import annotations

import time

import pytest
import torch

from harness.measure.contention import Screen
from harness.measure.generation import (
    CausalLMDecoder,
    GenerateDecoder,
    Generation,
    GenerationTiming,
    StepDecoder,
    generate_timed,
    time_generation,
    time_generation_paired,
)
from harness.measure.timing import Budget


class Sleepy(StepDecoder):
    """A decoder whose prefill takes 20 ms and each decode step 5 ms (``step_s``); token k+1 follows token k."""

    def __init__(self, prefill_s: float = 0.020, step_s: float = 0.005) -> None:
        self.prefill_s, self.step_s = prefill_s, step_s

    def prefill(self, input_ids, attention_mask):
        time.sleep(self.prefill_s)
        return input_ids[:, -1] + 1, None

    def decode(self, tokens, state):
        time.sleep(self.step_s)
        return tokens + 1, state


def test_the_prefill_and_every_decode_step_are_timed_apart():
    ids = torch.zeros(2, 7, dtype=torch.long)
    timing = time_generation(Sleepy(), ids, torch.ones_like(ids), new_tokens=9, warmup=Budget(1), repeat=Budget(5))
    s = timing.summary()
    assert s["generations_n"] == 5 and s["prompt_tokens"] == 7 and s["new_tokens"] == 9
    # sleeps last at least as long as asked; the medians of 5 stay well within 2x of it
    assert 20 <= s["ttft_p50_ms"] < 40 and 5 <= s["tpot_p50_ms"] < 10, s
    assert s["e2e_p50_ms"] == pytest.approx(s["ttft_p50_ms"] + 8 * s["tpot_p50_ms"], rel=0.2)
    g = timing.generations[0]
    assert g.tokens.tolist() == [list(range(1, 10))] * 2  # exactly new_tokens, in order
    assert g.e2e_ns == g.ttft_ns + g.decode_ns and g.tpot_ns == pytest.approx(g.decode_ns / 8)


def test_throughputs_are_tokens_over_the_median_times():
    gens = [Generation(ttft_ns=ttft, e2e_ns=ttft + dec, new_tokens=11, tokens=None)
            for ttft, dec in ((10_000_000, 50_000_000), (12_000_000, 40_000_000), (14_000_000, 60_000_000))]
    s = GenerationTiming(batch_size=4, prompt_tokens=128, new_tokens=11, generations=gens).summary()
    assert s["ttft_p50_ms"] == pytest.approx(12.0) and s["tpot_p50_ms"] == pytest.approx(5.0)
    assert s["prefill_tokens_per_s"] == pytest.approx(4 * 128 / 0.012)
    assert s["decode_tokens_per_s"] == pytest.approx(4 * 10 / 0.050)  # the median decode time, 50 ms
    one = GenerationTiming(batch_size=1, prompt_tokens=8, new_tokens=1,
                           generations=[Generation(5_000_000, 5_000_000, 1, None)]).summary()
    assert one["tpot_p50_ms"] is None and one["decode_tokens_per_s"] is None and one["ttft_p50_ms"] == 5.0


def test_a_precision_target_stops_the_generations_or_says_it_was_missed():
    ids = torch.zeros(1, 3, dtype=torch.long)
    steady = time_generation(Sleepy(), ids, torch.ones_like(ids), 3, Budget(0),
                             Budget(3, 0.0, target_rel_ci=0.5, max_seconds=2.0))
    assert steady.precision_reached is True and len(steady.generations) >= 3
    missed = time_generation(Sleepy(), ids, torch.ones_like(ids), 3, Budget(0),
                             Budget(3, 0.0, target_rel_ci=1e-9, max_seconds=0.3))
    assert missed.precision_reached is False and len(missed.generations) >= 3


def test_a_causal_lm_makes_the_tokens_transformers_greedy_generate_makes():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=97, n_positions=64, n_embd=32, n_layer=2, n_head=2)
    model = transformers.GPT2LMHeadModel(config).eval()
    ids = torch.randint(0, 97, (2, 6))
    mask = torch.ones_like(ids)
    g = generate_timed(CausalLMDecoder(model), ids, mask, new_tokens=12)
    with torch.inference_mode():
        want = model.generate(ids, attention_mask=mask, max_new_tokens=12, min_new_tokens=12, do_sample=False,
                              pad_token_id=0)
    assert g.tokens.shape == (2, 12) and torch.equal(g.tokens, want[:, 6:])
    assert 0 < g.ttft_ns < g.e2e_ns


def test_transformers_generate_is_timed_through_its_streamer_with_the_same_tokens_as_the_harness_loop():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=2, max_position_embeddings=64, pad_token_id=0,
                                      bos_token_id=None, eos_token_id=None)
    model = transformers.LlamaForCausalLM(config).eval()
    ids = torch.randint(1, 97, (3, 5))
    mask = torch.ones_like(ids)
    g = generate_timed(GenerateDecoder(model, pad_token_id=0), ids, mask, new_tokens=10)
    mine = generate_timed(CausalLMDecoder(model), ids, mask, new_tokens=10)
    assert g.tokens.shape == (3, 10) and torch.equal(g.tokens, mine.tokens)
    assert 0 < g.ttft_ns < g.e2e_ns  # the streamer saw the first token before the last


def test_a_method_twice_as_slow_per_token_reads_half_the_decode_speed_when_paired():
    ids = torch.zeros(1, 4, dtype=torch.long)
    screen = Screen(retries=0)
    paired = time_generation_paired(Sleepy(0.004, 0.008), Sleepy(0.004, 0.004), ids, torch.ones_like(ids), 6,
                                    Budget(1), Budget(6, 0.0), screen=screen)
    f = paired.fields()
    assert f["decode_speedup"] == pytest.approx(0.5, rel=0.25), f
    # e2e: 4 + 5 x 8 = 44 ms against 4 + 5 x 4 = 24 ms
    assert f["speedup_ci_low"] <= f["paired_speedup"] <= f["speedup_ci_high"]
    assert f["paired_speedup"] == pytest.approx(24 / 44, rel=0.25)
    assert len(paired.method.generations) == len(paired.baseline.generations) >= 6
    assert f["baseline_tpot_p50_ms"] == pytest.approx(4.0, rel=0.5)
