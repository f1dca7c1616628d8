"""transfer.finetune: pre-train on a source task, then fine-tune on a target task.

The cell's dataset is split by class into two tasks (on digits, by default, source =
classes 0-4 and target = classes 5-9, each relabelled 0..k-1 in the order given):

- source: every training and held-out example of the source classes;
- target: ``target_labels_per_class`` training examples of each target class (a seeded,
  stratified choice; None keeps them all) and every held-out example of the target
  classes as its test split.

``full`` and ``linear_probe`` give the model a classifier head for the source classes
and pre-train it (role ``pretrain``), give it a fresh head for the target classes and
fine-tune it on the target task (role ``main``: every parameter for ``full``, the new
head alone for ``linear_probe``). The comparison is the same architecture trained from
scratch on the same target data with the same budget (role ``reference``), so the
record's ``accuracy_gain`` is what pre-training bought. ``from_scratch`` is that
reference on its own: no pre-training, no reference run, ``accuracy_gain`` null.

The head is the last ``nn.Linear`` in module order; it is replaced in its parent module
by a new one, initialised from a generator seeded with the cell's seed. The main run of
``from_scratch`` and the reference of the two transfer modes start from the same
weights, so on one machine they give the same numbers.

Before returning, the method sets ``ctx.data`` to the target task, so the harness
evaluates accuracy and measures latency there.

torch imports stay inside functions: this module is imported at plugin discovery.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, model_validator

from harness import DatasetSplits, Params, Skip

if TYPE_CHECKING:
    import torch
    from torch import nn

METHOD = "transfer.finetune"
MODES = ("full", "linear_probe", "from_scratch")
#: Added to the cell's seed for the stratified choice of target labels and for each head,
#: so these draws never depend on how much of the global RNG something else consumed.
LABELS_SALT = 104_729
SOURCE_HEAD_SALT = 1
TARGET_HEAD_SALT = 2

ClassIndex = Annotated[int, Field(ge=0)]


class FinetuneParams(Params):
    mode: Literal["full", "linear_probe", "from_scratch"] = Field(
        "full",
        description="full: pre-train, then fine-tune every parameter on the target task; linear_probe: "
        "pre-train, then train only the new target head; from_scratch: no pre-training (the reference alone)",
    )
    source_classes: list[ClassIndex] = Field(
        [0, 1, 2, 3, 4], min_length=1, description="dataset labels of the source task (relabelled 0..k-1 in this order)"
    )
    target_classes: list[ClassIndex] = Field(
        [5, 6, 7, 8, 9], min_length=1, description="dataset labels of the target task (relabelled 0..k-1 in this order)"
    )
    target_labels_per_class: int | None = Field(
        10, ge=1, le=10_000_000,
        description="labelled target training examples per class (seeded, stratified); null: all of them",
    )
    pretrain_epochs: int | None = Field(
        None, ge=1, le=100_000, description="epochs on the source task (null: the suite's train.epochs)"
    )
    epochs: int | None = Field(
        None, ge=1, le=100_000,
        description="epochs on the target task, for the main and the reference run (null: train.epochs); "
        "an epoch is ceil(target examples / batch_size) steps, one step for 50 examples at batch 64",
    )

    @model_validator(mode="after")
    def _two_tasks(self) -> FinetuneParams:
        for name in ("source_classes", "target_classes"):
            values = getattr(self, name)
            dupes = sorted({c for c in values if values.count(c) > 1})
            if dupes:
                raise ValueError(f"{name} has duplicates: {dupes}")
        overlap = sorted(set(self.source_classes) & set(self.target_classes))
        if overlap:
            raise ValueError(f"source_classes and target_classes overlap in {overlap}: each class belongs to one task")
        return self


# -- the two tasks ---------------------------------------------------------------------


def pick_per_class(y: torch.Tensor, classes: Sequence[int], per_class: int | None, seed: int) -> torch.Tensor:
    """Sorted indices into ``y`` of ``per_class`` examples of each of ``classes`` (all of a
    class that has fewer; all of every class when None), chosen with a seeded generator."""
    import torch

    g = torch.Generator().manual_seed(seed + LABELS_SALT)
    chosen = []
    for c in classes:
        idx = torch.nonzero(y == c).flatten()
        if per_class is not None and idx.numel() > per_class:
            idx = idx[torch.randperm(idx.numel(), generator=g)[:per_class]]
        chosen.append(idx)
    if not chosen:
        return torch.zeros(0, dtype=torch.long)
    return torch.sort(torch.cat(chosen)).values


def remap(y: torch.Tensor, classes: Sequence[int]) -> torch.Tensor:
    """Dataset labels -> task labels: ``classes[i]`` becomes ``i``; y must hold only ``classes``."""
    import torch

    lookup = torch.full((max(max(classes), int(y.max()) if y.numel() else 0) + 1,), -1, dtype=torch.long)
    lookup[torch.tensor(list(classes), dtype=torch.long)] = torch.arange(len(classes))
    out = lookup[y.long()]
    if (out < 0).any():
        raise ValueError(f"labels outside {list(classes)} cannot be remapped")
    return out


def task(data: DatasetSplits, classes: Sequence[int], seed: int, per_class: int | None = None) -> DatasetSplits:
    """The classification task of ``classes``: ``per_class`` training examples of each (all
    when None) and every held-out example of them, labels remapped to 0..len(classes)-1."""
    train = pick_per_class(data.y_train, classes, per_class, seed)
    test = pick_per_class(data.y_test, classes, None, seed)
    index = {int(c): i for i, c in enumerate(classes)}

    def relabel(label: int) -> int:
        if label not in index:
            raise ValueError(f"labels outside {list(classes)} cannot be remapped")
        return index[label]

    return DatasetSplits(train=data.train.subset(train).map_labels(relabel),
                         test=data.test.subset(test).map_labels(relabel), num_classes=len(classes))


def _describe(labels: list[int]) -> str:
    if labels and labels == list(range(labels[0], labels[-1] + 1)):
        return f"{labels[0]}-{labels[-1]}"
    return str(labels)


def check_classes(data: DatasetSplits, params: FinetuneParams) -> None:
    """Every class named must have training examples in this dataset, and each task held-out ones."""
    if not data.has_labels or data.metric != "accuracy":
        raise Skip(f"{METHOD} needs a labelled classification dataset (its classes are split into two tasks)")
    train_labels = sorted(int(c) for c in data.y_train.unique())
    test_labels = {int(c) for c in data.y_test.unique()}
    for name in ("source_classes", "target_classes"):
        classes = getattr(params, name)
        missing = [c for c in classes if c not in train_labels]
        if missing:
            raise ValueError(
                f"{name}: class(es) {missing} not in the dataset (its training labels are "
                f"{_describe(train_labels)}, num_classes {data.num_classes})"
            )
        if not test_labels & set(classes):
            raise ValueError(f"{name}: none of the classes {list(classes)} has held-out examples to evaluate on")


def split_tasks(data: DatasetSplits, params: FinetuneParams, seed: int) -> tuple[DatasetSplits, DatasetSplits]:
    """(source, target) tasks of ``data``; see ``task``."""
    check_classes(data, params)
    source = task(data, params.source_classes, seed)
    target = task(data, params.target_classes, seed, params.target_labels_per_class)
    return source, target


# -- the classifier head ------------------------------------------------------------------


def find_head(model: nn.Module) -> tuple[str, nn.Linear]:
    """The last ``nn.Linear`` in module order, with its qualified name ("" for the model itself)."""
    from torch import nn

    head = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            head = (name, module)
    if head is None:
        raise Skip(f"{METHOD} needs a model whose classifier is an nn.Linear; {type(model).__name__} has none")
    return head


def replace_head(model: nn.Module, num_classes: int, seed: int) -> tuple[nn.Module, nn.Linear]:
    """Replace the last ``nn.Linear`` by a new one with ``num_classes`` outputs (same inputs,
    bias, dtype and device), initialised under ``seed``. Returns (model, new head); the model
    is changed in place unless it is itself the Linear, in which case the new head is the model."""
    import torch
    from torch import nn

    name, old = find_head(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None,
                        device=old.weight.device, dtype=old.weight.dtype)
    if not name:
        return new, new
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
    return model, new


@contextmanager
def only_head_trains(model: nn.Module, head: nn.Module) -> Iterator[None]:
    """Within the block only ``head``'s parameters require grad and batch-norm running
    statistics stay as they are (momentum 0); everything is restored on exit."""
    from torch import nn

    keep = {id(p) for p in head.parameters()}
    flags = [(p, p.requires_grad) for p in model.parameters()]
    norms = [(m, m.momentum) for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    try:
        for p, _ in flags:
            p.requires_grad_(id(p) in keep)
        for m, _ in norms:
            m.momentum = 0.0
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        for m, momentum in norms:
            m.momentum = momentum


# -- the method -----------------------------------------------------------------------------


def _size(data: DatasetSplits) -> str:
    return f"{len(data.train)} training / {len(data.test)} held-out examples"


def apply(model: nn.Module, params: FinetuneParams, ctx: Any) -> nn.Module:
    """Pre-train on the source task (unless from_scratch), fine-tune on the target task,
    train the from-scratch reference, and leave ``ctx.data`` on the target task."""
    log, seed = ctx.log, ctx.seed
    source, target = split_tasks(ctx.data, params, seed)
    _, head = find_head(model)
    if head.out_features != ctx.data.num_classes:
        raise Skip(f"{METHOD}: the last nn.Linear ({head.in_features} -> {head.out_features}) is not a classifier "
                   f"for the dataset's {ctx.data.num_classes} classes; cannot tell which layer is the head")
    k_target = target.num_classes
    epochs = params.epochs or ctx.train.epochs
    per_class = params.target_labels_per_class
    short = [c for c, n in zip(params.target_classes, target.y_train.bincount(minlength=k_target).tolist())
             if per_class is not None and n < per_class]
    log(f"{METHOD} ({params.mode}): target task = classes {params.target_classes} as labels 0..{k_target - 1}, "
        f"{_size(target)} ({'all' if per_class is None else per_class} labels per class"
        + (f"; classes {short} have fewer, all of theirs are used" if short else "") + ")")

    if params.mode == "from_scratch":
        model, _ = replace_head(model, k_target, seed + TARGET_HEAD_SALT)
        log(f"main: the fresh model with a {k_target}-class head, {epochs} epochs on the target task "
            "(no pre-training, no reference run)")
        ctx.fit(model, role="main", data=target, epochs=params.epochs)
        ctx.data = target
        return model

    model, _ = replace_head(model, source.num_classes, seed + SOURCE_HEAD_SALT)
    log(f"pretrain: source task = classes {params.source_classes} as labels 0..{source.num_classes - 1}, "
        f"{_size(source)}, {params.pretrain_epochs or ctx.train.epochs} epochs")
    ctx.fit(model, role="pretrain", data=source, epochs=params.pretrain_epochs)

    model, head = replace_head(model, k_target, seed + TARGET_HEAD_SALT)
    if params.mode == "linear_probe":
        trained = sum(p.numel() for p in head.parameters())
        log(f"main: linear probe, a new {k_target}-class head ({trained} parameters) on the frozen backbone, "
            f"{epochs} epochs")
        with only_head_trains(model, head):
            main = ctx.fit(model, role="main", data=target, epochs=params.epochs)
    else:
        log(f"main: full fine-tuning with a new {k_target}-class head, {epochs} epochs")
        main = ctx.fit(model, role="main", data=target, epochs=params.epochs)

    reference, _ = replace_head(ctx.build_model(), k_target, seed + TARGET_HEAD_SALT)
    log(f"reference: the same architecture from scratch on the same target data, {epochs} epochs")
    ref = ctx.fit(reference, role="reference", data=target, epochs=params.epochs)
    if main.final_accuracy is not None and ref.final_accuracy is not None:
        log(f"{METHOD} ({params.mode}): target accuracy {main.final_accuracy:.4f}, from scratch "
            f"{ref.final_accuracy:.4f}, gain {main.final_accuracy - ref.final_accuracy:+.4f}")
    ctx.data = target
    return model
