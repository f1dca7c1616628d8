"""Causal language models through the real runner (issue 16): tiny-lm trained on the English that
ships with Python, and a transformers model saved to a local directory with its own tokenizer,
measured for perplexity, next-token drift from the baseline and generation speed per batch size and
prompt length."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

TINY = {"layers": 1, "hidden": 32, "heads": 2, "intermediate": 64, "context": 96, "seq_len": 48, "epochs": 1,
        "batch_size": 32, "lr": 0.01}
DOCS = {"sample_chars": 48, "max_train_chars": 40_000}
MEASURE = {"batch_sizes": [1, 2], "warmup": {"min_iters": 1, "min_seconds": 0.0},
           "repeat": {"min_iters": 5, "min_seconds": 0.0},
           "generate": {"prompt_tokens": [8, 24], "new_tokens": 6},
           "perplexity": {"max_tokens": 1024, "window": 64, "stride": 32}}


@pytest.fixture(scope="module")
def local_llama(tmp_path_factory) -> Path:
    """A 1-layer Llama saved with save_pretrained beside a word-level tokenizer built offline."""
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from harness.builtin.text_corpus import python_docs_text

    words = sorted({w for t in python_docs_text().values() for w in t.split()})[:2000]
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", *words])}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    folder = tmp_path_factory.mktemp("llama") / "tiny-llama"
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]").save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=128, pad_token_id=0, bos_token_id=None,
                         eos_token_id=None)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def test_a_language_model_suite_records_perplexity_drift_and_generation_per_prompt_length(optbench_run, local_llama):
    suite = {
        "name": "llm",
        "models": [{"name": "tiny-lm", "params": TINY},
                   {"name": "transformers", "id": "local-llama", "batch_sizes": [2],
                    "params": {"path": str(local_llama), "task": "causal-lm", "seq_len": 64}},
                   # a context too short for the longest prompt and its new tokens: the cell fails, clearly
                   {"name": "tiny-lm", "id": "tiny-short", "batch_sizes": [1],
                    "params": {**TINY, "context": 24, "seq_len": 16}}],
        "datasets": [{"name": "python-docs", "params": DOCS}],
        "methods": [{"name": "quantize.dynamic_int8", "models": ["tiny-lm", "local-llama"]},
                    {"name": "prune.mlp_channels", "params": {"ratio": 0.5}, "models": ["tiny-lm"]},
                    {"name": "quantize.hqq", "params": {"nbits": 4, "group_size": 32}, "models": ["tiny-lm"]}],
        "backends": [{"name": "cpu", "params": {"threads": 1}}],
        "measure": MEASURE,
    }
    run = optbench_run(suite)
    short = [r for r in run.records if r["model"] == "tiny-short"]
    assert [r["status"] for r in short] == ["failed", "failed"]  # the baseline at both prompt lengths
    assert "a prompt of 24 tokens and 6 new ones need 30 positions; the model takes 24" in short[0]["error"]
    recs = [r for r in run.records if r["model"] != "tiny-short"]
    # tiny-lm: 4 methods x 2 batch sizes x 2 prompt lengths; local-llama: 2 methods x batch 2 x 2 prompt lengths
    assert len(recs) == 16 + 4
    assert {(r["batch_size"], r["prompt_tokens"]) for r in recs} == {(1, 8), (1, 24), (2, 8), (2, 24)}
    assert all(r["status"] == "ok" and r["new_tokens"] == 6 for r in recs), [r["error"] for r in recs]
    for r in recs:
        assert 0 < r["ttft_p50_ms"] <= r["ttft_p90_ms"] and 0 < r["tpot_p50_ms"] <= r["tpot_p90_ms"]
        # a record's latency is one generation end to end: the prefill and five steps after it
        assert r["latency_p50_ms"] == pytest.approx(r["e2e_p50_ms"], rel=0.35)
        # decode tokens/s is batch x 5 tokens over the median decode time, and TPOT its fifth: exact
        assert r["decode_tokens_per_s"] == pytest.approx(r["batch_size"] / r["tpot_p50_ms"] * 1e3, rel=1e-9)
        assert r["ttft_p50_ms"] < r["e2e_p50_ms"]
        assert r["kv_cache_mb"] > 0 and r["perplexity_window"] == 64 and r["perplexity_stride"] == 32
        assert r["perplexity_tokens"] == 1023
        assert r["first_generation_ms"] > 0
    tiny = {(r["method"], r["batch_size"], r["prompt_tokens"]): r for r in recs if r["model"] == "tiny-lm"}
    base = tiny[("baseline", 1, 8)]
    assert base["kl_div"] == 0.0 and base["agreement"] == 1.0 and base["ppl_ratio"] == 1.0
    # trained on the training topics: far better than the 256 of a uniform guess over bytes
    assert base["perplexity"] < 40, base["perplexity"]
    int8 = tiny[("quantize.dynamic_int8", 1, 8)]
    assert int8["paired"] is True and int8["speedup_ci_low"] <= int8["speedup"] <= int8["speedup_ci_high"]
    assert 0 < int8["kl_div"] < 0.05 and 0.9 < int8["agreement"] <= 1.0
    assert int8["baseline_perplexity"] == pytest.approx(base["perplexity"], rel=1e-6)
    pruned = tiny[("prune.mlp_channels", 2, 24)]
    assert pruned["params_count"] < base["params_count"] and pruned["kl_div"] > int8["kl_div"]
    # HQQ 4-bit: every nn.Linear but the tied head packed, the model's parameters counted as before
    hqq = tiny[("quantize.hqq", 1, 8)]
    assert hqq["status"] == "ok" and hqq["params_count"] == base["params_count"] and 0 < hqq["kl_div"] < 0.5
    assert "7 nn.Linear layer(s) -> HQQ 4-bit, group 32" in run.log(hqq) and "(model.lm_head)" in run.log(hqq)
    # KV cache: 1 layer x 2 (keys, values) x 2 heads x 16 x (24 + 6) positions x 2 sequences x 4 bytes
    assert pruned["kv_cache_mb"] * 2**20 == pytest.approx(1 * 2 * 2 * 16 * 30 * 2 * 4)

    local = [r for r in recs if r["model"] == "local-llama"]
    assert all(math.isfinite(r["perplexity"]) for r in local)  # its own tokenizer read the text
    assert {r["kl_div"] for r in local if r["method"] == "baseline"} == {0.0}
    assert "trained in" in run.log(base) and "pretrained weights, as built" in run.log(local[0])

    # the report shows the generation columns and the three language-model figures per model
    html = (run.run_dir / "report.html").read_text()
    assert "Language models: generation and drift" in html and "<th" in html and "TTFT ms" in html
    assert html.count('data-figure="plot-') >= 6 and "decode tokens/s" in html and "KL from the baseline" in html

    # a published leaderboard keeps one row per prompt length, with the language-model figures
    import json
    import re

    from harness.site.publish import publish

    out = run.run_dir.parents[2] / "site"
    publish(run.run_dir.parents[1], out)
    page = (out / "suites" / "llm.html").read_text()
    data = json.loads(re.search(r'id="board-data">(.*?)</script>', page, re.S).group(1))
    batches = set(data["configs"]["batch"])
    assert {"1 · prompt 8", "1 · prompt 24", "2 · prompt 8", "2 · prompt 24"} <= batches
    ppl = [v for v in data["rows"]["ppl"] if v is not None]
    tps = [v for v in data["rows"]["tps"] if v is not None]
    assert ppl and tps and min(ppl) > 1


def test_without_generate_a_language_model_times_one_forward_pass(optbench_run):
    suite = {
        "name": "llm-forward",
        "models": [{"name": "tiny-lm", "params": TINY}],
        "datasets": [{"name": "python-docs", "params": DOCS}],
        "methods": [{"name": "quantize.half", "params": {"dtype": "bfloat16"}}],
        "backends": [{"name": "cpu", "params": {"threads": 1}}],
        "measure": {**MEASURE, "generate": None, "batch_sizes": [2]},
    }
    run = optbench_run(suite)
    assert run.exit_code == 0 and len(run.records) == 2
    for r in run.records:
        assert r["status"] == "ok" and r["prompt_tokens"] is None and r["ttft_p50_ms"] is None
        assert r["perplexity"] < 40
    half = next(r for r in run.records if r["method"] != "baseline")
    assert 0 < half["kl_div"] < 0.05


def test_torch_compile_compiles_the_decode_step_of_generate(optbench_run):
    """compile.torch on a causal LM: the forward pass compiled up front (compile_s), and transformers'
    generate with a static cache compiling its decode step on the first generation at the point,
    which the record keeps apart (first_generation_ms) from the timed, compiled generations."""
    suite = {
        "name": "llm-compile",
        "models": [{"name": "tiny-lm", "params": TINY}],
        "datasets": [{"name": "python-docs", "params": DOCS}],
        "methods": ["compile.torch"],
        "backends": [{"name": "cpu", "params": {"threads": 1}}],
        "measure": {**MEASURE, "batch_sizes": [1], "generate": {"prompt_tokens": [8], "new_tokens": 6}},
    }
    run = optbench_run(suite)
    base, compiled = (next(r for r in run.records if r["method"] == m) for m in ("baseline", "compile.torch"))
    assert compiled["status"] == "ok", compiled["error"]
    assert compiled["compile_s"] > 0 and compiled["kl_div"] < 1e-6 and compiled["agreement"] == 1.0
    # compiling the decode step takes seconds; a warm generation of 6 tokens takes milliseconds
    assert compiled["first_generation_ms"] > 20 * compiled["e2e_p50_ms"]
    assert base["first_generation_ms"] < 20 * base["e2e_p50_ms"]
    log = run.log(compiled)
    assert "generate compiles its decode step (static key/value cache" in log


def test_a_compiled_wrapper_without_a_compile_config_is_not_timed_as_compiled():
    """Generation calls the transformers model inside torch.compile's wrapper; without the compile
    config compile.torch sets, that would time the eager model under a compiled name: a Skip says so."""
    from optbench_models.causal_lm import TinyLMParams, build_tiny_lm, hf_model

    from harness import Skip

    module = build_tiny_lm(TinyLMParams(**TINY), None)
    assert hf_model(module) is module.model
    with pytest.raises(Skip, match="has no compile_config: generate would run the uncompiled model"):
        hf_model(torch.compile(module))
    module.model.generation_config.compile_config = object()  # what compile.torch sets (a CompileConfig)
    assert hf_model(torch.compile(module)) is module.model


def test_a_hub_causal_lm_loads_from_a_prepopulated_cache_offline_and_generates(local_llama, tmp_path, optbench_runs_suites):
    """``model_id`` with ``task: causal-lm``, as a user with a network runs it once the model is in the
    Hugging Face cache: here the cache is filled by hand (the snapshot layout huggingface_hub writes),
    the hub is offline, and ``optbench run`` in a fresh process reads text, scores and generates."""
    import json
    import os
    import shutil
    import subprocess
    import sys

    import yaml

    commit = "fedcba9876543210fedcba9876543210fedcba98"
    repo = tmp_path / "hf" / "hub" / "models--optbench--tiny-llama"
    shutil.copytree(local_llama, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    suite = {"name": "hub-lm", "datasets": [{"name": "python-docs", "params": DOCS}],
             "models": [{"name": "transformers", "params": {"model_id": "optbench/tiny-llama", "task": "causal-lm",
                                                            "seq_len": 64}}],
             "backends": [{"name": "cpu", "params": {"threads": 1}}],
             "measure": {**MEASURE, "batch_sizes": [1], "generate": {"prompt_tokens": [8], "new_tokens": 6}}}
    path = tmp_path / "hub-lm.yaml"
    path.write_text(yaml.safe_dump(suite))
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1",
           "OPTBENCH_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "harness", "run", str(path), "--results", str(tmp_path / "results"),
                           "-q"], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    (records,) = (tmp_path / "results" / "hub-lm").glob("*/records.jsonl")
    (rec,) = [json.loads(line) for line in records.read_text().splitlines()]
    assert rec["status"] == "ok" and rec["model"] == "transformers", rec["error"]
    assert math.isfinite(rec["perplexity"]) and rec["kl_div"] == 0.0 and rec["perplexity_tokens"] > 0
    assert rec["prompt_tokens"] == 8 and rec["new_tokens"] == 6 and 0 < rec["ttft_p50_ms"] < rec["e2e_p50_ms"]
