"""The ``tensors`` dataset: inputs and labels saved as tensors, in a ``.pt`` file or a ``.npz`` archive.

What ``torch.save`` or ``numpy.savez`` wrote, in any of the layouts people save datasets in:

- both splits in one file, under keys with a split suffix: ``x_train``, ``y_train``, ``x_test``,
  ``y_test`` (scikit-learn's naming);
- both splits in one ``.pt`` file as nested dicts: ``{"train": {"x": ..., "y": ...}, "test": {...}}``;
- one set of samples (``{"x": ..., "y": ...}``, a tuple ``(x, y)``, or a bare tensor of inputs), with
  the held-out split from ``test_path`` (laid out the same way) or a seeded ``test_fraction``.

``inputs`` names the input key (``x``), or several keys that become the model's keyword arguments
(``[input_ids, attention_mask]``); ``labels`` names the label key (``y``; labels are optional unless
named explicitly). Labels are the targets as they are (``harness.plugin.targets``): integers are class
indices (their count is ``num_classes`` or the largest plus one), floats regression targets (whole numbers
too: ``task: classification`` reads them as classes), rows of 0/1 multi-label targets, integer grids
segmentation masks; ``task`` names the task when the file's dtypes do not say it. A ``.pt`` file is memory-mapped (``torch.load(mmap=True, weights_only=True)``), so a large file is
read page by page as batches touch it; an ``.npz`` archive is decompressed into memory key by key.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from harness.plugin.data import Split, TensorSplit, files_fingerprint
from harness.plugin.targets import MULTILABEL, tensor_targets
from harness.plugin.types import Dataset, DatasetSplits, Params, SuitePath

SUFFIXES = (".pt", ".pth", ".npz")
SPLITS = ("train", "test")


class TensorFilesParams(Params):
    path: SuitePath = Field(description="a .pt/.pth file (torch.save) or .npz archive (numpy.savez), relative "
                                        "to the suite file")
    test_path: SuitePath | None = Field(None, description="the held-out samples in a file of their own "
                                                          "(default: the test keys of path, else test_fraction)")
    inputs: str | list[str] = Field("x", description="the key of the inputs, or keys that become the model's "
                                                     "keyword arguments ([input_ids, attention_mask])")
    labels: str | None = Field(None, description="the key of the labels (default: y where the file has it; "
                                                 "null data is unlabelled)")
    unlabelled: bool = Field(False, description="ignore any labels in the file")
    num_classes: int | None = Field(None, ge=1, le=10_000_000, description="classes (default: largest label + 1)")
    task: Literal["classification", "regression", "multilabel", "segmentation"] | None = Field(
        None, description="what the labels are (default: read from them: integers are classes, floats regression "
                          "targets, rows of 0/1 multi-label, integer grids segmentation masks)")
    test_fraction: float = Field(0.25, gt=0.0, lt=1.0, description="held-out share when the file holds one set "
                                                                   "of samples and there is no test_path")
    train_limit: int | None = Field(None, ge=1, description="at most this many training samples (a seeded choice)")
    test_limit: int | None = Field(None, ge=1, description="at most this many held-out samples (likewise)")

    @field_validator("path", "test_path")
    @classmethod
    def _file(cls, value: str | None) -> str | None:
        if value is None:
            return value
        path = Path(value)
        if not path.is_file():
            raise ValueError(f"no such file {value}")
        if path.suffix.lower() not in SUFFIXES:
            raise ValueError(f"{value}: expected a {', '.join(SUFFIXES)} file, got {path.suffix or 'no suffix'!r}")
        return value

    @field_validator("inputs")
    @classmethod
    def _keys(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("inputs needs at least one key")
        return value


def _read(path: Path) -> Any:
    """What the file holds: a dict of numpy-backed tensors for an .npz, whatever torch.save wrote for a .pt."""
    import torch

    if path.suffix.lower() == ".npz":
        import numpy as np

        try:
            with np.load(path, allow_pickle=False) as archive:
                return {key: torch.from_numpy(np.ascontiguousarray(archive[key])) for key in archive.files}
        except ValueError as exc:  # object arrays need pickle, which a dataset file never gets
            raise ValueError(f"tensors: {path}: {exc} (save plain numeric arrays)") from None
    try:
        try:
            return torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)  # the legacy (non-zip) format
    except Exception as exc:  # noqa: BLE001 - weights_only refuses pickled objects other than tensors
        text = str(exc).strip()
        if "Weights only load failed" in text or "weights_only" in text:
            raise ValueError(f"tensors: {path} holds more than tensors, dicts, lists and numbers; save tensors or "
                             "dicts of tensors (it is read with torch.load(weights_only=True), which runs no "
                             "pickled code)") from None
        first = text.splitlines()[0][:300] if text else type(exc).__name__
        raise ValueError(f"tensors: {path} is not a file torch.load reads ({type(exc).__name__}: {first})") from None


def _keys_of(obj: Any) -> str:
    return ", ".join(map(repr, sorted(obj))) if isinstance(obj, dict) else type(obj).__name__


def _as_tensor(value: Any, path: Path, key: str) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"tensors: {path}: {key!r} is a {type(value).__name__}, not a tensor or an array") from None


def _one_set(obj: Any, params: TensorFilesParams, path: Path, suffix: str = "") -> tuple[Any, Any]:
    """(inputs, labels or None) of one set of samples: keys ``inputs``/``labels`` (with ``suffix``,
    ``_train`` or ``_test``), a tuple ``(x, y)``, or a bare tensor of inputs."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj, None
    if isinstance(obj, (tuple, list)) and not suffix:
        if len(obj) not in (1, 2):
            raise ValueError(f"tensors: {path} holds a sequence of {len(obj)} items; expected (inputs, labels)")
        return _as_tensor(obj[0], path, "0"), (None if len(obj) == 1 else _as_tensor(obj[1], path, "1"))
    if not isinstance(obj, dict):
        raise ValueError(f"tensors: {path} holds a {type(obj).__name__}; expected a dict of tensors, "  # noqa: TRY004
                         "(inputs, labels) or a tensor")
    names = [params.inputs] if isinstance(params.inputs, str) else list(params.inputs)
    missing = [n + suffix for n in names if n + suffix not in obj]
    if missing:
        raise ValueError(f"tensors: {path} has no key {missing[0]!r} (inputs); its keys: {_keys_of(obj)}")
    if isinstance(params.inputs, str):
        x = obj[params.inputs + suffix]
        x = {k: _as_tensor(v, path, f"{params.inputs}{suffix}.{k}") for k, v in x.items()} if isinstance(x, dict) \
            else _as_tensor(x, path, params.inputs + suffix)
    else:
        x = {n: _as_tensor(obj[n + suffix], path, n + suffix) for n in names}
    y = None
    if not params.unlabelled:
        key = (params.labels or "y") + suffix
        if key in obj:
            y = _as_tensor(obj[key], path, key)
        elif params.labels is not None:
            raise ValueError(f"tensors: {path} has no key {key!r} (labels); its keys: {_keys_of(obj)}")
    return x, y


def _labels(y: Any, path: Path, n: int, task: str | None) -> Any:
    if y is None:
        return None
    if y.dim() == 0 or int(y.shape[0]) != n:
        raise ValueError(f"tensors: {path}: labels of shape {tuple(y.shape)} for {n} samples; expected one "
                         "target per sample along dimension 0")
    return tensor_targets(y, task, f"tensors: {path}")[0]


def _split(x: Any, y: Any, path: Path, task: str | None = None) -> TensorSplit:
    from harness.plugin.data import batch_size

    if isinstance(x, dict):
        sizes = {k: int(v.shape[0]) if v.dim() else 0 for k, v in x.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"tensors: {path}: the input tensors hold different numbers of samples {sizes}")
    elif x.dim() == 0:
        raise ValueError(f"tensors: {path}: the inputs are a single number; expected samples along dimension 0")
    n = batch_size(x)
    if n == 0:
        raise ValueError(f"tensors: {path}: no samples")
    return TensorSplit(x, _labels(y, path, n, task))


#: Inputs above this size are subset lazily (read sample by sample from the mapped file) rather than copied.
COPY_LIMIT_BYTES = 256 * 2**20


def _subset(split: Split, indices: Any) -> Split:
    """The samples at ``indices``: copied into tensors of their own (fast batches) when small, else a
    view that reads them from the memory-mapped file as batches need them."""
    from harness.plugin.data import map_tensors

    if isinstance(split, TensorSplit):
        sizes: list[int] = []
        map_tensors(split.x, lambda t: sizes.append(t.numel() * t.element_size()))
        if sum(sizes) <= COPY_LIMIT_BYTES:
            return split.subset(indices)
    return Split.subset(split, indices)


def _seeded_choice(n: int, k: int, seed: int, salt: int) -> Any:
    import torch

    g = torch.Generator().manual_seed(seed * 1_000_003 + salt)
    return torch.randperm(n, generator=g)[:k].sort().values


def load_tensor_files(params: TensorFilesParams, seed: int) -> DatasetSplits:
    import torch

    path = Path(params.path)
    obj = _read(path)
    names = [params.inputs] if isinstance(params.inputs, str) else list(params.inputs)
    task = params.task
    if params.test_path is not None:
        train = _split(*_one_set(obj, params, path), path, task)
        test_file = Path(params.test_path)
        test = _split(*_one_set(_read(test_file), params, test_file), test_file, task)
    elif isinstance(obj, dict) and all(s in obj and isinstance(obj[s], dict) for s in SPLITS):
        train = _split(*_one_set(obj["train"], params, path), path, task)
        test = _split(*_one_set(obj["test"], params, path), path, task)
    elif isinstance(obj, dict) and all(f"{n}_{s}" in obj for n in names for s in SPLITS):
        train = _split(*_one_set(obj, params, path, "_train"), path, task)
        test = _split(*_one_set(obj, params, path, "_test"), path, task)
    else:
        whole = _split(*_one_set(obj, params, path), path, task)
        order = torch.randperm(len(whole), generator=torch.Generator().manual_seed(seed * 1_000_003 + 1))
        k = max(1, round(len(whole) * params.test_fraction))
        if len(whole) < 2:
            raise ValueError(f"tensors: {path} holds one sample; a held-out split needs two or more (or test_path)")
        test, train = _subset(whole, order[:k].sort().values), _subset(whole, order[k:].sort().values)
    if (train.labels is None) != (test.labels is None):
        raise ValueError(f"tensors: {path}: one split has labels and the other has none")
    if params.train_limit is not None and len(train) > params.train_limit:
        train = _subset(train, _seeded_choice(len(train), params.train_limit, seed, 2))
    if params.test_limit is not None and len(test) > params.test_limit:
        test = _subset(test, _seeded_choice(len(test), params.test_limit, seed, 3))
    num_classes, task = params.num_classes, None
    if train.labels is not None:
        task = tensor_targets(train.labels, params.task, f"tensors: {path}")[1]
        shown = max(tensor_targets(split.labels, task, f"tensors: {path}")[2] for split in (train, test))
        if num_classes is None:
            num_classes = shown
        elif shown > num_classes and task != MULTILABEL:
            raise ValueError(f"tensors: {path}: label {shown - 1} with num_classes {num_classes}")
    return DatasetSplits(train=train, test=test, num_classes=num_classes or 0, task=task)


TENSOR_FILES = Dataset(
    name="tensors",
    description="inputs and labels saved with torch.save (.pt, memory-mapped) or numpy.savez (.npz)",
    load=load_tensor_files,
    params=TensorFilesParams,
    fingerprint=lambda params: files_fingerprint([params.path, params.test_path]),
)
