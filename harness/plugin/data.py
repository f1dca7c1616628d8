"""The data contract: a dataset is splits of samples, read by index and turned into batches on demand.

A ``Split`` is map-style, like a ``torch.utils.data.Dataset``: ``len(split)`` samples, each read by
``split.sample(i)`` as ``(raw input, label or None)``. Nothing requires a split to hold its samples in
memory: a folder of images opens one file per sample, a Hugging Face dataset reads its Arrow file.
``split.batch(indices)`` reads those samples and turns them into model inputs with the split's
``collate`` (its own conversion: stacking tensors, decoding images to floats) or with a model's
``preprocess`` (a tokenizer, a weights' transforms), which the harness attaches per cell, so one
dataset serves many models. Inputs are a tensor or a dict of tensors (``input_ids``,
``attention_mask``, ...); labels are the samples' targets as they are (``harness.plugin.targets``): class
indices (int64), floats, multi-hot vectors, masks, or dicts for a detector.

``TensorSplit`` is the in-memory kind (tensors ``x`` and ``y``), which the built-in datasets use and
which ``DatasetSplits(x_train=..., ...)`` still builds.
"""
from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from harness.measure.inputs import batch_size, call_model, first_tensor, map_tensors
from harness.plugin.targets import collate_targets, sample_target

if TYPE_CHECKING:
    import torch

__all__ = ["Batch", "Inputs", "Preprocess", "Split", "TensorSplit", "batch_size", "call_model", "files_fingerprint",
           "first_tensor", "map_tensors", "stack"]

#: What a model is called with: ``model(x)`` for a tensor, ``model(**x)`` for a dict of tensors.
Inputs = Union["torch.Tensor", dict[str, "torch.Tensor"]]
#: ``preprocess(raw_samples) -> Inputs``: a model's own way from raw samples to its inputs.
Preprocess = Callable[[list[Any]], Any]


@dataclass
class Batch:
    """Inputs for one call of a model, and their labels (None for unlabelled data)."""

    inputs: Any
    labels: Any  # a tensor of targets (a list of dicts for a detector), None for unlabelled data

    def __len__(self) -> int:
        return batch_size(self.inputs)


def stack(raw: list[Any]) -> Any:
    """The default collate: tensors stacked along a new first dimension (dicts key by key)."""
    import torch

    if not raw:
        raise ValueError("no samples to collate")
    first = raw[0]
    if isinstance(first, dict):
        return {k: torch.stack([torch.as_tensor(r[k]) for r in raw]) for k in first}
    return torch.stack([torch.as_tensor(r) for r in raw])


class Split(abc.ABC):
    """One split of a dataset (training or held-out): ``len(split)`` samples read by index."""

    #: ``preprocess`` set by ``with_preprocess``: replaces ``collate`` for the model of a cell.
    preprocess: Preprocess | None = None

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def sample(self, index: int) -> tuple[Any, Any]:
        """The raw input of sample ``index`` (a tensor, an image, a text) and its target (None if unlabelled):
        a class index, a float, a tensor (multi-hot, a mask) or a dict (boxes)."""

    def collate(self, raw: list[Any]) -> Any:
        """The split's own conversion of raw samples into model inputs (default: stack tensors)."""
        return stack(raw)

    @property
    def labels(self) -> Any:
        """Every sample's target as one tensor (``harness.plugin.targets.collate_targets``: int64 class indices,
        float32 numbers, stacked tensors; a list of dicts for a detector), or None for unlabelled data.
        Override it when labels are known without reading the samples (class folders, a label column)."""
        return collate_targets([self.sample(i)[1] for i in range(len(self))])

    @property
    def has_labels(self) -> bool:
        return len(self) > 0 and self.sample(0)[1] is not None

    # -- batches ---------------------------------------------------------------------------
    def batch(self, indices: Sequence[int] | torch.Tensor) -> Batch:
        """The samples at ``indices`` as one batch of model inputs (preprocessed when the cell's model
        brings its own preprocessing) and their labels."""

        idx = [int(i) for i in (indices.tolist() if hasattr(indices, "tolist") else indices)]
        if not idx:
            raise ValueError("a batch needs at least one index")
        samples = [self.sample(i) for i in idx]
        raw = [s[0] for s in samples]
        inputs = self.preprocess(raw) if self.preprocess is not None else self.collate(raw)
        return Batch(inputs, collate_targets([s[1] for s in samples]))

    def batches(self, batch_size: int, *, limit: int | None = None, shuffle: bool = False,
                seed: int = 0) -> Iterator[Batch]:
        """Every sample (the first ``limit``, or a seeded shuffle of them) in batches of ``batch_size``."""
        import torch

        n = len(self) if limit is None else min(limit, len(self))
        order = (torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n] if shuffle
                 else torch.arange(n))
        for start in range(0, n, batch_size):
            yield self.batch(order[start:start + batch_size])

    def example(self, size: int) -> Any:
        """Inputs of the first ``size`` samples, the split repeated when it has fewer: a real batch
        of a given size, for timing, tracing, FLOP counting and calibration."""
        if len(self) == 0:
            raise ValueError("an empty split has no example batch")
        return self.batch([i % len(self) for i in range(size)]).inputs

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one sample's model input (of ``input_ids`` for a dict), as the model sees it."""
        return tuple(first_tensor(self.example(1)).shape[1:])

    # -- views -----------------------------------------------------------------------------
    def subset(self, indices: Sequence[int] | torch.Tensor) -> Split:
        """The samples at ``indices``, in that order, as a split of their own (nothing is copied)."""
        return _Subset(self, [int(i) for i in (indices.tolist() if hasattr(indices, "tolist") else indices)])

    def map_labels(self, fn: Callable[[int], int]) -> Split:
        """The same samples with every label mapped through ``fn`` (a task's own class numbers)."""
        return _Relabelled(self, fn)

    def with_preprocess(self, preprocess: Preprocess | None) -> Split:
        """This split, read through a model's ``preprocess`` instead of its own ``collate``."""
        view = _View(self)
        view.preprocess = preprocess
        return view


class _View(Split):
    """A split read through another one (the base of the views below)."""

    def __init__(self, base: Split) -> None:
        self.base = base
        self.preprocess = base.preprocess

    def __len__(self) -> int:
        return len(self.base)

    def sample(self, index: int) -> tuple[Any, Any]:
        return self.base.sample(index)

    def collate(self, raw: list[Any]) -> Any:
        return self.base.collate(raw)

    @property
    def labels(self) -> Any:
        return self.base.labels

    @property
    def has_labels(self) -> bool:
        return self.base.has_labels


class _Subset(_View):
    def __init__(self, base: Split, indices: list[int]) -> None:
        super().__init__(base)
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def sample(self, index: int) -> tuple[Any, Any]:
        return self.base.sample(self.indices[index])

    @property
    def labels(self) -> Any:
        labels = self.base.labels
        if labels is None:
            return None
        return [labels[i] for i in self.indices] if isinstance(labels, list) else labels[self.indices]

    @property
    def has_labels(self) -> bool:
        return len(self.indices) > 0 and self.base.has_labels


class _Relabelled(_View):
    def __init__(self, base: Split, fn: Callable[[int], int]) -> None:
        super().__init__(base)
        self.fn = fn

    def sample(self, index: int) -> tuple[Any, Any]:
        raw, label = self.base.sample(index)
        return raw, None if label is None else self.fn(label)

    @property
    def labels(self) -> torch.Tensor | None:
        import torch

        labels = self.base.labels
        return None if labels is None else torch.as_tensor([self.fn(int(v)) for v in labels], dtype=torch.int64)


class TensorSplit(Split):
    """A split held in memory: inputs ``x`` (a tensor, or a dict of tensors, first dimension the samples)
    and targets ``y`` (a tensor whose first dimension is the samples, of any dtype: int64 class indices,
    floats, multi-hot rows, masks; or None). Batches are read by indexing, without a per-sample loop."""

    def __init__(self, x: Any, y: torch.Tensor | None = None) -> None:
        n = batch_size(x)
        if isinstance(x, dict) and any(int(v.shape[0]) != n for v in x.values()):
            raise ValueError("every input tensor of a split must hold the same number of samples")
        if y is not None and int(y.shape[0]) != n:
            raise ValueError(f"the split has {n} inputs but {int(y.shape[0])} labels")
        self.x, self.y = x, y

    def __len__(self) -> int:
        return batch_size(self.x)

    def sample(self, index: int) -> tuple[Any, Any]:
        raw = map_tensors(self.x, lambda t: t[index])
        return raw, None if self.y is None else sample_target(self.y, index)

    @property
    def labels(self) -> Any:
        return self.y

    @property
    def has_labels(self) -> bool:
        return self.y is not None and len(self) > 0

    def batch(self, indices: Sequence[int] | torch.Tensor) -> Batch:
        import torch

        if self.preprocess is not None:  # a model's preprocessing works on raw samples
            return super().batch(indices)
        idx = torch.as_tensor(indices, dtype=torch.int64)
        if idx.numel() == 0:
            raise ValueError("a batch needs at least one index")
        if idx.numel() == len(self) and bool((idx == torch.arange(len(self))).all()):
            inputs = self.x  # the whole split in order: no copy
        else:
            inputs = map_tensors(self.x, lambda t: t[idx])
        return Batch(inputs, None if self.y is None else self.y[idx])

    def with_preprocess(self, preprocess: Preprocess | None) -> Split:
        if preprocess is None:
            return self
        view = TensorSplit(self.x, self.y)
        view.preprocess = preprocess
        return view

    def subset(self, indices: Sequence[int] | torch.Tensor) -> Split:
        """The samples at ``indices`` as tensors of their own (indexed once, so batches stay fast)."""
        import torch

        idx = torch.as_tensor(indices, dtype=torch.int64)
        out = TensorSplit(map_tensors(self.x, lambda t: t[idx]), None if self.y is None else self.y[idx])
        out.preprocess = self.preprocess
        return out

    def map_labels(self, fn: Callable[[int], int]) -> Split:
        import torch

        if self.y is None:
            return self
        out = TensorSplit(self.x, torch.as_tensor([fn(int(v)) for v in self.y], dtype=torch.int64))
        out.preprocess = self.preprocess
        return out


def files_fingerprint(paths: Iterable[Any], names: Iterable[str] | None = None) -> str:
    """What identifies data files for the weight cache without reading them: each file's name (``names``,
    else its path), size and modification time; a missing file counts as missing. A dataset's
    ``fingerprint`` returns it, so a model trained on the files is trained again when they change."""
    import hashlib
    import os

    digest = hashlib.sha256()
    paths = [p for p in paths if p is not None]
    for path, name in zip(paths, names if names is not None else map(str, paths), strict=True):
        try:
            st = os.stat(path)
            digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        except OSError:
            digest.update(f"{name}\0missing\0".encode())
    return digest.hexdigest()[:16]
