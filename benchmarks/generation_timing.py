"""The harness's generation timing against a hand-written one on the same model, in one process.

The harness (``harness.measure.generation``) times a greedy loop it drives itself:
TTFT from the prefill, decode tokens/s from the steps after it. The hand-written reference is how
optimum-benchmark measures with transformers' own ``generate``: TTFT = the median time of
``generate(max_new_tokens=1)``, decode tokens/s = batch x (N - 1) / (median time of
``generate(min_new_tokens=N, max_new_tokens=N)`` - that TTFT). The three are interleaved, 21
times, so a drift of the machine moves them alike. Issue 16 asks for the two to agree within 5%.

    python benchmarks/generation_timing.py

A GPT-2-shaped model with random weights (no download): 6 layers, 384 wide, 2 threads. Run it
alone: a figure taken while anything else loads the machine means nothing.
"""
from __future__ import annotations

import statistics
import time

import torch
import transformers

from harness.measure.generation import CausalLMDecoder, generate_timed, time_generation
from harness.measure.timing import Budget

REPS = 21


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=8000, n_positions=512, n_embd=384, n_layer=6, n_head=6)
    model = transformers.GPT2LMHeadModel(config).eval()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.get_num_threads()} threads")
    print("| batch | prompt | new | harness TTFT ms | reference TTFT ms | diff | harness decode tok/s | "
          "reference decode tok/s | diff |")
    print("|---|---|---|---|---|---|---|---|---|")
    for batch, prompt, new in ((1, 128, 64), (4, 128, 64)):
        ids = torch.randint(0, 8000, (batch, prompt))
        mask = torch.ones_like(ids)

        def gen(n: int, ids=ids, mask=mask) -> None:
            with torch.inference_mode():
                model.generate(ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                               pad_token_id=0)

        decoder = CausalLMDecoder(model)
        time_generation(decoder, ids, mask, new, Budget(2), Budget(1))  # warm both paths
        gen(new)
        ttft_h, decode_h, ttft_r, full_r = [], [], [], []
        for _ in range(REPS):  # interleaved, so a drift of the machine moves both alike
            g = generate_timed(decoder, ids, mask, new)
            ttft_h.append(g.ttft_ns / 1e9)
            decode_h.append(g.decode_ns / 1e9)
            ttft_r.append(timed(lambda: gen(1)))
            full_r.append(timed(lambda n=new: gen(n)))
        harness = {"ttft_p50_ms": statistics.median(ttft_h) * 1e3,
                   "decode_tokens_per_s": batch * (new - 1) / statistics.median(decode_h)}
        ttft = statistics.median(ttft_r)
        ref_decode = batch * (new - 1) / (statistics.median(full_r) - ttft)
        print(f"| {batch} | {prompt} | {new} | {harness['ttft_p50_ms']:.2f} | {ttft * 1e3:.2f} | "
              f"{harness['ttft_p50_ms'] / (ttft * 1e3) - 1:+.1%} | {harness['decode_tokens_per_s']:.1f} | "
              f"{ref_decode:.1f} | {harness['decode_tokens_per_s'] / ref_decode - 1:+.1%} |")


if __name__ == "__main__":
    main()
