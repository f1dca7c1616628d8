"""The objects a plugin registers: methods, backends, models and datasets.

Each is a frozen dataclass that names itself, says what kind it is, describes itself
in one line and declares its parameters as a pydantic model (``Params``) with
defaults and bounds. The harness validates suite input against that model, so a
plugin receives parameters that are already typed and in range.
"""
from __future__ import annotations

import abc
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from harness.measure.host_load import BlockLoad
from harness.measure.inputs import call_model, map_tensors
from harness.plugin.data import Preprocess, Split, TensorSplit
from harness.plugin.targets import (
    CLASSIFICATION,
    DETECTION,
    LOSSES,
    REGRESSION,
    TASKS,
    UNLABELLED,
    detector_loss,
    infer_task,
    task_loss,
)

if TYPE_CHECKING:  # torch is heavy; plugin modules import this file at discovery time
    import torch
    from torch import nn

METHOD_KINDS = (
    "baseline",
    "quantizer",
    "pruner",
    "factorizer",
    "sharing",
    "compiler",
    "optimizer",
    "distiller",
    "transfer",
)
PLUGIN_KINDS = METHOD_KINDS[1:] + ("backend", "model", "dataset")
#: What a method of a kind does unless it declares otherwise (``Method.trains``, ``Method.finetune_after``):
#: optimizers, distillers and transfer train a model from scratch; the suite's ``finetune`` schedule runs
#: after pruners and factorizers (the others leave no float weights to train, converted quantizers and
#: compilers, or would be undone by it, weight sharing and simulated quantization).
KIND_BEHAVIOUR: dict[str, dict[str, bool]] = {
    "optimizer": {"trains": True},
    "distiller": {"trains": True},
    "transfer": {"trains": True},
    "pruner": {"finetune_after": True},
    "factorizer": {"finetune_after": True},
}
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(-[a-z0-9_]+)*(\.[a-z0-9_]+(-[a-z0-9_]+)*)*$")


class Params(BaseModel):
    """Base class for a plugin's parameters: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _compiles(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    return value


#: A param that is a regular expression (Python's ``re``): a suite whose value does not compile is
#: rejected with the parser's reason, as for any other bad value.
Regex = Annotated[str, AfterValidator(_compiles)]


class NoParams(Params):
    """For plugins that take no parameters."""


class TrainableParams(Params):
    """The settings the harness trains a model's baseline with (Adam over shuffled mini-batches).

    Subclass it for a model's params so a suite can set them; a trainable model whose params
    lack any of these fields is trained with these defaults (``training_settings``).
    """

    epochs: int = Field(20, ge=0, le=10_000, description="training epochs for the baseline")
    lr: float = Field(1e-3, gt=0.0, le=10.0, description="Adam learning rate")
    batch_size: int = Field(64, ge=1, le=65_536, description="training batch size")


#: The fields of ``TrainableParams``: what the harness reads from a trainable model's params.
TRAINING_FIELDS = tuple(TrainableParams.model_fields)


def training_settings(params: Params) -> dict[str, Any]:
    """epochs, lr and batch_size for training a baseline: each from ``params`` when it has the
    field, else ``TrainableParams``' default, so a model with ``NoParams`` still trains."""
    defaults = TrainableParams()
    return {name: getattr(params, name, getattr(defaults, name)) for name in TRAINING_FIELDS}


@dataclass(frozen=True)
class SuiteRelative:
    """Marks a ``str`` parameter that names a file or folder: ``Annotated[str, SuiteRelative()]``
    (or ``harness.SuitePath``). A relative value is made absolute against the suite file's folder
    when the suite is planned, so every cell, the run's copy of the suite and a ``--resume`` see
    the same file. ``resolve(value, base) -> str`` does it when only part of the value is a path
    (a ``file.py:callable`` reference); by default the whole value is one."""

    resolve: Callable[[str, Path], str] | None = None

    def apply(self, value: str, base: Path) -> str:
        if self.resolve is not None:
            return self.resolve(value, base)
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else (base / path).resolve())


#: A parameter naming a file or folder, relative to the suite file (see ``SuiteRelative``).
SuitePath = Annotated[str, SuiteRelative()]


class ModelRef(Params):
    """A model named inside a method's params (a distiller's teacher).

    The harness checks the name against the installed models and validates ``params``
    against that model's own parameters when the suite is validated.
    """

    name: str
    params: dict[str, Any] = {}


class Skip(Exception):
    """Raise from a method or backend when a cell cannot run here (status ``skipped``).

    The message is the reason a user reads, e.g. "needs CUDA compute capability >= 8.0".
    """

    @classmethod
    def no_layers(cls, method: str, layers: str, model: Any) -> Skip:
        """The Skip for a method that finds nothing to change (``layers``: "nn.Linear"), so a record never
        shows an unchanged model under a method's name. Says why when the model is a saved graph."""
        graph = any(type(m).__name__.startswith(("GraphModule", "RecursiveScriptModule")) or
                    "ScriptModule" in type(m).__name__ for m in model.modules())
        why = (": a torch.export or TorchScript graph keeps its weights without layer modules; apply the method "
               "to the eager model before exporting it" if graph else "")
        return cls(f"{method}: the model has no {layers} layer to change{why}")


class DatasetSplits:
    """A dataset's training and held-out splits (``harness.plugin.data.Split``: samples read by index,
    in memory or streamed from files) and what the task is.

    Build it from two splits, ``DatasetSplits(train=..., test=..., num_classes=...)``, or, for data
    held in memory, from tensors: ``DatasetSplits(x_train, y_train, x_test, y_test, num_classes)``
    (a ``TensorSplit`` each; inputs may be a dict of tensors). Labels are None when the data carries
    no meaningful labels (synthetic input): no model is trained on it and accuracy is null rather
    than a number that means nothing.

    A problem that is not classification (DeepOBS's quadratic) gives its own
    ``objective(output, x, y) -> scalar loss``; its ``metric`` is then "loss", and ``loss_floor``,
    when known exactly, is the lowest value the training objective can take (the target of
    time-to-target).
    """

    def __init__(
        self,
        x_train: Any = None,
        y_train: torch.Tensor | None = None,
        x_test: Any = None,
        y_test: torch.Tensor | None = None,
        num_classes: int = 0,
        objective: Callable[[torch.Tensor, Any, torch.Tensor | None], torch.Tensor] | None = None,
        loss_floor: float | None = None,
        *,
        train: Split | None = None,
        test: Split | None = None,
        task: str | None = None,
        loss_name: str | None = None,
    ) -> None:
        if train is not None or test is not None:
            if train is None or test is None or x_train is not None or x_test is not None:
                raise TypeError("give both train= and test= splits, or the tensors x_train/y_train/x_test/y_test")
        else:
            if x_train is None or x_test is None:
                raise TypeError("DatasetSplits needs train= and test= splits, or x_train and x_test tensors")
            train, test = TensorSplit(x_train, y_train), TensorSplit(x_test, y_test)
        self.train, self.test = train, test
        self.num_classes, self.objective, self.loss_floor = int(num_classes), objective, loss_floor
        if task is not None and task not in TASKS:
            raise ValueError(f"task {task!r}: expected one of {', '.join(TASKS)}")
        if loss_name is not None and loss_name not in LOSSES:
            raise ValueError(f"loss {loss_name!r}: expected one of {', '.join(LOSSES)}")
        self._task, self.loss_name = task, loss_name
        #: The cell's model's way from its outputs to what a metric scores (token ids to text), or None.
        self.postprocess: Callable[[Any], Any] | None = None

    def __repr__(self) -> str:
        return (f"DatasetSplits(train={type(self.train).__name__}[{len(self.train)}], "
                f"test={type(self.test).__name__}[{len(self.test)}], num_classes={self.num_classes})")

    def replace(self, **changes: Any) -> DatasetSplits:
        """A copy with some of ``train``, ``test``, ``num_classes``, ``objective``, ``loss_floor``, ``task``,
        ``loss_name`` changed."""
        fields = {"train": self.train, "test": self.test, "num_classes": self.num_classes,
                  "objective": self.objective, "loss_floor": self.loss_floor, "task": self._task,
                  "loss_name": self.loss_name}
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(f"DatasetSplits has no field(s) {sorted(unknown)}")
        out = DatasetSplits(**{**fields, **changes})
        out.postprocess = self.postprocess
        return out

    def with_preprocess(self, preprocess: Preprocess | None) -> DatasetSplits:
        """Both splits read through a model's ``preprocess`` (raw samples -> its inputs)."""
        if preprocess is None:
            return self
        return self.replace(train=self.train.with_preprocess(preprocess), test=self.test.with_preprocess(preprocess))

    def with_postprocess(self, postprocess: Callable[[Any], Any] | None) -> DatasetSplits:
        """A copy whose metrics score ``postprocess(outputs)`` (a model's token ids decoded to text) instead of
        the model's outputs."""
        out = self.replace()
        out.postprocess = postprocess
        return out

    # -- the in-memory form ------------------------------------------------------------------
    def _tensor(self, split: Split, what: str, part: str) -> Any:
        if isinstance(split, TensorSplit) and split.preprocess is None:
            return split.x if part == "x" else split.y
        raise TypeError(f"DatasetSplits.{what} is only there for data held in memory as tensors; this dataset's "
                        f"{'training' if 'train' in what else 'held-out'} split is a {type(split).__name__} (streamed, "
                        "or read through the model's preprocessing): use data.train / data.test "
                        "(.batches(batch_size), .example(n), .labels)")

    @property
    def x_train(self) -> Any:
        return self._tensor(self.train, "x_train", "x")

    @property
    def y_train(self) -> torch.Tensor | None:
        return self.train.labels

    @property
    def x_test(self) -> Any:
        return self._tensor(self.test, "x_test", "x")

    @property
    def y_test(self) -> torch.Tensor | None:
        return self.test.labels

    # -- what the task is --------------------------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, ...]:
        """One sample's input shape as the model sees it (``input_ids``'s for a dict of tensors)."""
        return self.test.input_shape

    @property
    def has_labels(self) -> bool:
        return self.train.has_labels and self.test.has_labels

    @property
    def task(self) -> str:
        """What the targets are (``harness.plugin.targets.TASKS``): the dataset's or the suite's word, else read
        from the first training target (an integer: classification; a float: regression; ...)."""
        if self._task is None:
            target = self.train.sample(0)[1] if len(self.train) else None
            self._task = infer_task(target, self.num_classes)
        return self._task

    @property
    def outputs(self) -> int:
        """How many values a model outputs per sample (per pixel, for masks) on this task: the classes of a
        classification, the labels of a multi-label task, the classes of a segmentation, the size of one target of
        a regression (1 for a single number)."""
        if self.task == REGRESSION:
            target = self.train.sample(0)[1] if len(self.train) else None
            return int(target.numel()) if hasattr(target, "numel") else 1
        return self.num_classes

    @property
    def metric(self) -> str:
        """What the training loop judges a run by: "accuracy" (classification) or "loss" (an objective, or a
        task scored by its held-out loss)."""
        if self.objective is not None:
            return "loss"
        return "accuracy" if self.task in (CLASSIFICATION, UNLABELLED) else "loss"

    @property
    def trainable(self) -> bool:
        """Whether a model can be trained on this data (labels, or an objective of its own)."""
        return self.objective is not None or self.train.has_labels

    def loss(self, output: torch.Tensor, x: Any, y: Any) -> torch.Tensor:
        """The training loss: the problem's objective, else the task's (``harness.plugin.targets.task_loss``:
        cross-entropy for classes, label -1 ignored; mean squared error for regression; binary cross-entropy
        for multi-label; per-pixel cross-entropy for masks), or the loss the suite named."""
        if self.objective is not None:
            return self.objective(output, x, y)
        if y is None:
            raise ValueError("cannot compute a classification loss without labels")
        return task_loss(self.task, self.loss_name, output, y)

    def model_loss(self, model: Any, x: Any, y: Any) -> torch.Tensor:
        """The training loss of ``model`` on one batch: ``loss`` of its outputs, or, for detection targets, the
        sum of the losses the detector computes itself given them (``harness.plugin.targets.detector_loss``)."""
        if self.objective is None and self.task == DETECTION:
            return detector_loss(model, x, y)
        return self.loss(call_model(model, x), x, y)


#: Facts a method may report with ``ctx.report``; each becomes a record field.
REPORTABLE_FACTS = {
    "model_bytes": "effective tensor storage in bytes when the in-memory model does not show it "
    "(simulated quantization, codebooks); the harness adds the checkpoint container's overhead "
    "so it compares with the baseline's serialized size; serialized_bytes keeps the real length",
    "bits_per_param": "effective bits per parameter; default model_bytes * 8 / params_count",
    "compile_s": "seconds spent compiling (compilers), part of setup_s",
}


@dataclass
class MethodContext:
    """What a method may use besides the model: data for calibration or fine-tuning, the device.

    ``batch_sizes`` are the batch sizes that will be measured (a compiler may warm each).
    ``report(**facts)`` records facts the harness cannot measure itself; see
    ``REPORTABLE_FACTS`` for the keys it knows.
    """

    data: DatasetSplits
    device: torch.device
    backend: str
    seed: int
    log: Callable[[str], None] = print
    batch_sizes: tuple[int, ...] = (1,)
    facts: dict[str, Any] = field(default_factory=dict)

    def report(self, **facts: Any) -> None:
        unknown = set(facts) - set(REPORTABLE_FACTS)
        if unknown:
            raise ValueError(f"unknown fact(s) {sorted(unknown)}; known: {sorted(REPORTABLE_FACTS)}")
        self.facts.update(facts)


@dataclass(frozen=True)
class Method:
    """A technique that changes a trained model (or how it is trained).

    ``apply(model, params, ctx)`` returns the changed model (it may change ``model`` in
    place and return it). It runs on CPU before the model is moved to the backend.
    """

    name: str
    kind: str
    description: str
    apply: Callable[[nn.Module, Any, MethodContext], nn.Module]
    params: type[Params] = NoParams
    #: The backends it runs on (a runtime's own quantizer: that runtime's backend); None: every one. On
    #: another backend the cell is skipped with the reason before its model or data are loaded.
    backends: tuple[str, ...] | None = None
    #: Modules its cells import that are slow to import (scikit-learn, transformers, an inference
    #: runtime): a run whose suite uses it imports them once, in the process cells are forked from,
    #: instead of once per cell.
    preload: tuple[str, ...] = ()
    #: Trains its model from scratch through ``ctx.fit`` (its ctx is a ``TrainingContext``, its cells carry the
    #: suite's ``train`` budget) instead of changing a trained model. None: what its kind does
    #: (``KIND_BEHAVIOUR``). Only the first step of a pipeline may train.
    trains: bool | None = None
    #: The suite's ``finetune`` schedule runs after it (after the last such step of a pipeline). None: what
    #: its kind does (``KIND_BEHAVIOUR``).
    finetune_after: bool | None = None
    plugin_type: ClassVar[str] = "method"

    def __post_init__(self) -> None:
        usual = KIND_BEHAVIOUR.get(self.kind, {})
        for flag in ("trains", "finetune_after"):
            if getattr(self, flag) is None:
                object.__setattr__(self, flag, usual.get(flag, False))


@dataclass(frozen=True)
class Model:
    """A model architecture. ``build(params, data)`` returns an untrained module.

    When ``trainable`` and the dataset has labels, the harness trains it with the
    params' ``epochs``/``lr``/``batch_size`` (see ``TrainableParams``) and caches the
    weights, so every method starts from the same trained baseline; with ``epochs`` 0 the
    module is used as built (its own or self-loaded weights), accuracy included. When not
    ``trainable``, unless the suite gives a ``checkpoint``, the weights are random: latency,
    memory and size are measured and accuracy is null.
    """

    name: str
    description: str
    build: Callable[[Any, DatasetSplits], nn.Module]
    params: type[Params] = NoParams
    trainable: bool = True
    #: ``fingerprint(params) -> str``: anything besides the params that shapes the trained weights
    #: (a hash of the model's source files); the harness adds it to the weight cache's key.
    fingerprint: Callable[[Any], str] | None = None
    #: ``preprocess(params, data) -> (raw samples -> inputs) | None``: the model's own way from a dataset's
    #: raw samples to its inputs (a tokenizer, a weights' transforms); the harness reads every split of
    #: the cell through it, so one dataset serves many models. None: the dataset's own collate.
    preprocess: Callable[[Any, DatasetSplits], Preprocess | None] | None = None
    #: ``postprocess(params, data) -> (outputs -> predictions) | None``: the model's own way from its outputs to
    #: what its task's metrics score (a seq2seq model's generated token ids, decoded to text by its tokenizer).
    postprocess: Callable[[Any, DatasetSplits], Callable[[Any], Any] | None] | None = None
    #: ``pretrained(params) -> bool``: whether ``build`` returns trained weights for these params (a hub
    #: model, torchvision ``weights``); a model the harness does not train is then evaluated as built.
    pretrained: Callable[[Any], bool] | None = None
    #: Modules its cells import that are slow to import (scikit-learn, transformers, an inference
    #: runtime): a run whose suite uses it imports them once, in the process cells are forked from,
    #: instead of once per cell.
    preload: tuple[str, ...] = ()
    #: ``language_model(params) -> harness.LanguageModel | None``: the model is a causal language model
    #: (its tokenizer, context and generation), measured for perplexity, next-token drift and, with
    #: ``measure.generate``, generation speed. It must be cheap (it runs when the suite is planned).
    language_model: Callable[[Any], Any] | None = None
    kind: str = "model"
    plugin_type: ClassVar[str] = "model"


@dataclass(frozen=True)
class Dataset:
    """A dataset. ``load(params, seed)`` returns its training and held-out splits (``DatasetSplits``)."""

    name: str
    description: str
    load: Callable[[Any, int], DatasetSplits]
    params: type[Params] = NoParams
    #: ``fingerprint(params) -> str``: anything besides the params that shapes the samples (the data
    #: files' sizes and times, a factory's source); the harness adds it to the weight cache's key, so
    #: a model trained on the data is retrained when the data changes.
    fingerprint: Callable[[Any], str] | None = None
    #: Modules its cells import that are slow to import (scikit-learn, transformers, an inference
    #: runtime): a run whose suite uses it imports them once, in the process cells are forked from,
    #: instead of once per cell.
    preload: tuple[str, ...] = ()
    kind: str = "dataset"
    plugin_type: ClassVar[str] = "dataset"


@dataclass(frozen=True)
class Backend:
    """Where a model runs and how time and memory are read there.

    ``create(params)`` returns a ``BackendSession`` used for one cell.
    """

    name: str
    description: str
    create: Callable[[Any], BackendSession]
    params: type[Params] = NoParams
    #: Modules its cells import that are slow to import (scikit-learn, transformers, an inference
    #: runtime): a run whose suite uses it imports them once, in the process cells are forked from,
    #: instead of once per cell.
    preload: tuple[str, ...] = ()
    kind: str = "backend"
    plugin_type: ClassVar[str] = "backend"


@dataclass
class MemoryReading:
    """Memory figures for one measured window; keys become record fields."""

    fields: dict[str, float | None] = field(default_factory=dict)


class BackendSession(abc.ABC):
    """One backend opened for one cell, inside the cell's own process.

    Optional capabilities are declared, not detected: ``times_whole_calls`` (its ``time_model`` spreads one
    call over several devices or processes), ``deployed_bytes`` (what it runs is not the torch module
    itself but something made from it, whose size is the model's size there).
    """

    #: Cells whose latency is timed on the same device key never run at the same time.
    device_key: str = "cpu"
    #: True when ``time_model`` is the backend's own (a call spread over several devices or processes): the
    #: harness then times a point in one window with it, judges that window's contention instead of
    #: re-measuring blocks, and does not pair it with the baseline.
    times_whole_calls: ClassVar[bool] = False

    @abc.abstractmethod
    def unavailable_reason(self) -> str | None:
        """None when this backend can run here, else why not (the cell is skipped)."""

    @abc.abstractmethod
    def setup(self) -> dict[str, Any]:
        """Fix threads, device and so on; returns facts recorded with each record."""

    @property
    @abc.abstractmethod
    def device(self) -> torch.device: ...

    def prepare_model(self, model: nn.Module) -> nn.Module:
        return model.to(self.device).eval()

    def prepare_input(self, x: Any) -> Any:
        """A batch of inputs (a tensor or a dict of tensors) made ready for this backend."""
        return map_tensors(x, lambda t: t.to(self.device))

    @abc.abstractmethod
    def time_calls(self, fn: Callable[[], Any], warmup: Any, repeat: Any) -> list[int]:
        """Warm up, then time calls of ``fn``; returns one duration in ns per call."""

    def time_model(self, model: nn.Module, x: Any, warmup: Any, repeat: Any) -> list[int]:
        """Time ``model(x)`` (``model(**x)`` for a dict; x from ``prepare_input``): ``time_calls`` around one
        call by default.

        A backend that spreads a call over several devices or processes overrides this and sets
        ``times_whole_calls``; it may add record fields to the reading of the enclosing ``memory_window``.
        """
        return self.time_calls(lambda: call_model(model, x), warmup, repeat)

    def deployed_bytes(self) -> int | None:
        """The size of what this backend runs for the cell's model (an exported graph a runtime loads), read
        after the model was prepared and timed; it becomes the record's ``model_bytes`` (and so its size
        ratio). None: the model is the torch module itself, whose ``torch.save`` size the harness measures."""
        return None

    def pairing_unavailable(self) -> str | None:
        """None when a compression cell's model and its baseline can be timed in alternating blocks
        here (``harness.measure.pairing``), else why not (the speedup is then the ratio of separately
        measured medians, and the record says so). Paired timing holds both models at once and reads
        memory from the host: it is offered for CPU devices that time one call at a time."""
        if self.times_whole_calls:
            return f"{type(self).__name__} times a call in its own way (time_model), which pairing does not repeat"
        if getattr(self.device, "type", "cpu") != "cpu":
            return f"paired timing is implemented for CPU backends; on {self.device} both models would share the device"
        return None

    def block_load(self) -> Any:
        """A probe around one timed block (a context manager; after it, ``wait_share``, ``other_cores``
        and ``wall_s``, as ``harness.measure.host_load.BlockLoad`` reads them): how contended the
        machine was while it ran. A contended block is measured again (``harness.measure.contention``).
        A backend whose work runs elsewhere (another host, a device the host cannot see) may read
        its own."""
        return BlockLoad()

    @contextmanager
    def memory_window(self, batch_size: int | None = None) -> Iterator[MemoryReading]:
        """Reset peak counters on entry; fill the reading's fields on exit.

        ``batch_size`` is the batch of the calls timed inside the window (to turn a
        window's energy into energy per sample).
        """
        yield MemoryReading()

    def run_training(self, train: Callable[..., Any], modules: Sequence[nn.Module], role: str) -> Any:
        """Run one training run of a training-time method: ``train(device)`` returns its
        ``harness.train.fit.FitResult`` and leaves the trained weights in ``modules`` (the model
        first, then any trained extras). Here: in this process, on ``self.device``.

        A backend that trains across processes overrides this: it calls ``train`` in each
        rank with torch.distributed initialised (``fit`` then trains data-parallel), copies
        rank 0's weights back into ``modules`` and returns rank 0's result. ``train(device,
        max_epochs)`` caps the epochs, for a shorter reference run on one device.
        """
        return train(self.device)

    def info(self) -> dict[str, Any]:
        """Facts about the hardware for env.json."""
        return {}
