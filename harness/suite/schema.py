"""The suite schema: what a suite YAML file may say, validated at the edge.

Unknown keys are errors everywhere (``extra="forbid"``). Plugin names and plugin
parameters are checked in a second step (harness.suite.matrix) against what is installed.
A plain string where an entry is expected is shorthand for ``{name: <string>}``.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator


def _entry(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Entry(_Strict):
    name: str = Field(min_length=1, description="name of an installed plugin")
    params: dict[str, Any] = Field(default_factory=dict, description="the plugin's parameters")


class MetricEntry(_Strict):
    """A quality metric: a registered metric's name, a torchmetrics class by its import path
    (``torchmetrics.regression.R2Score``), or a class or function of your own (``metrics.py:evaluate``)."""

    name: str = Field(min_length=1, description="a metric's name, torchmetrics.<module>.<Class>, or "
                                                "'file.py:callable' / 'module:callable'")
    id: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]*$", description="its name in records (default: the "
                                                                            "metric's name, a class's in snake case)")
    params: dict[str, Any] = Field(default_factory=dict, description="the metric's params (a class's or function's "
                                                                     "keyword arguments)")
    higher_is_better: bool | None = Field(None, description="whether a higher score is better (default: the "
                                                            "metric's own word; true for a function)")


MetricItem = Annotated[MetricEntry, BeforeValidator(_entry)]
TASK_NAMES = Literal["classification", "regression", "multilabel", "segmentation", "detection", "seq2seq"]
LOSS_NAMES = Literal["cross_entropy", "mse", "l1", "smooth_l1", "bce"]


class DatasetEntry(Entry):
    id: str | None = Field(None, min_length=1, description="id, unique in the suite (default: name)")
    task: TASK_NAMES | None = Field(None, description="what the targets are (default: the dataset's word, else read "
                                                      "from them)")
    metrics: list[MetricItem] | None = Field(
        None, min_length=1, description="how quality is scored on it, the first in the record's `quality` (default: "
                                        "measure.metrics, else the task's own)")
    loss: LOSS_NAMES | None = Field(None, description="the loss models trained on it use (default: the task's: "
                                                      "cross-entropy, mse, bce)")

    @property
    def display_id(self) -> str:
        return self.id or self.name


class TrainOverride(_Strict):
    """Training settings for one model, over the suite's ``train`` (unset keys inherit)."""

    epochs: int | None = Field(None, ge=1, le=100_000, description="passes over the training inputs")
    batch_size: int | None = Field(None, ge=1, le=1_000_000, description="training mini-batch size")
    eval_every: int | None = Field(None, ge=1, le=100_000, description="evaluate every N epochs (and after the last)")
    target_accuracy: float | None = Field(None, gt=0.0, le=1.0, description="held-out accuracy that counts as reached")
    target_loss: float | None = Field(
        None, description="training objective that counts as reached (default: 1% above a known loss floor)"
    )
    optimizer: Literal["adam", "sgd"] | None = Field(None, description="optimizer of methods that do not bring one")
    lr: float | None = Field(None, gt=0.0, le=10.0, description="its learning rate")


class Train(TrainOverride):
    """The shared training budget of training-time methods (optimizers, distillers, transfer)."""

    epochs: int = Field(10, ge=1, le=100_000, description="passes over the training inputs")
    batch_size: int = Field(64, ge=1, le=1_000_000, description="training mini-batch size")
    eval_every: int = Field(1, ge=1, le=100_000, description="evaluate every N epochs (and after the last)")
    optimizer: Literal["adam", "sgd"] = Field("adam", description="optimizer of methods that do not bring one")
    lr: float = Field(1e-3, gt=0.0, le=10.0, description="its learning rate")

    def merged(self, override: TrainOverride | None) -> Train:
        if override is None:
            return self
        return self.model_copy(update=override.model_dump(exclude_unset=True))


class ModelEntry(Entry):
    id: str | None = Field(None, min_length=1, description="display id, unique in the suite (default: name)")
    checkpoint: str | None = Field(
        None, description="path to a state_dict to load instead of training (relative to the suite file)"
    )
    datasets: list[str] | None = Field(
        None, min_length=1, description="pair this model only with these dataset ids (default: all)"
    )
    batch_sizes: list[Annotated[int, Field(ge=1, le=1_000_000)]] | None = Field(
        None, min_length=1, description="measure this model at these batch sizes (default: measure.batch_sizes)"
    )
    train: TrainOverride | None = Field(None, description="this model's training budget, over the suite's `train`")

    @property
    def display_id(self) -> str:
        return self.id or self.name


StepItem = Annotated[Entry, BeforeValidator(_entry)]


class MethodEntry(_Strict):
    """One method, or a pipeline of methods applied in order (``pipeline: [..]``)."""

    name: str | None = Field(None, min_length=1, description="name of an installed method plugin")
    params: dict[str, Any] = Field(default_factory=dict, description="the method's parameters")
    pipeline: list[StepItem] | None = Field(None, min_length=1, description="methods applied in order")
    id: str | None = Field(None, min_length=1, description="display id (default: name)")
    models: list[str] | None = Field(
        None, min_length=1, description="apply this method only to these model ids (default: every model)"
    )

    @model_validator(mode="after")
    def _one_of(self) -> MethodEntry:
        if (self.name is None) == (self.pipeline is None):
            raise ValueError("give either `name` (one method) or `pipeline` (a list of methods), not both")
        if self.pipeline is not None and self.params:
            raise ValueError("a pipeline takes params per step: pipeline: [{name: ..., params: {...}}]")
        return self


class Budget(_Strict):
    min_iters: int = Field(ge=1, le=10_000_000, description="at least this many calls")
    min_seconds: float = Field(ge=0.0, le=3600.0, description="and at least this long, in seconds")


class Repeat(Budget):
    target_rel_ci: float | None = Field(
        None, gt=0.0, lt=1.0,
        description="then go on until the 95% interval of the median (of the paired speedup, in a compression "
                    "cell) is within this share of it, e.g. 0.02; null: stop at the minimums")
    max_seconds: float | None = Field(None, gt=0.0, le=3600.0,
                                      description="never time longer than this (the record says whether the target "
                                                  "was reached); needed with target_rel_ci")

    @model_validator(mode="after")
    def _capped(self) -> Repeat:
        if self.target_rel_ci is not None and self.max_seconds is None:
            raise ValueError("target_rel_ci needs max_seconds, the most time a measurement may take")
        if self.max_seconds is not None and self.max_seconds < self.min_seconds:
            raise ValueError(f"max_seconds ({self.max_seconds}) is below min_seconds ({self.min_seconds})")
        return self


class Generate(_Strict):
    """Generation timing for causal language models (a model whose plugin declares ``language_model``):
    greedy, exactly ``new_tokens`` new tokens per prompt, at each batch size and prompt length."""

    prompt_tokens: list[Annotated[int, Field(ge=1, le=1_000_000)]] = Field(
        min_length=1, description="prompt lengths in tokens (real held-out text); one record per batch size and "
                                  "prompt length")
    new_tokens: int = Field(64, ge=1, le=1_000_000, description="tokens generated per prompt (never fewer: "
                                                                "end-of-sequence does not stop it)")
    batch_sizes: list[Annotated[int, Field(ge=1, le=1_000_000)]] | None = Field(
        None, min_length=1, description="sequences generated at once (default: measure.batch_sizes)")

    @field_validator("prompt_tokens", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, int) and not isinstance(value, bool) else value


class Perplexity(_Strict):
    """Perplexity of a causal language model on the dataset's held-out text, with a sliding window."""

    window: int | None = Field(None, ge=2, le=1_000_000, description="tokens per window (default and most: the "
                                                                     "model's context)")
    stride: int | None = Field(None, ge=1, le=1_000_000, description="tokens between window starts (default: "
                                                                     "half the window); each window scores only "
                                                                     "the tokens the last one did not")
    max_tokens: int = Field(16384, ge=2, le=100_000_000, description="read at most this many held-out tokens")
    batch: int = Field(4, ge=1, le=4096, description="windows per forward pass")


class Measure(_Strict):
    batch_sizes: list[Annotated[int, Field(ge=1, le=1_000_000)]] = Field(
        default_factory=lambda: [1], min_length=1, description="one record per batch size"
    )
    warmup: Budget = Field(default_factory=lambda: Budget(min_iters=10, min_seconds=0.5))
    # The quickstart's rule (benchmarks/quickstart_precision.py: 38 s at a 1.7% median half-width against
    # 52 s for the fixed 2 s it replaced); a cell that cannot get that precise stops at 5 s.
    repeat: Repeat = Field(default_factory=lambda: Repeat(min_iters=30, min_seconds=0.5, target_rel_ci=0.02,
                                                          max_seconds=5.0))
    paired: bool = Field(True, description="time each compression cell's model against the baseline's in "
                                           "alternating blocks in one process: the speedup and its 95% interval "
                                           "come from those pairs (CPU backends)")
    remeasure_contended: int = Field(
        6, ge=0, le=1000,
        description="timed blocks measured again, per batch size, when the cell's threads waited for a CPU "
                    "or other processes kept more than half a core busy; past that, a record mostly measured "
                    "under contention is "
                    "marked contended. 0: mark only")
    accuracy: bool = Field(True, description="score quality on the held-out split (accuracy for classes, the "
                                             "task's metrics otherwise)")
    metrics: list[MetricItem] | None = Field(
        None, min_length=1, description="how quality is scored, for every dataset that names none (default: the "
                                        "task's own: accuracy, rmse and r2, f1 and average_precision, miou)")
    fidelity_samples: int = Field(
        512, ge=0, le=1_000_000,
        description="compare the method's outputs with the baseline's on this many test inputs "
        "(agreement, kl_div, cosine, max_abs_err); 0 turns it off",
    )
    generate: Generate | None = Field(
        None, description="causal language models: time greedy generations (TTFT, TPOT, tokens/s) instead of one "
                          "forward pass")
    perplexity: Perplexity = Field(default_factory=Perplexity,
                                   description="causal language models: perplexity and next-token drift on the "
                                               "held-out text")


class AccuracyGate(_Strict):
    """MLPerf-style quality target relative to the baseline (relative 0.01 = the 99% tier) on any metric, an
    absolute floor, and/or minimum output fidelity against the baseline (``agreement``, ``cosine``), which
    need no labels. A lower-is-better metric (rmse) is judged the other way round: ``relative`` 0.01 lets it
    rise 1% above the baseline's, ``floor`` is then a ceiling.

    A record passes when every criterion that can be judged for it holds. A metric the baseline has but the
    method's model could not be scored on fails the gate; one the baseline lacks too (no labels, random
    weights) leaves it unjudged; with nothing judgeable, passes_gate is null.
    """

    metric: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]*$",
                               description="the metric `relative`, `absolute` and `floor` judge (default: the "
                                           "record's quality: the first metric, accuracy for classes)")
    relative: float | None = Field(None, ge=0.0, le=1.0, description="pass when the metric >= baseline x "
                                                                     "(1 - relative) (<= x (1 + relative) when lower "
                                                                     "is better)")
    absolute: float | None = Field(None, ge=0.0, description="pass when the metric >= baseline - absolute "
                                                             "(<= baseline + absolute when lower is better)")
    floor: float | None = Field(None, description="pass when the metric >= this (<= this when lower is better)")
    agreement: float | None = Field(None, ge=0.0, le=1.0,
                                    description="pass when the top-1 predictions agree with the baseline's this often")
    cosine: float | None = Field(None, ge=-1.0, le=1.0,
                                 description="pass when the outputs' mean cosine similarity to the baseline's is this high")

    @model_validator(mode="after")
    def _criteria(self) -> AccuracyGate:
        if self.relative is not None and self.absolute is not None:
            raise ValueError("give one of `relative` or `absolute`, not both")
        if all(v is None for v in (self.relative, self.absolute, self.floor, self.agreement, self.cosine)):
            raise ValueError("give at least one of `relative`, `absolute`, `floor`, `agreement` or `cosine`")
        if self.metric is not None and self.relative is None and self.absolute is None and self.floor is None:
            raise ValueError("`metric` names what `relative`, `absolute` or `floor` judge: give one of them")
        return self

    @property
    def judges_accuracy(self) -> bool:
        return self.relative is not None or self.absolute is not None or self.floor is not None

    def passes(self, value: float, baseline: float | None, higher_is_better: bool = True) -> bool:
        """The metric criteria alone (true when the gate sets none): against the baseline's score and the floor."""
        sign = 1.0 if higher_is_better else -1.0
        if baseline is not None and (self.relative is not None or self.absolute is not None):
            if self.relative is not None:
                bound = baseline * (1 - sign * self.relative)
            else:
                bound = baseline - sign * (self.absolute or 0.0)
            if sign * (value - bound) < -1e-12:
                return False
        return self.floor is None or sign * (value - self.floor) >= -1e-12

    def verdict(self, value: float | None, baseline: float | None, agreement: float | None, cosine: float | None,
                higher_is_better: bool = True) -> bool | None:
        """Whether a record passes: every judgeable criterion holds (a metric the baseline has and the record lacks
        fails); None when none is judgeable."""
        checks = []
        if self.judges_accuracy:
            if value is not None and (baseline is not None or self.floor is not None):
                checks.append(self.passes(value, baseline, higher_is_better))
            elif value is None and baseline is not None:
                checks.append(False)  # the baseline could be scored and this model could not
        if self.agreement is not None and agreement is not None:
            checks.append(agreement >= self.agreement - 1e-12)
        if self.cosine is not None and cosine is not None:
            checks.append(cosine >= self.cosine - 1e-12)
        return all(checks) if checks else None

    def describe(self) -> str:
        parts = [f"on {self.metric}"] if self.metric else []
        if self.relative is not None:
            parts.append(f"relative {self.relative:g}")
        if self.absolute is not None:
            parts.append(f"absolute {self.absolute:g}")
        if self.floor is not None:
            parts.append(f"floor {self.floor:g}")
        if self.agreement is not None:
            parts.append(f"agreement >= {self.agreement:g}")
        if self.cosine is not None:
            parts.append(f"cosine >= {self.cosine:g}")
        return ", ".join(parts)


class Finetune(_Strict):
    """One schedule applied identically after every pruner or factorizer (ShrinkBench's rule)."""

    epochs: int = Field(ge=0, le=10_000, description="fine-tuning epochs")
    lr: float = Field(1e-4, gt=0.0, le=10.0)
    optimizer: Literal["adam", "sgd"] = "adam"
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="sgd only")
    batch_size: int = Field(64, ge=1, le=65_536)


RAY_ONLY = ("address", "cpus_per_cell", "gpus_per_cell", "max_concurrent")


class Execution(_Strict):
    """Where and how cells run: ``local`` (one at a time, here) or ``ray`` (a Ray cluster)."""

    timeout_s: float = Field(600.0, gt=0.0, le=7 * 24 * 3600, description="wall-clock limit per cell")
    memory_limit_mb: float | None = Field(
        None, ge=256, le=2**30,
        description="the most memory (MB) a cell's process may map, children included (default: 80% of this "
                    "machine's memory, at least 1 GiB left to the system); a cell past it ends as status oom")
    log_limit_mb: float = Field(20.0, gt=0.0, le=100_000, description="a cell's log.txt keeps at most this many MB "
                                                                      "of its output (local executor)")
    executor: Literal["local", "ray"] = Field(
        "local", description="local: one cell at a time on this machine; ray: cells as Ray tasks (pip install "
                             "'optbench[ray]')"
    )
    address: str = Field(
        "local", pattern=r"^(auto|local|(ray://)?[^\s:/]+:\d{1,5})$",
        description="ray only: local (start a Ray instance on this machine), auto (join the running cluster: "
                    "RAY_ADDRESS, else the one started on this machine), host:port (the head's GCS address, "
                    "as `ray start --head` prints it) or ray://host:port (Ray client)",
    )
    cpus_per_cell: float = Field(1.0, gt=0.0, le=1024, description="ray only: CPUs reserved by each cell's task")
    gpus_per_cell: float = Field(0.0, ge=0.0, le=64, description="ray only: GPUs reserved by each cell's task")
    max_concurrent: int | None = Field(
        None, ge=1, le=100_000, description="ray only: at most this many cells at once (default: what fits)"
    )
    timing_exclusive: bool = Field(
        True, description="ray only: never run two cells on the same device of the same node at once (every "
                          "cell times latency); false overlaps them, which skews latency figures",
    )

    @model_validator(mode="after")
    def _ray_keys_need_ray(self) -> Execution:
        # Compared with the defaults, not model_fields_set: a run's suite.yaml copy spells every key out.
        given = [k for k in (*RAY_ONLY, "timing_exclusive")
                 if getattr(self, k) != type(self).model_fields[k].default]
        if self.executor == "local" and given:
            raise ValueError(f"{', '.join(given)}: only meaningful with `executor: ray`")
        return self


DatasetItem = Annotated[DatasetEntry, BeforeValidator(_entry)]
ModelItem = Annotated[ModelEntry, BeforeValidator(_entry)]
MethodItem = Annotated[MethodEntry, BeforeValidator(_entry)]
BackendItem = Annotated[Entry, BeforeValidator(_entry)]


class Suite(_Strict):
    name: str = Field(
        min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="results go to <results>/<name>/<run-id>/",
    )
    description: str = ""
    seed: int = Field(0, ge=0, le=2**31 - 1, description="seed of every cell (or give `seeds`)")
    seeds: list[Annotated[int, Field(ge=0, le=2**31 - 1)]] | None = Field(
        None, min_length=1, description="run every cell once per seed; reports give mean and std over them"
    )
    datasets: list[DatasetItem] = Field(min_length=1)
    models: list[ModelItem] = Field(min_length=1)
    methods: list[MethodItem] = Field(default_factory=list, description="baseline is always added")
    backends: list[BackendItem] = Field(default_factory=lambda: [Entry(name="cpu")], min_length=1)
    reference_backend: str | None = Field(
        None, min_length=1, description="the backend whose baseline every record's reference_speedup is "
                                        "against (default: the first of `backends`; of several entries of "
                                        "one name, the first)")
    measure: Measure = Field(default_factory=Measure)
    execution: Execution = Field(default_factory=Execution)
    finetune: Finetune | None = Field(None, description="fine-tune compressed models, same schedule for all")
    accuracy_gate: AccuracyGate | None = Field(None, description="sets passes_gate on every record")
    train: Train = Field(default_factory=Train, description="budget of training-time methods")

    @model_validator(mode="after")
    def _seed_or_seeds(self) -> Suite:
        if self.seeds is not None:
            if "seed" in self.model_fields_set:
                raise ValueError("give `seed` (one) or `seeds` (a list), not both")
            if len(set(self.seeds)) != len(self.seeds):
                raise ValueError(f"`seeds` has duplicates: {self.seeds}")
        return self

    @field_validator("reference_backend")
    @classmethod
    def _reference_is_a_backend(cls, name: str | None, info: ValidationInfo) -> str | None:
        backends = info.data.get("backends")  # absent when the backends themselves are invalid
        names = [b.name for b in backends] if backends else None
        if name is not None and names is not None and name not in names:
            raise ValueError(f"not one of the suite's backends ({', '.join(dict.fromkeys(names))})")
        return name

    @property
    def reference(self) -> Entry:
        """The backend entry reference_speedup is measured against."""
        name = self.reference_backend or self.backends[0].name
        return next(b for b in self.backends if b.name == name)

    @property
    def seed_list(self) -> list[int]:
        return list(self.seeds) if self.seeds is not None else [self.seed]
