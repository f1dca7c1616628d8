"""Text for real: a CSV of labelled sentences through the ``hf`` dataset, a transformers model from a
local directory and from a pre-populated hub cache (offline), its own tokenizer with attention masks,
fidelity of embeddings, and the errors when a download is missing."""
from __future__ import annotations

import csv
import random
import re
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("datasets")

from optbench_models.hf_dataset import HFDatasetParams, load_hf  # noqa: E402
from optbench_models.text import TransformersParams, preprocess_transformers  # noqa: E402

POSITIVE = "good great fine lovely superb nice excellent happy".split()
NEGATIVE = "bad awful poor terrible sad horrible ugly boring".split()
FILLER = "the movie was a and it plot acting really quite very".split()
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
COMMIT = "0123456789abcdef0123456789abcdef01234567"
MEASURE = {"batch_sizes": [4], "warmup": {"min_iters": 2, "min_seconds": 0.0},
           "repeat": {"min_iters": 5, "min_seconds": 0.0}}


def tokenizer():
    """A WordPiece tokenizer over the words above, built with the tokenizers library (no download)."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(SPECIAL + POSITIVE + NEGATIVE + FILLER)}
    tok = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")


def sentences(rng: random.Random, n: int) -> list[tuple[str, str]]:
    rows = []
    for _ in range(n):
        label = rng.choice(["positive", "negative"])
        word = rng.choice(POSITIVE if label == "positive" else NEGATIVE)
        words = [rng.choice(FILLER) for _ in range(rng.randint(1, 5))] + [word]
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


@pytest.fixture(scope="module")
def text(tmp_path_factory) -> Path:
    """train.csv / test.csv of sentences, and tiny-bert/: a 2-layer BERT fine-tuned on them, with its tokenizer."""
    from transformers import BertConfig, BertForSequenceClassification

    root = tmp_path_factory.mktemp("text")
    rng = random.Random(0)
    data = {"train": sentences(rng, 240), "test": sentences(rng, 80)}
    for split, rows in data.items():
        with open(root / f"{split}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["sentence", "label"])
            w.writerows(rows)
    tok = tokenizer()
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, num_labels=2))
    enc = tok([s for s, _ in data["train"]], padding="max_length", truncation=True, max_length=12, return_tensors="pt")
    labels = torch.tensor([int(lab == "positive") for _, lab in data["train"]])  # sorted names: negative 0, positive 1
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(6):
        for i in range(0, len(labels), 32):
            out = model(input_ids=enc["input_ids"][i:i + 32], attention_mask=enc["attention_mask"][i:i + 32],
                        labels=labels[i:i + 32])
            opt.zero_grad()
            out.loss.backward()
            opt.step()
    model.eval()
    model.save_pretrained(root / "tiny-bert")
    tok.save_pretrained(root / "tiny-bert")
    return root


def test_the_csv_reads_row_by_row_with_named_classes_and_a_seeded_hold_out(text):
    data = load_hf(HFDatasetParams(path="csv", data_files={"train": str(text / "train.csv"),
                                                           "test": str(text / "test.csv")}), seed=0)
    assert (len(data.train), len(data.test), data.num_classes) == (240, 80, 2)
    raw, label = data.test.sample(0)
    assert isinstance(raw, str) and label in (0, 1)
    assert data.test.labels.shape == (80,) and set(data.test.labels.tolist()) == {0, 1}
    with pytest.raises(ValueError, match="need a model that turns them into inputs"):
        data.test.batch([0, 1])  # text without a tokenizer
    held = load_hf(HFDatasetParams(path="csv", data_files=str(text / "train.csv"), test_fraction=0.25,
                                   train_limit=50), seed=1)
    assert (len(held.train), len(held.test)) == (50, 60)
    with pytest.raises(ValueError, match="no such data file"):
        HFDatasetParams(path="csv", data_files={"train": str(text / "nope.csv")})
    with pytest.raises(ValueError, match="give `data_files`"):
        HFDatasetParams(path="csv")


def test_the_tokenizer_pads_to_seq_len_and_the_attention_mask_says_where(text):
    data = load_hf(HFDatasetParams(path="csv", data_files={"train": str(text / "train.csv"),
                                                           "test": str(text / "test.csv")}), seed=0)
    params = TransformersParams(path=str(text / "tiny-bert"), seq_len=12)
    view = data.with_preprocess(preprocess_transformers(params, data))
    inputs = view.test.batch([0, 1, 2]).inputs
    assert set(inputs) >= {"input_ids", "attention_mask"} and inputs["input_ids"].shape == (3, 12)
    real = [len(s.split()) + 2 for s in (data.test.sample(i)[0] for i in range(3))]  # [CLS] words [SEP]
    assert inputs["attention_mask"].sum(dim=1).tolist() == real
    assert view.input_shape == (12,)
    ids = view.test.batch([0]).inputs["input_ids"][0].tolist()
    assert 1 not in ids[: real[0]], "every word of these sentences is in the vocabulary"


def test_a_text_suite_gives_accuracy_for_the_classifier_and_cosine_for_the_embedding(text, optbench_run):
    suite = {
        "name": "text",
        "datasets": [{"name": "hf", "id": "sentences", "params": {
            "path": "csv", "data_files": {"train": str(text / "train.csv"), "test": str(text / "test.csv")}}}],
        "models": [{"name": "transformers", "id": "tiny-bert", "params": {"path": str(text / "tiny-bert"),
                                                                           "seq_len": 12}},
                   {"name": "transformers", "id": "tiny-bert-emb",
                    "params": {"path": str(text / "tiny-bert"), "seq_len": 12, "task": "base", "pooling": "mean"}}],
        "methods": [{"name": "quantize.dynamic_int8"}, {"name": "prune.structured"}],
        "backends": [{"name": "cpu", "params": {"threads": 1}}],
        "measure": MEASURE,
    }
    run = optbench_run(suite)
    by = {(r["model"], r["method"]): r for r in run.records}
    clf, emb = by[("tiny-bert", "baseline")], by[("tiny-bert-emb", "baseline")]
    assert clf["status"] == "ok" and clf["accuracy"] > 0.85, clf  # pretrained weights, evaluated as built
    assert clf["fidelity_n"] == 80 and clf["agreement"] == 1.0
    assert emb["status"] == "ok" and emb["accuracy"] is None  # an embedding is not class scores
    assert emb["agreement"] is None and emb["cosine"] == 1.0
    for model in ("tiny-bert", "tiny-bert-emb"):
        int8 = by[(model, "quantize.dynamic_int8")]
        assert int8["status"] == "ok" and 0.9 < int8["cosine"] <= 1.0, int8
    assert by[("tiny-bert", "quantize.dynamic_int8")]["accuracy"] > 0.8
    pruned = by[("tiny-bert-emb", "prune.structured")]
    assert pruned["status"] == "skipped" and "not 2 class scores" in pruned["error"]
    assert "pretrained weights, as built" in run.log(clf)


def run_cli(suite: dict, tmp_path: Path, env: dict[str, str]) -> list[dict]:
    """``optbench run`` in a fresh process (its cells see ``env`` from their start), records read back."""
    import json
    import os
    import subprocess
    import sys

    import yaml

    path = tmp_path / f"{suite['name']}.yaml"
    path.write_text(yaml.safe_dump(suite))
    done = subprocess.run([sys.executable, "-m", "harness", "run", str(path), "--results", str(tmp_path / "results"),
                           "-q"], capture_output=True, text=True, timeout=600, env={**os.environ, **env})
    assert done.returncode in (0, 1), done.stderr
    (records,) = (tmp_path / "results" / suite["name"]).glob("*/records.jsonl")
    return [json.loads(line) for line in records.read_text().splitlines()]


def test_a_hub_id_loads_from_a_prepopulated_cache_offline_and_a_missing_one_says_how_to_fetch_it(text, tmp_path, optbench_runs_suites):
    hub = tmp_path / "hf" / "hub"
    snapshot = hub / "models--optbench--tiny-bert" / "snapshots" / COMMIT
    shutil.copytree(text / "tiny-bert", snapshot)
    (hub / "models--optbench--tiny-bert" / "refs").mkdir()
    (hub / "models--optbench--tiny-bert" / "refs" / "main").write_text(COMMIT)
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "OPTBENCH_CACHE_DIR": str(tmp_path / "cache")}
    suite = {"name": "hub", "datasets": [{"name": "hf", "params": {
        "path": "csv", "data_files": {"train": str(text / "train.csv"), "test": str(text / "test.csv")}}}],
        "backends": [{"name": "cpu", "params": {"threads": 1}}], "measure": MEASURE,
        "models": [{"name": "transformers", "id": "cached", "params": {"model_id": "optbench/tiny-bert", "seq_len": 12}},
                   {"name": "transformers", "id": "missing", "params": {"model_id": "optbench/missing", "seq_len": 12}}]}
    records = {r["model"]: r for r in run_cli(suite, tmp_path, env)}
    assert records["cached"]["status"] == "ok" and records["cached"]["accuracy"] > 0.85, records["cached"]["error"]
    missing = records["missing"]
    assert missing["status"] == "failed"
    assert re.match(r"Unavailable: model 'optbench/missing': the (tokenizer|model) is not in the Hugging Face cache "
                    + re.escape(f"({hub})"), missing["error"]), missing["error"]
    assert "HF_HUB_OFFLINE is set" in missing["error"] and "hf download optbench/missing" in missing["error"]
