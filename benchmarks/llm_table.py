"""Print a run of ``suites/llm.yaml`` (or any language-model run) as two markdown tables: quality per
method (perplexity, drift, size), and generation speed per method, batch size and prompt length.

    python benchmarks/llm_table.py results/llm/<run-id>

Figures are the records' own (``run_records``: the latest record per point, relative figures filled).
"""
from __future__ import annotations

import sys
from pathlib import Path

from harness.results.labels import fmt_params
from harness.results.load import run_records


def _f(v: object, spec: str) -> str:
    return "—" if not isinstance(v, (int, float)) or isinstance(v, bool) else format(v, spec)


def main(run_dir: Path) -> None:
    records = [r for r in run_records(run_dir) if r.get("perplexity_tokens") is not None or r.get("prompt_tokens")]
    methods = list(dict.fromkeys(f"{r['method']} {fmt_params(r.get('params'))}".strip() for r in records))

    def label(r: dict) -> str:
        return f"{r['method']} {fmt_params(r.get('params'))}".strip()

    print("| method | status | perplexity | ppl ratio | KL (nats/token) | top-1 agreement | size ratio | params |")
    print("|---|---|---|---|---|---|---|---|")
    for m in methods:
        r = next(r for r in records if label(r) == m)
        print(f"| {m} | {r['status']}{': ' + str(r.get('error'))[:80] if r['status'] != 'ok' else ''} | "
              f"{_f(r.get('perplexity'), '.3f')} | {_f(r.get('ppl_ratio'), '.4f')} | {_f(r.get('kl_div'), '.3g')} | "
              f"{_f(r.get('agreement'), '.4f')} | {_f(r.get('size_ratio'), '.2f')} | {_f(r.get('params_count'), ',')} |")
    print()
    print("| method | batch | prompt | TTFT ms | TPOT ms | decode tok/s | e2e ms | speedup [95% CI] | decode speedup | "
          "KV MB | flags |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in sorted((r for r in records if r.get("status") == "ok" and r.get("prompt_tokens") is not None),
                    key=lambda r: (r["batch_size"], r["prompt_tokens"], methods.index(label(r)))):
        ci = (f" [{r['speedup_ci_low']:.2f}, {r['speedup_ci_high']:.2f}]"
              if r.get("speedup_ci_low") is not None and r.get("method") != "baseline" else "")
        flags = ", ".join(f for f, on in (("contended", r.get("contended")), ("imprecise", r.get("precision_reached")
                                                                               is False), ("noisy", r.get("noisy")))
                          if on)
        print(f"| {label(r)} | {r['batch_size']} | {r['prompt_tokens']} | {_f(r.get('ttft_p50_ms'), '.2f')} | "
              f"{_f(r.get('tpot_p50_ms'), '.3f')} | {_f(r.get('decode_tokens_per_s'), ',.0f')} | "
              f"{_f(r.get('e2e_p50_ms'), '.1f')} | {_f(r.get('speedup'), '.2f')}{ci} | "
              f"{_f(r.get('decode_speedup'), '.2f')} | {_f(r.get('kv_cache_mb'), '.2f')} | {flags} |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python benchmarks/llm_table.py RUN_DIR")
    main(Path(sys.argv[1]))
