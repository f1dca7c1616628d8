"""The ``python`` dataset: any callable that returns data, named by reference in a suite.

``factory`` is ``"package.module:callable"`` or ``"path/to/file.py:callable"`` (relative to the suite
file's folder), called with ``kwargs`` plus ``seed`` when its signature asks for it. It may return:

- a ``harness.DatasetSplits`` (used as it is);
- a pair ``(train, test)`` or a dict ``{"train": ..., "test": ...}`` whose items are each a
  ``harness.Split``, a map-style ``torch.utils.data.Dataset`` (``ds[i]`` is ``(input, target)`` or an
  input alone; a torchvision dataset, a ``TensorDataset``), a tuple of tensors ``(x, y)`` or a tensor
  of inputs;
- one such item alone, split by a seeded ``test_fraction``.

A pair of tensors is ``(train, test)`` inputs when both hold samples of one shape and either their counts
differ or the samples are images or grids (three dimensions or more); otherwise it is ``(x, y)``. A dict
``{"train": ..., "test": ...}`` is never ambiguous. Targets stay as they are (``harness.plugin.targets``):
class indices, floats, multi-hot rows, masks; ``task`` names the task when they do not say it.

A ``torch.utils.data.Dataset`` is read sample by sample as batches need it (nothing is loaded ahead),
so a dataset object that reads files streams; Pillow images become float tensors in [0, 1], numpy
arrays tensors. The class count is ``num_classes``, else the dataset's ``classes``, else the largest
label plus one. The factory's source is part of the weight cache's key: editing it retrains the models
trained on it.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from harness.builtin.factories import (
    call_factory,
    load_factory,
    resolve_factory,
    source_hash,
)
from harness.builtin.image_folder import images_to_tensor
from harness.plugin.data import Split, TensorSplit, stack
from harness.plugin.targets import collate_targets, tensor_targets
from harness.plugin.types import Dataset, DatasetSplits, Params, SuiteRelative


class PythonDatasetParams(Params):
    factory: Annotated[str, SuiteRelative(resolve_factory)] = Field(
        description="'package.module:callable' or 'path/to/file.py:callable' (relative to the suite file)",
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the callable")
    num_classes: int | None = Field(None, ge=1, le=10_000_000,
                                    description="classes (default: the dataset's classes, else largest label + 1)")
    task: Literal["classification", "regression", "multilabel", "segmentation", "detection", "seq2seq"] | None = Field(
        None, description="what the targets are (default: read from them)")
    test_fraction: float = Field(0.25, gt=0.0, lt=1.0, description="held-out share when the callable returns "
                                                                   "one set of samples")

    @field_validator("factory")
    @classmethod
    def _importable(cls, value: str) -> str:
        load_factory(value)  # validate reports what fails to import, with the file and line
        return value


def _label(value: Any) -> Any:
    """A sample's target as it is: a 0-d tensor or numpy scalar as a Python number, a numpy array as a tensor."""
    if value is None or isinstance(value, (bool, int, float, dict)):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", getattr(value, "dim", lambda: 1)) == 0:
        return value.item()
    if type(value).__module__ == "numpy":
        import torch

        return torch.as_tensor(value)
    return value


class TorchDatasetSplit(Split):
    """A map-style ``torch.utils.data.Dataset`` read one sample at a time (``ds[i]``)."""

    def __init__(self, dataset: Any, where: str) -> None:
        self.dataset, self.where = dataset, where
        self._first: tuple[Any, int | None] | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def sample(self, index: int) -> tuple[Any, Any]:
        item = self.dataset[index]
        if isinstance(item, (tuple, list)):
            if len(item) == 1:
                return item[0], None
            if len(item) != 2:
                raise ValueError(f"{self.where}: sample {index} has {len(item)} parts; expected (input, target)")
            return item[0], _label(item[1])
        return item, None

    def collate(self, raw: list[Any]) -> Any:
        first = raw[0]
        if hasattr(first, "convert") and hasattr(first, "size"):  # Pillow images
            return images_to_tensor(raw)
        if type(first).__module__ == "numpy" or isinstance(first, (int, float, list)):
            import torch

            return torch.stack([torch.as_tensor(r) for r in raw])
        return stack(raw)

    @property
    def labels(self) -> Any:
        import torch

        targets = getattr(self.dataset, "targets", None)  # torchvision datasets know them without decoding
        if targets is not None and len(targets) == len(self) and not isinstance(targets, torch.Tensor):
            return collate_targets([_label(t) for t in targets])
        if isinstance(targets, torch.Tensor) and len(targets) == len(self):
            return targets
        return super().labels

    @property
    def has_labels(self) -> bool:
        return len(self) > 0 and self.sample(0)[1] is not None


def _as_split(obj: Any, where: str, task: str | None) -> Split:
    import torch

    if isinstance(obj, Split):
        return obj
    if isinstance(obj, torch.Tensor):
        return TensorSplit(obj)
    if isinstance(obj, (tuple, list)) and len(obj) in (1, 2) and all(isinstance(t, torch.Tensor) for t in obj):
        y = None if len(obj) == 1 else tensor_targets(obj[1], task, where)[0]
        return TensorSplit(obj[0], y)
    if isinstance(obj, dict) and obj and all(isinstance(t, torch.Tensor) for t in obj.values()):
        return TensorSplit(obj)  # a dict of input tensors (input_ids, attention_mask), unlabelled
    if hasattr(obj, "__getitem__") and hasattr(obj, "__len__") and not isinstance(obj, (str, bytes, dict)):
        return TorchDatasetSplit(obj, where)
    raise TypeError(f"{where}: got a {type(obj).__name__}; expected a harness Split, a map-style "
                    "torch.utils.data.Dataset, a tuple (inputs, labels) of tensors or a tensor")


def _classes(obj: Any) -> int | None:
    classes = getattr(obj, "classes", None)
    return len(classes) if isinstance(classes, (list, tuple, dict)) and classes else None


def load_python_dataset(params: PythonDatasetParams, seed: int) -> DatasetSplits:
    import torch

    where = f"dataset factory {params.factory}"
    out = call_factory(load_factory(params.factory), params.kwargs, {"seed": seed})
    if isinstance(out, DatasetSplits):
        if params.num_classes is not None:
            out = out.replace(num_classes=params.num_classes)
        return out
    known = None
    if isinstance(out, dict) and set(out) >= {"train", "test"}:
        parts = (out["train"], out["test"])
    elif isinstance(out, (tuple, list)) and len(out) == 2 and (not all(isinstance(t, torch.Tensor) for t in out)
                                                               or _train_test_pair(*out)):
        parts = (out[0], out[1])
    else:
        parts = None
    if parts is not None:
        train = _as_split(parts[0], where + " (train)", params.task)
        test = _as_split(parts[1], where + " (test)", params.task)
        known = _classes(parts[0]) or _classes(parts[1])
    else:
        whole = _as_split(out, where, params.task)
        known = _classes(out)
        if len(whole) < 2:
            raise ValueError(f"{where}: returned {len(whole)} sample(s); a held-out split needs two or more")
        order = torch.randperm(len(whole), generator=torch.Generator().manual_seed(seed * 1_000_003 + 1))
        k = max(1, round(len(whole) * params.test_fraction))
        test, train = whole.subset(order[:k].sort().values), whole.subset(order[k:].sort().values)
    if len(train) == 0 or len(test) == 0:
        raise ValueError(f"{where}: an empty split (train {len(train)}, test {len(test)} samples)")
    num_classes, task = params.num_classes or known, params.task
    if train.has_labels and isinstance(train.labels, torch.Tensor):
        task = tensor_targets(train.labels, task, where)[1]
        if num_classes is None:
            num_classes = max(tensor_targets(s.labels, task, where)[2] for s in (train, test)
                              if isinstance(s.labels, torch.Tensor))
    return DatasetSplits(train=train, test=test, num_classes=num_classes or 0, task=task)


def _train_test_pair(a: Any, b: Any) -> bool:
    """Whether a pair of tensors is (train, test) inputs rather than (x, y): samples of one shape, and either
    different counts or images and grids (three dimensions or more)."""
    return a.shape[1:] == b.shape[1:] and (a.shape[0] != b.shape[0] or a.dim() >= 3)


PYTHON_DATASET = Dataset(
    name="python",
    description="any callable returning data: 'package.module:callable' or 'file.py:callable' (a torch Dataset, "
    "(train, test), DatasetSplits)",
    load=load_python_dataset,
    params=PythonDatasetParams,
    fingerprint=lambda params: source_hash(params.factory),
)
