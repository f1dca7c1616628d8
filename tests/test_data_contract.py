"""The data contract: splits of samples read by index, batches on demand, views that copy nothing,
a model's preprocessing attached per cell, and the in-memory form kept working."""
from __future__ import annotations

import pytest
import torch

from harness import DatasetSplits
from harness.plugin.data import Split, TensorSplit, call_model, stack


class Counting(Split):
    """A split that makes each sample on demand and counts the reads (a folder of files stands in)."""

    def __init__(self, n: int, labelled: bool = True) -> None:
        self.n, self.labelled, self.reads = n, labelled, 0

    def __len__(self) -> int:
        return self.n

    def sample(self, index: int):
        if not 0 <= index < self.n:
            raise IndexError(index)
        self.reads += 1
        return torch.full((2, 3), float(index)), (index % 3 if self.labelled else None)


def test_a_split_reads_only_the_samples_a_batch_needs():
    split = Counting(1000)
    batch = split.batch([5, 7])
    assert split.reads == 2
    assert batch.inputs.shape == (2, 2, 3) and batch.inputs[1, 0, 0] == 7 and batch.labels.tolist() == [2, 1]
    assert len(batch) == 2 and split.input_shape == (2, 3)


def test_batches_cover_every_sample_once_in_a_seeded_order_and_respect_a_limit():
    split = Counting(10)
    seen = [int(v) for b in split.batches(4, shuffle=True, seed=3) for v in b.inputs[:, 0, 0]]
    assert sorted(seen) == list(range(10)) and seen != list(range(10))
    assert seen == [int(v) for b in split.batches(4, shuffle=True, seed=3) for v in b.inputs[:, 0, 0]]
    assert [len(b) for b in split.batches(4, limit=6)] == [4, 2]
    assert [int(v) for b in split.batches(4, limit=6) for v in b.inputs[:, 0, 0]] == [0, 1, 2, 3, 4, 5]


def test_an_example_repeats_a_small_split_to_the_size_asked_for():
    ex = Counting(3).example(7)
    assert ex.shape == (7, 2, 3) and [int(v) for v in ex[:, 0, 0]] == [0, 1, 2, 0, 1, 2, 0]


def test_views_subset_and_relabel_without_copying():
    base = Counting(10)
    view = base.subset([9, 3, 4]).map_labels(lambda c: 10 + c)
    assert len(view) == 3 and view.labels.tolist() == [10, 10, 11]
    b = view.batch([0, 2])
    assert [int(v) for v in b.inputs[:, 0, 0]] == [9, 4] and b.labels.tolist() == [10, 11]
    assert not Counting(4, labelled=False).has_labels and Counting(4, labelled=False).labels is None


def test_a_models_preprocessing_replaces_the_splits_own_collate():
    def preprocess(raw):  # what a tokenizer or a weights' transforms does: raw samples -> the model's inputs
        return {"input_ids": torch.stack([r.flatten().long() for r in raw]),
                "attention_mask": torch.ones(len(raw), 6, dtype=torch.long)}

    for split in (Counting(5), TensorSplit(torch.arange(30.0).reshape(5, 2, 3))):
        view = split.with_preprocess(preprocess)
        b = view.batch([1, 2])
        assert set(b.inputs) == {"input_ids", "attention_mask"} and b.inputs["input_ids"].shape == (2, 6)
        assert view.input_shape == (6,)
        assert split.batch([1]).inputs.shape == (1, 2, 3)  # the split itself is unchanged


def test_a_tensor_split_indexes_whole_batches_and_dict_inputs_stay_together():
    x = {"input_ids": torch.arange(20).reshape(10, 2), "attention_mask": torch.ones(10, 2, dtype=torch.long)}
    split = TensorSplit(x, torch.arange(10) % 2)
    b = split.batch(torch.tensor([8, 1]))
    assert b.inputs["input_ids"].tolist() == [[16, 17], [2, 3]] and b.labels.tolist() == [0, 1]
    assert split.batch(range(10)).inputs is x  # the whole split in order: no copy
    with pytest.raises(ValueError, match="same number of samples"):
        TensorSplit({"a": torch.zeros(3, 1), "b": torch.zeros(4, 1)})
    with pytest.raises(ValueError, match="3 inputs but 2 labels"):
        TensorSplit(torch.zeros(3, 1), torch.zeros(2, dtype=torch.long))

    class Named(torch.nn.Module):
        def forward(self, input_ids, attention_mask):
            return input_ids * attention_mask

    assert call_model(Named(), b.inputs).tolist() == [[16, 17], [2, 3]]
    assert stack([{"a": torch.zeros(2)}, {"a": torch.ones(2)}])["a"].shape == (2, 2)


def test_the_in_memory_form_still_builds_and_streamed_data_says_how_to_read_it():
    d = DatasetSplits(torch.randn(10, 3), torch.arange(10) % 2, torch.randn(4, 3), torch.arange(4) % 2, 2)
    assert isinstance(d.train, TensorSplit) and d.x_train.shape == (10, 3) and d.y_test.tolist() == [0, 1, 0, 1]
    assert d.input_shape == (3,) and d.has_labels and d.trainable and d.metric == "accuracy"
    streamed = DatasetSplits(train=Counting(20), test=Counting(5), num_classes=3)
    assert streamed.y_train.shape == (20,) and streamed.input_shape == (2, 3) and streamed.has_labels
    with pytest.raises(TypeError, match="only there for data held in memory.*data.train / data.test"):
        streamed.x_train
    relabelled = streamed.replace(num_classes=5)
    assert relabelled.num_classes == 5 and relabelled.train is streamed.train
    with pytest.raises(TypeError):
        DatasetSplits(train=Counting(2))
    unlabelled = DatasetSplits(torch.randn(4, 3), None, torch.randn(4, 3), None, 2)
    assert not unlabelled.has_labels and not unlabelled.trainable
