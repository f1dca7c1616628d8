"""quantize.qat: FX quantization-aware fine-tuning, then int8 conversion."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.ao.nn import quantized as nnq

from harness import DatasetSplits, Skip


def with_train_subset(data: DatasetSplits, n: int) -> DatasetSplits:
    """Fewer training samples keep fine-tuning fast; accuracy is still read on the whole test split."""
    return DatasetSplits(data.x_train[:n], data.y_train[:n], data.x_test, data.y_test, data.num_classes)


def qat(quantize_method, model, ctx, **params):
    method = quantize_method("quantize.qat")
    return method.apply(model, method.params(**params), ctx)


def test_fine_tunes_converts_to_int8_and_keeps_accuracy(quantize_method, optbench_digits, digits_mlp, method_context, accuracy):
    logs: list[str] = []
    before = [p.clone() for p in digits_mlp.parameters()]
    quantized = qat(quantize_method, digits_mlp, method_context(optbench_digits, logs))
    assert sum(isinstance(m, nnq.Linear) for m in quantized.modules()) == 3
    assert not any(type(m) is nn.Linear for m in quantized.modules())
    assert abs(accuracy(quantized) - accuracy(digits_mlp)) <= 0.03
    assert all(torch.equal(a, b) for a, b in zip(before, digits_mlp.parameters()))  # trained a copy
    assert any("fine-tuned 2 epoch(s)" in line and "3 int8 layer(s)" in line for line in logs)


def test_zero_epochs_still_converts(quantize_method, optbench_digits, digits_cnn, method_context, accuracy):
    quantized = qat(quantize_method, digits_cnn, method_context(with_train_subset(optbench_digits, 128)), epochs=0)
    assert sum(isinstance(m, (nnq.Conv2d, nnq.Linear)) for m in quantized.modules()) == 4
    assert accuracy(quantized) > 0.5  # ranges from one batch only: a sanity floor, not a quality bar


def test_skips_without_labels(quantize_method, optbench_digits, digits_mlp, method_context):
    unlabelled = DatasetSplits(optbench_digits.x_train, None, optbench_digits.x_test, None, optbench_digits.num_classes)
    with pytest.raises(Skip, match="needs labelled training data"):
        qat(quantize_method, digits_mlp, method_context(unlabelled))
