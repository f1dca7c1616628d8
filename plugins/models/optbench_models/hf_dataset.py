"""The ``hf`` dataset: anything the Hugging Face ``datasets`` library loads, read row by row.

A hub dataset (``path: glue``, ``name: sst2``; the library's own cache, downloaded when online) or
local files (``path: csv | json | parquet | text`` with ``data_files``). Rows stay in the library's
memory-mapped Arrow files: a batch reads its rows, so memory does not grow with the split. A sample's
raw input is the row's text (a ``(text, pair)`` tuple with ``text_pair_column``) or image, which a
model's own preprocessing (a transformers tokenizer) turns into inputs; labels come from
``label_column``, class names (a ClassLabel feature, or the sorted distinct values of a text
column) becoming 0..n-1; or a text target from ``target_column`` (a translation, a summary: the task is
seq2seq, scored by BLEU and WER of a seq2seq model's generations).
"""
from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from harness import Dataset, DatasetSplits, Params, Split, SuitePath, files_fingerprint
from optbench_models.requirements import hub_error, require

FILE_BUILDERS = ("csv", "json", "parquet", "text")
TEXT_COLUMNS = ("text", "sentence", "content", "review", "question")
LABEL_COLUMNS = ("label", "labels", "class", "target")


class HFDatasetParams(Params):
    path: str = Field(description="a hub dataset id (e.g. glue, imdb), or csv | json | parquet | text for local files")
    name: str | None = Field(None, description="the dataset's configuration (e.g. sst2 of glue)")
    revision: str | None = Field(None, description="hub revision: a branch, tag or commit")
    data_files: dict[str, SuitePath] | SuitePath | None = Field(
        None, description="local files: one file, or {train: ..., test: ...} (relative to the suite file)")
    split: str = Field("test", description="the held-out split (validation for many hub datasets)")
    train_split: str | None = Field("train", description="the training split (none: evaluation only)")
    test_fraction: float | None = Field(None, gt=0.0, lt=1.0, description="hold out this share of train_split, "
                                                                            "seeded, when there is no `split`")
    text_column: str | None = Field(None, description="the text column (default: text, sentence, ... if present)")
    text_pair_column: str | None = Field(None, description="a second text column: samples become (text, pair)")
    image_column: str | None = Field(None, description="an image column, instead of text")
    label_column: str | None = Field(None, description="the label column (default: label if present; none: unlabelled)")
    target_column: str | None = Field(None, description="a text target column instead of labels (a translation, a "
                                                        "summary, a transcript): the task is then seq2seq")
    train_limit: int | None = Field(None, ge=1, description="at most this many training rows (a seeded choice)")
    test_limit: int | None = Field(None, ge=1, description="at most this many held-out rows (a seeded choice)")

    @model_validator(mode="after")
    def _local_files(self) -> HFDatasetParams:
        if self.path in FILE_BUILDERS and self.data_files is None:
            raise ValueError(f"path {self.path!r} reads local files: give `data_files`")
        if self.text_column and self.image_column:
            raise ValueError("give `text_column` or `image_column`, not both")
        if self.target_column and self.label_column:
            raise ValueError("give `label_column` (classes) or `target_column` (text), not both")
        files = self.data_files.values() if isinstance(self.data_files, dict) else [self.data_files]
        import os

        missing = [f for f in files if f is not None and not any(c in f for c in "*?[") and not os.path.exists(f)]
        if missing:
            raise ValueError(f"no such data file(s): {', '.join(missing)}")
        return self


class HFSplit(Split):
    """Rows of a ``datasets.Dataset``; a sample is (text, (text, pair) or image, label index), or with a text
    target (``text_target``) (input, the target text)."""

    def __init__(self, table: Any, inputs: list[str], label: str | None, classes: list[Any] | None,
                 text_target: bool = False) -> None:
        self.table, self.inputs, self.label, self.text_target = table, inputs, label, text_target
        self.index = {c: i for i, c in enumerate(classes)} if classes is not None else None

    def __len__(self) -> int:
        return len(self.table)

    def _label(self, value: Any) -> Any:
        if self.label is None:
            return None
        if self.text_target:
            return str(value)
        return self.index[value] if self.index is not None else int(value)

    def sample(self, index: int) -> tuple[Any, int | None]:
        row = self.table[int(index)]
        raw = tuple(row[c] for c in self.inputs) if len(self.inputs) > 1 else row[self.inputs[0]]
        return raw, None if self.label is None else self._label(row[self.label])

    @property
    def labels(self) -> Any:
        import torch

        if self.label is None or self.text_target:  # text targets are read sample by sample
            return None
        return torch.as_tensor([self._label(v) for v in self.table[self.label]], dtype=torch.int64)

    @property
    def has_labels(self) -> bool:
        return self.label is not None and len(self.table) > 0

    def collate(self, raw: list[Any]) -> Any:
        from PIL import Image

        if isinstance(raw[0], Image.Image):  # images without a model's preprocessing: floats in [0, 1]
            import numpy as np
            import torch

            arrays = [np.asarray(im.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255.0 for im in raw]
            if len({a.shape for a in arrays}) > 1:
                raise ValueError("hf: images of different sizes in one batch; use a model with its own preprocessing")
            return torch.from_numpy(np.stack(arrays))
        raise ValueError(f"hf: samples of column(s) {self.inputs} are {type(raw[0]).__name__}, which need a model "
                         "that turns them into inputs itself (a transformers model with its tokenizer)")


def _pick(columns: list[str], given: str | None, defaults: tuple[str, ...], what: str) -> str | None:
    if given is not None:
        if given not in columns:
            raise ValueError(f"hf: no {what} column {given!r}; the dataset's columns are {columns}")
        return given
    return next((c for c in defaults if c in columns), None)


def _limited(table: Any, limit: int | None, seed: int) -> Any:
    if limit is None or len(table) <= limit:
        return table
    return table.shuffle(seed=seed).select(range(limit))


def load_hf(params: HFDatasetParams, seed: int) -> DatasetSplits:
    datasets = require("datasets", "hf")
    kwargs: dict[str, Any] = {}
    if params.name:
        kwargs["name"] = params.name
    if params.revision:
        kwargs["revision"] = params.revision
    if params.data_files is not None:
        kwargs["data_files"] = params.data_files
    try:
        loaded = datasets.load_dataset(params.path, **kwargs)
    except (OSError, ValueError, ConnectionError) as exc:
        if isinstance(exc, ValueError) and "split" in str(exc).lower():
            raise
        raise hub_error("dataset", params.path, params.revision, exc, local=params.path in FILE_BUILDERS,
                        repo_type="dataset") from None
    splits = list(loaded)
    if params.train_split is not None and params.train_split not in splits:
        raise ValueError(f"hf: no split {params.train_split!r}; {params.path} has {splits}")
    if params.split in splits and params.test_fraction is None:
        test = loaded[params.split]
        train = loaded[params.train_split] if params.train_split is not None else test.select([])
    elif params.train_split is not None:
        fraction = params.test_fraction or 0.25
        parted = loaded[params.train_split].train_test_split(test_size=fraction, seed=seed)
        train, test = parted["train"], parted["test"]
    else:
        raise ValueError(f"hf: no split {params.split!r} and no train_split to hold out from; {params.path} has {splits}")
    columns = list(test.column_names)
    if params.image_column:
        inputs = [_pick(columns, params.image_column, (), "image")]
    else:
        text = _pick(columns, params.text_column, TEXT_COLUMNS, "text")
        if text is None:
            raise ValueError(f"hf: which column holds the inputs? give text_column or image_column (columns: {columns})")
        inputs = [text] + ([_pick(columns, params.text_pair_column, (), "text pair")] if params.text_pair_column else [])
    text_target = params.target_column is not None
    label = _pick(columns, params.target_column, (), "target") if text_target else \
        _pick(columns, params.label_column, LABEL_COLUMNS, "label")
    classes = None
    if text_target:
        num_classes = 0
    elif label is not None:
        feature = test.features[label]
        names = getattr(feature, "names", None)
        if names is None:
            values = sorted(set(train[label]) | set(test[label]), key=str)
            if all(isinstance(v, int) for v in values):
                num_classes = (max(values) + 1) if values else 0
            else:
                classes = values
                num_classes = len(values)
        else:
            num_classes = len(names)
    else:
        num_classes = 0
    train, test = _limited(train, params.train_limit, seed), _limited(test, params.test_limit, seed + 1)
    return DatasetSplits(train=HFSplit(train, inputs, label, classes, text_target),
                         test=HFSplit(test, inputs, label, classes, text_target), num_classes=num_classes,
                         task="seq2seq" if text_target else None)


def fingerprint(params: HFDatasetParams) -> str:
    """Local data files' names, sizes and times (a hub dataset is named by its id and revision, already
    in the params): a model trained on edited files is trained again."""
    import glob

    files = params.data_files.values() if isinstance(params.data_files, dict) else [params.data_files]
    return files_fingerprint([name for pattern in files if pattern
                              for name in sorted(glob.glob(pattern) if any(c in pattern for c in "*?[") else [pattern])])


HF = Dataset(
    name="hf",
    description="a Hugging Face datasets dataset: a hub id (cached) or local csv/json/parquet/text files",
    load=load_hf,
    params=HFDatasetParams,
    fingerprint=fingerprint,
    preload=("datasets",),
)
