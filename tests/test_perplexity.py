"""Perplexity and next-token drift (issue 16): known answers on models whose distributions are known."""
from __future__ import annotations

import math

import pytest
import torch

from harness.measure.perplexity import exact_drift, text_quality, windows


def uniform(vocab: int):
    return lambda ids: torch.zeros(*ids.shape, vocab)


def test_a_model_that_predicts_uniformly_has_the_vocabulary_size_as_perplexity():
    tokens = torch.randint(0, 50, (1000,), generator=torch.Generator().manual_seed(0))
    q = text_quality(uniform(50), tokens, window=64, stride=32)
    assert q.perplexity == pytest.approx(50.0, rel=1e-5)
    assert q.tokens == 999  # every token after the first is scored once
    f = q.fields()
    assert f["perplexity_window"] == 64 and f["perplexity_stride"] == 32 and f["perplexity_tokens"] == 999


def test_a_model_that_knows_the_next_token_has_perplexity_one_and_sliding_windows_give_it_context():
    # the text counts 0, 1, 2, ... mod 7: a model that predicts "previous + 1" is certain and right
    tokens = torch.arange(300) % 7

    def counting(ids):
        out = torch.full((*ids.shape, 7), -1e4)
        out.scatter_(-1, ((ids + 1) % 7)[..., None], 0.0)
        return out

    assert text_quality(counting, tokens, window=32, stride=8).perplexity == pytest.approx(1.0, abs=1e-6)


def test_windows_score_every_token_after_the_first_exactly_once():
    for n, window, stride in ((100, 16, 5), (17, 16, 8), (5, 16, 4), (64, 16, 1)):
        scored = [0] * n
        for begin, end, k in windows(n, window, stride):
            assert end - begin <= window and 0 < k <= end - begin
            for t in range(end - k, end):
                scored[t] += 1
        assert scored == [0] + [1] * (n - 1), (n, window, stride)
    # disjoint windows (stride = window): a window's first token has no context in it and is not scored
    scored = [t for b, e, k in windows(48, 16, 16) for t in range(e - k, e)]
    assert scored == [t for t in range(48) if t % 16]


def test_drift_is_zero_against_itself_and_the_known_kl_against_another_distribution():
    g = torch.Generator().manual_seed(1)
    table = torch.randn(20, 20, generator=g)
    model = lambda ids: table[ids]
    tokens = torch.randint(0, 20, (500,), generator=g)
    same = text_quality(model, tokens, 50, 25, reference=model)
    assert same.kl_div == pytest.approx(0.0, abs=1e-6) and same.agreement == 1.0
    assert same.fields()["ppl_ratio"] == pytest.approx(1.0)

    q = text_quality(uniform(20), tokens, 50, 25, reference=model)
    lp = torch.log_softmax(table, -1)
    per_row = (lp.exp() * (lp - math.log(1 / 20))).sum(-1)  # KL(bigram || uniform) per previous token
    want = float(per_row[tokens[:-1]].mean())
    assert q.kl_div == pytest.approx(want, rel=1e-5)
    assert q.perplexity == pytest.approx(20.0, rel=1e-5)


def test_the_baselines_own_drift_is_exact():
    q = exact_drift(text_quality(uniform(9), torch.arange(40) % 9, 16, 8))
    f = q.fields()
    assert f["kl_div"] == 0.0 and f["agreement"] == 1.0 and f["ppl_ratio"] == 1.0
    assert f["baseline_perplexity"] == pytest.approx(f["perplexity"])


def test_bad_windows_are_refused():
    with pytest.raises(ValueError, match="window"):
        list(windows(10, 1, 1))
    with pytest.raises(ValueError, match="stride"):
        list(windows(10, 8, 9))
