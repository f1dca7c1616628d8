"""An encoder-decoder that generates text, for real: a tiny BART trained here to translate English number words
into French, saved with its own tokenizer, read from a CSV of sentence pairs through the ``hf`` dataset's
``target_column``, each call one greedy generation, scored by BLEU and WER of its decoded text."""
from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("datasets")

from optbench_models.hf_dataset import HFDatasetParams, load_hf  # noqa: E402

ENGLISH = "one two three four five six seven eight nine ten".split()
FRENCH = "un deux trois quatre cinq six sept huit neuf dix".split()
SPECIAL = ["[PAD]", "[BOS]", "[EOS]", "[UNK]"]
MEASURE = {"batch_sizes": [1, 8], "warmup": {"min_iters": 2, "min_seconds": 0.0},
           "repeat": {"min_iters": 5, "min_seconds": 0.0}}


def tokenizer():
    """A word-level tokenizer over both languages, built with the tokenizers library (no download); a
    sequence ends with [EOS]."""
    from tokenizers import Tokenizer, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(SPECIAL + ENGLISH + [w for w in FRENCH if w not in ENGLISH])}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="$A [EOS]", special_tokens=[("[EOS]", vocab["[EOS]"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", bos_token="[BOS]",
                                   eos_token="[EOS]")


def pairs(rng: random.Random, n: int) -> list[tuple[str, str]]:
    out = []
    for _ in range(n):
        words = [rng.randrange(10) for _ in range(rng.randint(2, 6))]
        out.append((" ".join(ENGLISH[i] for i in words), " ".join(FRENCH[i] for i in words)))
    return out


@pytest.fixture(scope="module")
def numbers(tmp_path_factory) -> Path:
    """train.csv / test.csv of (english, french) pairs, and tiny-bart/: a 2+2-layer BART trained on them (about
    5 s), saved with its tokenizer."""
    from transformers import BartConfig, BartForConditionalGeneration

    root = tmp_path_factory.mktemp("numbers")
    rng = random.Random(0)
    data = {"train": pairs(rng, 400), "test": pairs(rng, 60)}
    for split, rows in data.items():
        with open(root / f"{split}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["english", "french"])
            w.writerows(rows)
    tok = tokenizer()
    torch.manual_seed(0)
    model = BartForConditionalGeneration(BartConfig(
        vocab_size=len(tok), d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128, max_position_embeddings=32,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1, forced_eos_token_id=None))
    src = tok([s for s, _ in data["train"]], padding=True, return_tensors="pt")
    target = tok([t for _, t in data["train"]], padding=True, return_tensors="pt")["input_ids"]
    labels = target.masked_fill(target == tok.pad_token_id, -100)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(30):
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(len(labels)))
        for i in range(0, len(labels), 32):
            b = order[i:i + 32]
            loss = model(input_ids=src["input_ids"][b], attention_mask=src["attention_mask"][b], labels=labels[b]).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    model.save_pretrained(root / "tiny-bart")
    tok.save_pretrained(root / "tiny-bart")
    return root


def _dataset(root: Path) -> dict:
    return {"name": "hf", "id": "en-fr", "params": {
        "path": "csv", "data_files": {"train": str(root / "train.csv"), "test": str(root / "test.csv")},
        "text_column": "english", "target_column": "french"}}


def test_a_text_target_column_makes_a_seq2seq_dataset(numbers):
    ds = _dataset(numbers)["params"]
    data = load_hf(HFDatasetParams(**ds), 0)
    assert data.task == "seq2seq" and data.train.has_labels and data.num_classes == 0
    raw, target = data.test.sample(0)
    assert isinstance(raw, str) and isinstance(target, str) and len(raw.split()) == len(target.split())
    batch = data.with_preprocess(lambda raw: raw).test.batch([0, 1])  # (a model's preprocessing reads the text)
    assert batch.labels == [data.test.sample(0)[1], data.test.sample(1)[1]]  # the targets stay text
    with pytest.raises(ValueError, match="not both"):
        HFDatasetParams(**ds, label_column="french")


def test_a_seq2seq_model_is_timed_per_generation_and_scored_by_bleu_and_wer(numbers, optbench_run):
    suite = {
        "name": "numbers",
        "datasets": [_dataset(numbers)],
        "models": [{"name": "transformers", "id": "tiny-bart", "params": {
            "path": str(numbers / "tiny-bart"), "task": "seq2seq", "seq_len": 12, "max_new_tokens": 10}}],
        "methods": [{"name": "quantize.dynamic_int8"}, {"name": "prune.magnitude", "params": {"sparsity": 0.9}}],
        "backends": [{"name": "cpu", "params": {"threads": 1}}],
        "accuracy_gate": {"relative": 0.05},
        "measure": MEASURE,
    }
    run = optbench_run(suite)
    by = {(r["method"], r["batch_size"]): r for r in run.records}
    base, int8, pruned = by[("baseline", 8)], by[("quantize.dynamic_int8", 8)], by[("prune.magnitude", 8)]
    assert base["status"] == "ok" and base["task"] == "seq2seq" and base["quality_metric"] == "bleu"
    assert base["metrics"]["bleu"] > 0.9 and base["metrics"]["wer"] < 0.05, base  # it learnt the words
    assert "wer" in base["lower_is_better"] and base["agreement"] == 1.0 and base["fidelity_n"] == 60
    assert base["latency_p50_ms"] > 0 and by[("baseline", 1)]["latency_p50_ms"] > 0  # one generation per call
    assert int8["status"] == "ok" and int8["metrics"]["bleu"] > 0.9 and int8["agreement"] > 0.9
    assert pruned["metrics"]["bleu"] < 0.5 and pruned["passes_gate"] is False
    assert pruned["agreement"] < 0.5  # few generations equal the baseline's any more
    assert "bleu 1" in run.log(base) or "bleu 0.9" in run.log(base)
