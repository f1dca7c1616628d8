"""The one training loop every training-time method runs through.

Optimizers, distillers and transfer methods differ in what they plug in (the
optimizer, the loss, the data, which parameters train), never in how a run is
clocked and judged, so they are compared on equal terms:

- the data order comes from a generator seeded with the cell's seed, and the global
  RNG is reseeded at the start of every fit, so an identical cell gives identical
  numbers on the same machine;
- held-out evaluation happens before training and every ``eval_every`` epochs (and
  after the last), with the training clock paused, as AlgoPerf does: time-to-target
  counts training work only;
- an epoch is ``ceil(N / batch_size)`` optimizer steps, N being every training
  input, whatever subset of them carries labels, so a run on 10% of the labels gets
  the same number of steps as one on all of them;
- a loss that stops being finite ends the run early and marks it ``diverged``.

Every optimizer is stepped with a closure (``Closure``), which is what L-BFGS needs
and the others accept; a second-order method can also get the loss as a function of
a flat parameter vector from it (``Closure.loss_of``).

Data-parallel training: when ``fit`` runs in a process of an initialised
torch.distributed group of W > 1 ranks (the multi-gpu backend starts them), the model
is wrapped in DistributedDataParallel and every global batch (the same seeded order on
every rank) is split W ways; each rank's loss is weighted by its share of the batch, so
the all-reduced gradient, and the loss the optimizer sees, are those of the whole
batch, and a run takes the same steps as on one device. A global batch with fewer
inputs than ranks (an epoch's tail) is skipped on every rank and counted. Rank 0
evaluates, with every rank's clock paused; its FitResult is the run's.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.measure.inputs import batch_size, call_model, map_tensors
from harness.plugin.types import MethodContext, ModelRef

if TYPE_CHECKING:
    import torch
    from torch import nn

    from harness.plugin.data import Split
    from harness.plugin.types import DatasetSplits
    from harness.suite.schema import Train

#: ``loss(model, x, y) -> scalar``; y is None for problems without labels and holds -1
#: for training inputs whose label the run may not see (``keep_unlabelled``).
LossFn = Callable[["nn.Module", "torch.Tensor", "torch.Tensor | None"], "torch.Tensor"]
OptimizerFactory = Callable[[list["torch.nn.Parameter"]], "torch.optim.Optimizer"]
SCHEDULES = ("none", "cosine", "step")
ROLES = ("main", "reference", "pretrain")
#: The target of a loss problem with a known floor, when the suite sets none: 1% above it.
DEFAULT_FLOOR_GAP = 0.01
EVAL_BATCH = 1024


@dataclass
class Shard:
    """This rank's part of a data-parallel step: its share of the global batch and the
    parameters outside the DDP-wrapped model (a distiller's projection) whose gradients
    are averaged by hand."""

    world: int
    share: float  # inputs on this rank / inputs in the global batch
    manual: list[Any]


class Closure:
    """Zero the gradients, compute the loss on the current batch, back-propagate, return it.

    Passed to every ``optimizer.step(closure)``; each call counts as one gradient
    evaluation. ``loss_of(params)`` gives the same batch loss as a function of one flat
    vector holding ``params`` (for Hessians via torch.autograd.functional). Under
    data-parallel training (``shard``) the returned loss is the whole global batch's.
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor | None,
                 params: Sequence[torch.Tensor], shard: Shard | None = None) -> None:
        self.model, self.loss_fn, self.x, self.y, self.params = model, loss_fn, x, y, list(params)
        self.shard = shard
        self.evals = 0

    def __call__(self) -> torch.Tensor:
        import torch

        with torch.enable_grad():
            for p in self.params:
                p.grad = None
            loss = self.loss_fn(self.model, self.x, self.y)
            if self.shard is None:
                loss.backward()
            else:
                loss = self._backward_shard(loss)
        self.evals += 1
        return loss

    def _backward_shard(self, loss: torch.Tensor) -> torch.Tensor:
        """DDP averages gradients over ranks; weighting each rank's mean loss by
        W x (its share of the batch) makes that average the whole batch's gradient."""
        import torch
        import torch.distributed as dist

        shard = self.shard
        (loss * (shard.world * shard.share)).backward()
        grads = [p.grad for p in shard.manual if p.grad is not None]
        if grads:  # parameters DDP does not own: the same average, by hand
            flat = torch.cat([g.flatten() for g in grads])
            dist.all_reduce(flat)
            flat /= shard.world
            for g, piece in zip(grads, torch.split(flat, [g.numel() for g in grads]), strict=True):
                g.copy_(piece.view_as(g))
        total = (loss.detach() * shard.share).reshape(1).clone()
        dist.all_reduce(total)  # the global batch's loss: the same number on every rank
        return total[0]

    def loss_of(self, params: Sequence[torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        """The batch loss as a function of a flat vector of ``params`` (the model's own)."""
        import torch
        from torch.func import functional_call

        from harness.plugin.types import Skip

        if self.shard is not None:
            raise Skip("this method computes an exact Hessian of the batch loss in one process; "
                       "data-parallel (DDP) training splits the batch over ranks, so it is not supported there")
        names = {id(p): n for n, p in self.model.named_parameters()}  # never a DDP wrapper: see above
        missing = [i for i, p in enumerate(params) if id(p) not in names]
        if missing:
            raise ValueError("loss_of: only the model's own parameters can be substituted "
                             f"({len(missing)} of the {len(params)} given are not the model's)")
        keys = [names[id(p)] for p in params]
        shapes = [p.shape for p in params]
        sizes = [p.numel() for p in params]
        model, loss_fn, x, y = self.model, self.loss_fn, self.x, self.y

        class _Substituted:
            def __init__(self, overrides: dict[str, torch.Tensor]) -> None:
                self.overrides = overrides

            def __call__(self, inp: Any) -> torch.Tensor:
                if isinstance(inp, dict):
                    return functional_call(model, self.overrides, (), inp)
                return functional_call(model, self.overrides, (inp,))

        def f(flat: torch.Tensor) -> torch.Tensor:
            pieces = torch.split(flat, sizes)
            return loss_fn(_Substituted({k: v.view(s) for k, v, s in zip(keys, pieces, shapes, strict=True)}), x, y)

        return f


@dataclass
class FitResult:
    """What one training run did; ``curve`` has one point per evaluation."""

    model: Any
    role: str
    metric: str
    curve: list[dict[str, Any]]
    train_time_s: float
    epochs_run: int
    steps_run: int
    grad_evals: int
    diverged: bool
    labelled: int
    target_accuracy: float | None = None
    target_loss: float | None = None
    loss_floor: float | None = None
    time_to_target_s: float | None = None
    epochs_to_target: int | None = None
    steps_to_target: int | None = None
    world_size: int = 1
    skipped_steps: int = 0
    epoch_times: list[float] = field(default_factory=list)
    epoch_samples: list[int] = field(default_factory=list)
    single_rank_samples_per_s: float | None = None

    def _last(self, key: str) -> float | None:
        return self.curve[-1].get(key) if self.curve else None

    @property
    def final_accuracy(self) -> float | None:
        return self._last("test_accuracy")

    @property
    def best_accuracy(self) -> float | None:
        values = [p["test_accuracy"] for p in self.curve if p.get("test_accuracy") is not None]
        return max(values) if values else None

    @property
    def final_loss(self) -> float | None:
        return self._last("test_loss")

    @property
    def final_objective(self) -> float | None:
        return self._last("objective")

    @property
    def samples_per_s(self) -> float | None:
        """Training inputs per second of training time, over every epoch but the first
        (warm-up: allocator, kernel selection, DDP's first buckets) when there are two or more."""
        times, counts = self.epoch_times, self.epoch_samples
        if len(times) >= 2:
            times, counts = times[1:], counts[1:]
        total = sum(times)
        return sum(counts) / total if total > 0 else None

    @property
    def scaling_efficiency(self) -> float | None:
        """Samples/s on W ranks / (W x samples/s of one device alone)."""
        single, rate = self.single_rank_samples_per_s, self.samples_per_s
        if self.world_size < 2 or not single or rate is None:
            return None
        return rate / (self.world_size * single)

    def facts(self) -> dict[str, Any]:
        """The record fields of a main run."""
        return {
            "train_time_s": self.train_time_s,
            "epochs_run": self.epochs_run,
            "steps_run": self.steps_run,
            "grad_evals": self.grad_evals,
            "final_accuracy": self.final_accuracy,
            "best_accuracy": self.best_accuracy,
            "final_loss": self.final_loss,
            "final_objective": self.final_objective,
            "loss_floor": self.loss_floor,
            "target_accuracy": self.target_accuracy,
            "target_loss": self.target_loss,
            "time_to_target_s": self.time_to_target_s,
            "epochs_to_target": self.epochs_to_target,
            "steps_to_target": self.steps_to_target,
            "diverged": self.diverged,
            "train_labels": self.labelled,
            "train_samples_per_s": self.samples_per_s,
            "train_single_rank_samples_per_s": self.single_rank_samples_per_s,
            "train_scaling_efficiency": self.scaling_efficiency,
            "train_skipped_steps": self.skipped_steps if self.world_size > 1 else None,
        }

    def summary(self) -> dict[str, Any]:
        """Header of this run's curve in the side file."""
        return {k: v for k, v in self.facts().items() if k not in ("final_accuracy", "best_accuracy")} | {
            "role": self.role, "metric": self.metric, "world_size": self.world_size}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def labelled_subset(y: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Indices of a class-stratified ``fraction`` of the labels (at least one per class), seeded."""
    import torch

    if fraction >= 1.0:
        return torch.arange(y.shape[0])
    g = torch.Generator().manual_seed(seed + 7919)
    chosen = []
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()
        k = max(1, round(fraction * idx.numel()))
        chosen.append(idx[torch.randperm(idx.numel(), generator=g)[:k]])
    return torch.sort(torch.cat(chosen)).values


def _lr_lambda(schedule: str, total_steps: int) -> Callable[[int], float] | None:
    if schedule == "none":
        return None
    if schedule == "cosine":
        return lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, total_steps) / max(total_steps, 1)))
    if schedule == "step":  # x0.1 after half the steps, x0.01 after three quarters
        return lambda s: 1.0 if s < 0.5 * total_steps else 0.1 if s < 0.75 * total_steps else 0.01
    raise ValueError(f"unknown schedule {schedule!r}; expected one of {SCHEDULES}")


def _sync(device: Any) -> None:
    if getattr(device, "type", str(device)) == "cuda":
        import torch

        torch.cuda.synchronize(device)


def _module_device(module: nn.Module) -> Any:
    import torch

    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


def _process_group() -> tuple[int, int]:
    """(rank, world size) of the torch.distributed group this process is in; (0, 1) if none."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _batch_reader(split: Split, device: Any) -> Callable[[torch.Tensor], Any]:
    """``read(indices) -> inputs on device``: for tensors in memory, moved to the device once and indexed
    there (as fast as before the data contract); otherwise read from the split batch by batch."""
    from harness.plugin.data import TensorSplit

    if isinstance(split, TensorSplit) and split.preprocess is None:
        on_device = map_tensors(split.x, lambda t: t.to(device))
        return lambda idx: map_tensors(on_device, lambda t: t[idx])
    return lambda idx: map_tensors(split.batch(idx.cpu()).inputs, lambda t: t.to(device))


def evaluate(model: nn.Module, data: DatasetSplits, device: Any, *, objective: bool = False) -> dict[str, Any]:
    """Held-out loss and accuracy (null for a loss problem), and for a loss problem the
    full training objective: what a curve point holds besides the clock."""
    import torch

    def mean_loss(split: Split) -> tuple[float, float | None]:
        total, correct, n, labelled = 0.0, 0, 0, split.has_labels
        for batch in split.batches(EVAL_BATCH):
            xb = map_tensors(batch.inputs, lambda t: t.to(device))
            yb = batch.labels.to(device) if batch.labels is not None else None
            out = call_model(model, xb)
            size = batch_size(xb)
            total += float(data.loss(out, xb, yb)) * size
            n += size
            if yb is not None and data.metric == "accuracy":
                correct += int((out.argmax(dim=1) == yb).sum())
        return total / n, (correct / n if labelled and data.metric == "accuracy" else None)

    was_training = model.training
    model.eval()
    with torch.no_grad():
        test_loss, test_acc = mean_loss(data.test)
        point: dict[str, Any] = {"test_loss": _finite(test_loss), "test_accuracy": test_acc}
        if objective:
            point["objective"] = _finite(mean_loss(data.train)[0])
    model.train(was_training)
    return point


def fit(
    model: nn.Module,
    data: DatasetSplits,
    budget: Train,
    *,
    seed: int,
    device: Any = "cpu",
    optimizer: OptimizerFactory | None = None,
    schedule: str = "none",
    loss: LossFn | None = None,
    extra_modules: Iterable[nn.Module] = (),
    frozen_modules: Iterable[nn.Module] = (),
    labels_fraction: float = 1.0,
    keep_unlabelled: bool = False,
    role: str = "main",
    epochs: int | None = None,
    log: Callable[[str], None] = print,
) -> FitResult:
    """Train ``model`` (and ``extra_modules``, e.g. a distiller's projection) on ``data``
    within ``budget`` (epochs, batch size, evaluation cadence, targets).

    ``optimizer`` builds the optimizer from the parameters that require grad (default:
    the budget's optimizer and lr). ``loss(model, x, y)`` replaces the data's own loss.
    ``frozen_modules`` are modules the loss uses without training them (a teacher): they
    are moved to the training device for the run and back afterwards.
    ``labels_fraction`` keeps a stratified share of the labels; the run trains on those
    examples only, unless ``keep_unlabelled``, in which case every input is used and the
    hidden labels read -1 (a distiller's soft targets cover them). Returns the model
    (in eval mode, on the CPU) with its curve and figures in a ``FitResult``.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {ROLES}")
    if not data.trainable:
        raise ValueError("this dataset has neither labels nor an objective: nothing to train on")
    if not 0.0 < labels_fraction <= 1.0:
        raise ValueError(f"labels_fraction must be in (0, 1], got {labels_fraction}")
    run = _FitRun(model, data, budget, seed=seed, device=device, role=role, log=log,
                  epochs=budget.epochs if epochs is None else epochs)
    run.place(list(extra_modules), list(frozen_modules))
    run.make_optimizer(optimizer, schedule, loss)
    run.choose_labels(labels_fraction, keep_unlabelled)
    run.set_targets()
    return run.train()


class _FitRun:
    """One run of ``fit``: its set-up in steps (devices, optimizer, labels, targets), then epochs of steps
    with the clock running and evaluations with it paused."""

    def __init__(self, model: nn.Module, data: DatasetSplits, budget: Train, *, seed: int, device: Any, role: str,
                 log: Callable[[str], None], epochs: int) -> None:
        import torch

        self.model, self.data, self.budget, self.seed, self.role, self.log = model, data, budget, seed, role, log
        self.epochs = epochs
        self.device = torch.device(device)
        torch.manual_seed(seed)
        self.g = torch.Generator().manual_seed(seed)
        self.rank, self.world = _process_group()
        self.elapsed = 0.0
        self.stream: list[torch.Tensor] = []

    def place(self, extra: list[nn.Module], frozen: list[nn.Module]) -> None:
        """The modules on the training device (a DDP wrapper around the model across ranks), and the parameters
        that train."""
        model, device = self.model, self.device
        self.extra = extra
        self.frozen = [(m, _module_device(m)) for m in frozen]
        model.to(device).train()
        for m in extra:
            m.to(device).train()
        for m, _ in self.frozen:
            m.to(device)
        self.net: nn.Module = model
        self.manual: list[Any] = []
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
            owned = {id(p) for p in model.parameters()}
            self.manual = [p for m in extra for p in m.parameters() if p.requires_grad and id(p) not in owned]
        seen, self.params = set(), []
        for p in [*model.parameters(), *(q for m in extra for q in m.parameters())]:
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                self.params.append(p)
        if not self.params:
            raise ValueError("nothing to train: no parameter requires grad")

    def make_optimizer(self, optimizer: OptimizerFactory | None, schedule: str, loss: LossFn | None) -> None:
        import torch

        if optimizer is None:
            lr = self.budget.lr
            optimizer = ((lambda ps: torch.optim.Adam(ps, lr=lr)) if self.budget.optimizer == "adam"
                         else (lambda ps: torch.optim.SGD(ps, lr=lr, momentum=0.9)))
        self.opt = optimizer(self.params)
        self.n_all = len(self.data.train)
        self.bs = self.budget.batch_size
        self.steps_per_epoch = math.ceil(self.n_all / self.bs)
        lam = _lr_lambda(schedule, self.steps_per_epoch * self.epochs)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lam) if lam is not None else None
        data = self.data
        self.loss_fn: LossFn = loss or data.model_loss

    def choose_labels(self, labels_fraction: float, keep_unlabelled: bool) -> None:
        """The labels the run may see: every one, or a stratified share (the others -1, or left out)."""
        import torch

        device = self.device
        self.inputs_at = _batch_reader(self.data.train, device)
        train_labels = self.data.train.labels
        self.y_all = train_labels.to(device) if train_labels is not None else None
        self.labelled = self.n_all
        self.pool = None  # None: every input, one permutation per epoch
        if self.y_all is not None and labels_fraction < 1.0:
            subset = labelled_subset(train_labels, labels_fraction, self.seed).to(device)
            self.labelled = subset.numel()
            if keep_unlabelled:
                hidden = torch.ones(self.n_all, dtype=torch.bool, device=device)
                hidden[subset] = False
                self.y_all = self.y_all.clone()
                self.y_all[hidden] = -1
            else:
                self.pool = subset

    def set_targets(self) -> None:
        data, budget = self.data, self.budget
        self.is_loss = data.metric == "loss"
        floor = data.loss_floor
        self.target_acc = budget.target_accuracy if not self.is_loss else None
        self.target_loss = budget.target_loss
        if self.is_loss and self.target_loss is None and floor is not None:
            self.target_loss = floor + DEFAULT_FLOOR_GAP * abs(floor)
        self.result = FitResult(model=self.model, role=self.role, metric=data.metric, curve=[], train_time_s=0.0,
                                epochs_run=0, steps_run=0, grad_evals=0, diverged=False, labelled=self.labelled,
                                target_accuracy=self.target_acc,
                                target_loss=self.target_loss if self.is_loss else None, loss_floor=floor,
                                world_size=self.world)

    # -- the run -------------------------------------------------------------------------------------
    def reached(self, point: dict) -> bool:
        if self.is_loss:
            return (self.target_loss is not None and point.get("objective") is not None
                    and point["objective"] <= self.target_loss)
        return (self.target_acc is not None and point.get("test_accuracy") is not None
                and point["test_accuracy"] >= self.target_acc)

    def record(self, epoch: int, step: int, train_losses: list[float]) -> None:
        if self.rank != 0:  # rank 0 evaluates for the run; the others wait at the next epoch's barrier
            return
        point = {"epoch": epoch, "step": step, "elapsed_s": self.elapsed,
                 "train_loss": _finite(sum(train_losses) / len(train_losses)) if train_losses else None}
        point.update(evaluate(self.model, self.data, self.device, objective=self.is_loss))
        result = self.result
        result.curve.append(point)
        if result.time_to_target_s is None and self.reached(point):
            result.time_to_target_s, result.epochs_to_target, result.steps_to_target = self.elapsed, epoch, step

    def batches(self) -> Iterable[torch.Tensor]:
        import torch

        n_all, bs, g, device = self.n_all, self.bs, self.g, self.device
        if self.pool is None:
            order = torch.randperm(n_all, generator=g).to(device)
            for start in range(0, n_all, bs):
                yield order[start : start + bs]
            return
        stream = self.stream
        for _ in range(self.steps_per_epoch):  # a stream of permutations of the labelled subset
            need = bs
            parts = []
            while need > 0:
                if not stream:
                    stream.append(self.pool[torch.randperm(self.pool.numel(), generator=g).to(device)])
                take = stream[0][:need]
                stream[0] = stream[0][need:]
                if stream[0].numel() == 0:
                    stream.pop(0)
                parts.append(take)
                need -= take.numel()
            yield torch.cat(parts)

    def pause_point(self) -> None:  # every rank starts the clock together, after rank 0 evaluated
        _sync(self.device)
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def epoch(self, step: int) -> tuple[int, list[float], int]:
        """One epoch of optimizer steps: (the step count after it, the batch losses, the inputs seen)."""
        import torch

        result, world, rank = self.result, self.world, self.rank
        losses: list[float] = []
        seen_inputs = 0
        for idx in self.batches():
            shard = None
            if world > 1:
                global_n = idx.numel()
                if global_n < world:  # a tail too small to split: skipped on every rank alike
                    result.skipped_steps += 1
                    continue
                local = torch.tensor_split(idx, world)[rank]
                shard = Shard(world=world, share=local.numel() / global_n, manual=self.manual)
                seen_inputs += global_n
                idx = local
            else:
                seen_inputs += idx.numel()
            closure = Closure(self.net, self.loss_fn, self.inputs_at(idx),
                              self.y_all[idx] if self.y_all is not None else None, self.params, shard)
            value = self.opt.step(closure)
            if self.sched is not None:
                self.sched.step()
            step += 1
            result.grad_evals += closure.evals
            value = float(value.detach() if hasattr(value, "detach") else value) if value is not None else math.nan
            losses.append(value)
            if not math.isfinite(value):
                result.diverged = True
                break
        return step, losses, seen_inputs

    def train(self) -> FitResult:
        result = self.result
        self.record(0, 0, [])
        step = 0
        for epoch in range(1, self.epochs + 1):
            self.pause_point()
            t0 = time.perf_counter()
            step, losses, seen_inputs = self.epoch(step)
            _sync(self.device)
            took = time.perf_counter() - t0
            self.elapsed += took
            result.epoch_times.append(took)
            result.epoch_samples.append(seen_inputs)
            result.epochs_run, result.steps_run, result.train_time_s = epoch, step, self.elapsed
            if result.diverged or epoch % self.budget.eval_every == 0 or epoch == self.epochs:
                self.record(epoch, step, losses)
            if result.diverged:
                self.log(f"{self.role}: loss is no longer finite at epoch {epoch}, step {step}: stopped (diverged)")
                break
        self.model.eval().to("cpu")
        for m in self.extra:
            m.eval().to("cpu")
        for m, where in self.frozen:
            m.to(where)
        if self.rank == 0:
            self._say()
        return result

    def _say(self) -> None:
        result, world = self.result, self.world
        last = result.curve[-1]
        shown = (f"accuracy {last['test_accuracy']:.4f}" if last.get("test_accuracy") is not None
                 else f"objective {last.get('objective')}")
        reached = (f", target reached at epoch {result.epochs_to_target} ({result.time_to_target_s:.2f}s)"
                   if result.time_to_target_s is not None
                   else ", target not reached" if (self.target_acc or self.target_loss) else "")
        ranks = (f"; data-parallel over {world} ranks, {result.samples_per_s or 0:.0f} samples/s"
                 + (f", {result.skipped_steps} tail batches smaller than {world} skipped" if result.skipped_steps else "")
                 if world > 1 else "")
        self.log(f"{self.role}: {result.epochs_run} epochs, {result.steps_run} steps in {self.elapsed:.2f}s, {shown}"
                 + reached + ranks)


@dataclass
class TrainingContext(MethodContext):
    """What a training-time method gets: the cell's budget and the shared training loop.

    ``fit(model, ...)`` trains through ``harness.train.fit.fit`` with the cell's data, budget,
    seed and device; call it once with ``role="main"`` (the run the record describes),
    and, for a comparison the harness pairs with it, once with ``role="reference"``
    (the record then carries ``accuracy_gain`` = main - reference) or ``"pretrain"``.
    ``build_model()`` gives a fresh, seeded, untrained model (the cell's, or another by
    ``ModelRef``); ``trained_model(ref)`` a trained one, cached like a baseline (a teacher).
    Assign ``ctx.data`` to change what the model is evaluated and measured on (transfer).

    Where a run happens is the backend's business (``BackendSession.run_training``): in
    this process on its device, or data-parallel over several ranks (multi-gpu).
    """

    train: Any = None
    builder: Callable[[ModelRef | None], Any] | None = None
    trainer: Callable[[ModelRef], Any] | None = None
    runs: dict[str, FitResult] = field(default_factory=dict)
    session: Any = None

    def build_model(self, ref: ModelRef | None = None) -> nn.Module:
        import torch

        torch.manual_seed(self.seed)
        return self.builder(ref)

    def trained_model(self, ref: ModelRef) -> nn.Module:
        return self.trainer(ref)

    def fit(self, model: nn.Module, *, role: str = "main", data: DatasetSplits | None = None, **kwargs: Any) -> FitResult:
        if role in self.runs:
            raise ValueError(f"ctx.fit(role={role!r}) was already called in this cell")
        data = data if data is not None else self.data
        if "extra_modules" in kwargs:
            kwargs["extra_modules"] = list(kwargs["extra_modules"])
        epochs = kwargs.pop("epochs", None)
        epochs = self.train.epochs if epochs is None else epochs

        def train(device: Any, max_epochs: int | None = None) -> FitResult:
            return fit(model, data, self.train, seed=self.seed, device=device, role=role, log=self.log,
                       epochs=epochs if max_epochs is None else min(epochs, max_epochs), **kwargs)

        if self.session is None:
            result = train(self.device)
        else:
            result = self.session.run_training(train, [model, *kwargs.get("extra_modules", ())], role)
        self.runs[role] = result
        return result

    def training_facts(self) -> dict[str, Any]:
        main = self.runs.get("main")
        if main is None:
            return {}
        facts = main.facts()
        ref, pre = self.runs.get("reference"), self.runs.get("pretrain")
        facts["reference_accuracy"] = ref.final_accuracy if ref else None
        facts["accuracy_gain"] = (main.final_accuracy - ref.final_accuracy
                                  if ref and main.final_accuracy is not None and ref.final_accuracy is not None else None)
        facts["pretrain_s"] = pre.train_time_s if pre else None
        return facts

    def curves(self) -> dict[str, Any]:
        return {role: {**r.summary(), "points": r.curve} for role, r in self.runs.items()}
