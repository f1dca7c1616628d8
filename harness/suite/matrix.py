"""Expanding a suite into cells: model x dataset x method(+params) x backend.

Each method's params are validated against the plugin's own parameter model. A list
given for a parameter whose type is not itself a list expands into one cell per
value (a grid over every such parameter); for a list-typed parameter, a list of
lists expands. A hyperparameter search, ``lr: {log_grid: [1e-4, 1.0], points: 7}``
or ``lr: {grid: [..]}``, expands the same way and marks the parameter as searched,
so reports pick the best value per method (DeepOBS's protocol). The baseline is
added for every model x dataset x backend x seed and runs first in its group, so
relative figures can be computed as each cell ends. With ``seeds``, the whole matrix
runs once per seed. Cells of training-time methods carry their training budget.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import types
import typing
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from harness.builtin.metrics import default_metric_ids
from harness.errors import Problem, SuiteError, suggest
from harness.record.status import BASELINE
from harness.registry.manager import Registry
from harness.suite.loader import LineMap, format_loc, problems_from_validation
from harness.suite.metric_refs import MetricRef, resolve_metrics
from harness.suite.schema import Entry, Suite


@dataclass(frozen=True, eq=False)
class Resolved:
    """A plugin reference with its params fully resolved (defaults filled in)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    kind: str | None = None
    checkpoint: str | None = None
    search: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        if self.kind == PIPELINE_KIND:
            steps = " > ".join(_step_label(s["name"], s["params"]) for s in self.params["steps"])
            return f"{self.id}: {steps}" if self.id else steps
        shown = self.id or self.name
        if self.kind in ("model", "dataset", "backend"):
            return shown
        return _step_label(shown, self.params)


@dataclass(frozen=True)
class Cell:
    cell_id: str
    model: Resolved
    dataset: Resolved
    method: Resolved
    backend: Resolved
    seed: int
    batch_sizes: tuple[int, ...] = (1,)
    train: dict[str, Any] | None = None
    #: The suite's reference backend (resolved like ``backend``): reference_speedup is against its baseline.
    reference: Resolved | None = None
    #: A causal language model's prompt lengths under ``measure.generate``: a record per batch size and prompt
    #: length, each timing generations; empty: a record per batch size, timing one forward pass.
    prompt_tokens: tuple[int, ...] = ()
    #: The dataset's task and training loss where the suite names them (None: the dataset's own, its task's).
    task: str | None = None
    loss: str | None = None
    #: How quality is scored (the dataset entry's ``metrics``, else ``measure.metrics``; empty: the task's own).
    metrics: tuple[MetricRef, ...] = ()

    @property
    def points(self) -> list[tuple[int, int | None]]:
        """(batch size, prompt length or None) of each record the cell writes, in order."""
        return [(bs, p) for bs in self.batch_sizes for p in (self.prompt_tokens or (None,))]

    @property
    def label(self) -> str:
        return " · ".join((self.model.label, self.dataset.label, self.method.label, self.backend.label))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cell_id(model: Resolved, dataset: Resolved, method: Resolved, backend: Resolved, seed: int,
            train: dict[str, Any] | None = None, task: str | None = None, loss: str | None = None) -> str:
    """Stable hash of what determines a cell's result (not measurement settings: metrics are not part of it).
    A task or loss the suite names is (it changes what the baseline trains on), only when named, so the cells
    of suites that name neither keep their ids."""
    ident: dict[str, Any] = {
        "model": [model.name, model.id, model.params, model.checkpoint],
        "dataset": [dataset.name, dataset.params],
        "method": [method.name, method.params],
        "backend": [backend.name, backend.params],
        "seed": seed,
    }
    if train is not None:
        ident["train"] = train
    if task is not None or loss is not None:
        ident["targets"] = [task, loss]
    blob = json.dumps(ident, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _generates(spec: Any, params: dict) -> bool:
    """Whether a model with these (validated) params is a causal language model (``language_model``)."""
    if getattr(spec, "language_model", None) is None:
        return False
    return spec.language_model(spec.params.model_validate(params)) is not None


def _is_list_type(annotation: Any) -> bool:
    """True for list/tuple/set annotations, also inside Optional[...] or X | None."""
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple, set, frozenset):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_is_list_type(a) for a in typing.get_args(annotation) if a is not type(None))
    return False


class _Collector:
    def __init__(self, file: str | None, lines: LineMap) -> None:
        self.file, self.lines, self.problems = file, lines, []

    def add(self, loc: tuple, message: str, **kw: Any) -> None:
        self.problems.append(Problem(format_loc(loc), message, line=self.lines.line(loc), **kw))


def _choices(items: dict[str, Any]) -> list[str]:
    """Names a suite may use (the baseline is implicit, so it is never offered)."""
    return [n for n, obj in items.items() if getattr(obj, "kind", None) != BASELINE]


def _lookup(reg: Registry, table: str, entry: Entry, loc: tuple, out: _Collector) -> Any:
    items = getattr(reg, table)
    if entry.name not in items:
        out.add(loc + ("name",), f"unknown {table[:-1]} {entry.name!r}", given=repr(entry.name),
                hint=suggest(entry.name, _choices(items)))
        return None
    return items[entry.name]


def _validate_params(model: type[BaseModel], params: dict, loc: tuple, out: _Collector) -> dict | None:
    try:
        return model.model_validate(params).model_dump(mode="json")
    except ValidationError as exc:
        out.problems += problems_from_validation(exc, out.lines, prefix=loc + ("params",), model=model)
        return None


SEARCH_KEYS = ("log_grid", "grid")
MAX_GRID_POINTS = 100


def is_search(value: Any) -> bool:
    """``{log_grid: [lo, hi], points: n}`` or ``{grid: [..]}``: a searched hyperparameter."""
    return isinstance(value, dict) and any(k in value for k in SEARCH_KEYS)


def search_keys(params: dict) -> tuple[str, ...]:
    return tuple(k for k, v in params.items() if is_search(v))


def _search_values(value: dict, loc: tuple, out: _Collector) -> list[Any] | None:
    """The values a search spec stands for, or None after adding a problem."""
    if "grid" in value:
        if set(value) != {"grid"} or not isinstance(value["grid"], list) or not value["grid"]:
            out.add(loc, "a grid search is {grid: [value, ...]} with at least one value", given=repr(value))
            return None
        return list(value["grid"])
    extra = set(value) - {"log_grid", "points"}
    bounds, points = value.get("log_grid"), value.get("points", 5)
    ok = (not extra and isinstance(bounds, list) and len(bounds) == 2
          and all(isinstance(b, (int, float)) and not isinstance(b, bool) and b > 0 for b in bounds)
          and bounds[0] < bounds[1] and isinstance(points, int) and not isinstance(points, bool)
          and 2 <= points <= MAX_GRID_POINTS)
    if not ok:
        out.add(loc, "invalid log-grid search", given=repr(value),
                expected=f"{{log_grid: [low, high], points: n}} with 0 < low < high and 2 <= n <= {MAX_GRID_POINTS}")
        return None
    lo, hi = (float(b) for b in bounds)
    return [float(f"{lo * (hi / lo) ** (i / (points - 1)):.6g}") for i in range(points)]


def expand_params(model: type[BaseModel], params: dict, loc: tuple, out: _Collector) -> list[dict]:
    """Every combination of grid values, each validated; problems point at the bad element."""
    axes: list[tuple[str, list[tuple[int | None, Any]]]] = []
    params = dict(params)
    for key, value in list(params.items()):
        if is_search(value) and key in model.model_fields:
            values = _search_values(value, loc + ("params", key), out)
            if values is None:
                return []
            axes.append((key, [(None, v) for v in values]))
            del params[key]
    for key, value in params.items():
        f = model.model_fields.get(key)
        grid = isinstance(value, list) and (
            f is None or not _is_list_type(f.annotation) or (value and all(isinstance(v, list) for v in value))
        )
        if grid and f is not None:
            if not value:
                out.add(loc + ("params", key), "empty list of values", expected="at least one value")
                return []
            axes.append((key, list(enumerate(value))))
        else:
            axes.append((key, [(None, value)]))
    combos, seen_problems = [], set()
    for choice in itertools.product(*(vals for _, vals in axes)) if axes else [()]:
        chosen = {key: v for (key, _), (_, v) in zip(axes, choice)}
        index = {key: i for (key, _), (i, _) in zip(axes, choice)}
        try:
            combos.append(model.model_validate(chosen).model_dump(mode="json"))
        except ValidationError as exc:
            def remap(err_loc: tuple) -> tuple:
                key = err_loc[0] if err_loc else None
                i = index.get(key) if isinstance(key, str) else None
                return (key, i, *err_loc[1:]) if i is not None else tuple(err_loc)

            for p in problems_from_validation(exc, out.lines, prefix=loc + ("params",), model=model, loc_map=remap):
                if (p.path, p.message) not in seen_problems:
                    seen_problems.add((p.path, p.message))
                    out.problems.append(p)
    return combos


def _is_model_ref(annotation: Any) -> bool:
    from harness.plugin.types import ModelRef

    if annotation is ModelRef:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_model_ref(a) for a in typing.get_args(annotation))
    return False


def _resolve_model_refs(model: type[BaseModel], params: dict, loc: tuple, registry: Registry,
                        out: _Collector) -> dict | None:
    """Check models named in method params (a teacher) and fill in their default params."""
    params = dict(params)
    for key, f in model.model_fields.items():
        ref = params.get(key)
        if not isinstance(ref, dict) or not _is_model_ref(f.annotation):
            continue
        where = loc + ("params", key)
        spec = registry.models.get(ref["name"])
        if spec is None:
            out.add(where + ("name",), f"unknown model {ref['name']!r}", given=repr(ref["name"]),
                    hint=suggest(ref["name"], registry.models))
            return None
        resolved = _validate_params(spec.params, ref.get("params") or {}, where, out)
        if resolved is None:
            return None
        params[key] = {"name": ref["name"], "params": resolved}
    return params


def _method_spec(registry: Registry, entry: Any, loc: tuple, out: _Collector) -> Any:
    spec = _lookup(registry, "methods", entry, loc, out)
    if spec is not None and spec.name == BASELINE:
        out.add(loc + ("name",), "the baseline is added automatically; remove this entry")
        return None
    return spec


PIPELINE_KIND = "pipeline"


def _expand_pipeline(entry: Any, i: int, registry: Registry, out: _Collector) -> list[Resolved]:
    """A pipeline's grid: every combination of its steps' grids, in step order.

    The record names every step: method "a > b > c", params {"steps": [{name, params}, ...]}.
    """
    per_step: list[list[dict]] = []
    for j, step in enumerate(entry.pipeline):
        loc = ("methods", i, "pipeline", j)
        spec = _method_spec(registry, step, loc, out)
        if spec is None:
            return []
        if j > 0 and spec.trains:
            out.add(loc + ("name",), f"{step.name} (kind {spec.kind}) trains a model from scratch, "
                    "so it can only be the first step of a pipeline")
            return []
        combos = [_resolve_model_refs(spec.params, p, loc, registry, out)
                  for p in expand_params(spec.params, step.params, loc, out)]
        per_step.append([{"name": step.name, "params": p} for p in combos if p is not None])
    name = " > ".join(step.name for step in entry.pipeline)
    return [Resolved(name, {"steps": list(combo)}, id=entry.id, kind=PIPELINE_KIND)
            for combo in itertools.product(*per_step)]


def trains(method: Resolved, registry: Registry) -> bool:
    """Whether a cell of this method trains its model from scratch (its first step declares ``trains``)."""
    first = registry.methods.get(method_steps(method)[0]["name"])
    return first is not None and bool(first.trains)


def method_steps(method: Resolved) -> list[dict]:
    """The methods a cell applies, in order ({name, params} each): one, or a pipeline's steps."""
    if method.kind == PIPELINE_KIND:
        return list(method.params["steps"])
    return [{"name": method.name, "params": method.params}]


def _step_label(name: str, params: dict) -> str:
    return f"{name}({', '.join(f'{k}={v}' for k, v in params.items())})" if params else name


def _resolve_plain(entries: list[Entry], key: str, registry: Registry, out: _Collector) -> list[Resolved]:
    """Datasets or backends: known name, valid params, no entry twice."""
    resolved: list[Resolved] = []
    seen: dict[tuple[str, str], int] = {}
    for i, entry in enumerate(entries):
        spec = _lookup(registry, key, entry, (key, i), out)
        if not spec:
            continue
        p = _validate_params(spec.params, entry.params, (key, i), out)
        if p is None:
            continue
        ident = (entry.name, json.dumps(p, sort_keys=True))
        if ident in seen:
            out.add((key, i), f"duplicate {key[:-1]} {entry.name!r} with the same params (also {key}[{seen[ident]}])")
            continue
        seen[ident] = i
        resolved.append(Resolved(entry.name, p, kind=key[:-1], id=getattr(entry, "display_id", None)))
    return resolved


def check_names(data: Any, registry: Registry, lines: LineMap) -> list[Problem]:
    """Unknown plugin names in raw suite data, for when the structure itself is invalid.

    Lets a user see every problem at once instead of fixing structure first and only
    then learning that a method name is misspelt.
    """
    out = _Collector(None, lines)
    if not isinstance(data, dict):
        return []
    for key in ("datasets", "models", "methods", "backends"):
        items = data.get(key)
        if not isinstance(items, list):
            continue
        table = getattr(registry, key)
        named: list[tuple[tuple, Any]] = []
        for i, item in enumerate(items):
            named.append(((key, i), item))
            if key == "methods" and isinstance(item, dict) and isinstance(item.get("pipeline"), list):
                named += [((key, i, "pipeline", j), step) for j, step in enumerate(item["pipeline"])]
        for loc, item in named:
            name = item if isinstance(item, str) else item.get("name") if isinstance(item, dict) else None
            if isinstance(name, str) and name not in table:
                loc = loc if isinstance(item, str) else loc + ("name",)
                out.add(loc, f"unknown {key[:-1]} {name!r}", given=repr(name), hint=suggest(name, _choices(table)))
    return out.problems


def build_matrix(suite: Suite, registry: Registry, *, file: str | None = None, lines: LineMap | None = None) -> list[Cell]:
    """All cells of the suite in run order; raises SuiteError listing every problem."""
    out = _Collector(file, lines or LineMap(""))
    datasets = _resolve_plain(suite.datasets, "datasets", registry, out)
    dataset_ids = _dataset_ids(suite, out)
    targets = _dataset_targets(suite, registry, out)
    _check_gate_metric(suite, targets, out)
    models, shapes = _resolve_models(suite, registry, dataset_ids, out)
    backends = _resolve_plain(suite.backends, "backends", registry, out)
    methods, only_models = _resolve_methods(suite, registry, {m.id for m in models} | _model_ids(suite), out)
    if out.problems:
        raise SuiteError(file, out.problems)
    # the reference backend's cells first, so that its baselines are there when every other record is
    # written (its reference_speedup)
    reference = backends[next(i for i, b in enumerate(suite.backends) if b is suite.reference)]
    backends = sorted(backends, key=lambda b: b is not reference)
    cells = []
    for seed in suite.seed_list:
        for d in datasets:
            for m in models:
                cells += _cells_of(m, d, backends, methods, only_models, shapes[m.id], reference, seed, registry,
                                   targets[d.id])
    if not cells:
        raise SuiteError(file, [Problem("models", "the matrix is empty: no model is paired with any dataset",
                                        line=out.lines.line(("models",)))])
    return cells


@dataclass(frozen=True)
class _Shape:
    """What a model entry decides about its cells: the datasets it pairs with (None: all), its batch sizes, its
    training budget, and its prompt lengths when it generates."""

    datasets: set[str] | None
    batch_sizes: tuple[int, ...]
    train: dict[str, Any]
    prompts: tuple[int, ...]


def _cells_of(m: Resolved, d: Resolved, backends: list[Resolved], methods: list[Resolved],
              only_models: dict[tuple[str, str], set[str] | None], shape: _Shape, reference: Resolved, seed: int,
              registry: Registry, targets: tuple[str | None, str | None, tuple[MetricRef, ...]]) -> list[Cell]:
    """The cells of one model on one dataset: the baseline and every method it is given, on every backend."""
    if shape.datasets is not None and d.id not in shape.datasets:
        return []
    task, loss, metrics = targets
    baseline = Resolved(BASELINE, {}, kind=BASELINE)
    cells = []
    for b in backends:
        for meth in [baseline, *methods]:
            allowed = only_models.get((meth.name, json.dumps(meth.params, sort_keys=True)))
            if allowed is not None and m.id not in allowed:
                continue
            t = shape.train if trains(meth, registry) else None
            cells.append(Cell(cell_id(m, d, meth, b, seed, t, task, loss), m, d, meth, b, seed, shape.batch_sizes, t,
                              reference, shape.prompts, task, loss, metrics))
    return cells


def _dataset_targets(suite: Suite, registry: Registry, out: _Collector
                     ) -> dict[str, tuple[str | None, str | None, tuple[MetricRef, ...]]]:
    """Per dataset id: the task and loss the suite names for it, and its metrics (its own, else measure's)."""
    shared: list[MetricRef] = []
    if suite.measure.metrics:
        shared, problems = resolve_metrics(suite.measure.metrics, registry, ("measure", "metrics"), out.lines)
        out.problems += problems
    found = {}
    for i, entry in enumerate(suite.datasets):
        metrics = shared
        if entry.metrics:
            metrics, problems = resolve_metrics(entry.metrics, registry, ("datasets", i, "metrics"), out.lines)
            out.problems += problems
        found[entry.display_id] = (entry.task, entry.loss, tuple(metrics))
    return found


def _check_gate_metric(suite: Suite, targets: dict[str, tuple[str | None, str | None, tuple[MetricRef, ...]]],
                       out: _Collector) -> None:
    """The metric the accuracy gate judges is one every dataset is scored by (its named metrics' ids, else a
    default metric of its task, or of any task where the data will say it)."""
    gate = suite.accuracy_gate
    if gate is None or gate.metric is None:
        return
    for dataset_id, (task, _, metrics) in targets.items():
        ids = tuple(m.id for m in metrics) or default_metric_ids(task)
        if gate.metric not in ids:
            out.add(("accuracy_gate", "metric"), f"dataset {dataset_id!r} is not scored by {gate.metric!r}",
                    given=repr(gate.metric), hint=f"its metrics are {', '.join(ids)}; name the metric in the "
                                                  "dataset's `metrics` (or measure.metrics)")
            return


def _dataset_ids(suite: Suite, out: _Collector) -> dict[str, int]:
    """Each dataset entry's id and where it is; duplicates and models naming an unknown id are problems."""
    dataset_ids: dict[str, int] = {}
    for i, entry in enumerate(suite.datasets):
        if entry.display_id in dataset_ids:
            out.add(("datasets", i), f"duplicate dataset id {entry.display_id!r} (also datasets[{dataset_ids[entry.display_id]}])",
                    hint="give each dataset entry a distinct `id`")
        dataset_ids.setdefault(entry.display_id, i)
    for i, entry in enumerate(suite.models):
        for j, ref in enumerate(entry.datasets or []):
            if ref not in dataset_ids:
                out.add(("models", i, "datasets", j), f"no dataset with id {ref!r} in this suite",
                        given=repr(ref), hint=suggest(ref, dataset_ids))
    return dataset_ids


def _model_ids(suite: Suite) -> set[str]:
    return {entry.display_id for entry in suite.models}


def _resolve_models(suite: Suite, registry: Registry, dataset_ids: dict[str, int], out: _Collector
                    ) -> tuple[list[Resolved], dict[str, _Shape]]:
    """The models, resolved, and what each decides about its cells."""
    models, ids, shapes = [], {}, {}
    for i, entry in enumerate(suite.models):
        if entry.display_id in ids:
            out.add(("models", i), f"duplicate model id {entry.display_id!r} (also models[{ids[entry.display_id]}])",
                    hint="give each model entry a distinct `id`")
            continue
        ids[entry.display_id] = i
        spec = _lookup(registry, "models", entry, ("models", i), out)
        if not spec:
            continue
        p = _validate_params(spec.params, entry.params, ("models", i), out)
        if p is None:
            continue
        models.append(Resolved(entry.name, p, id=entry.display_id, kind="model", checkpoint=entry.checkpoint))
        generate = suite.measure.generate if _generates(spec, p) else None
        sizes = entry.batch_sizes or (generate.batch_sizes if generate else None) or suite.measure.batch_sizes
        shapes[entry.display_id] = _Shape(set(entry.datasets) if entry.datasets else None, tuple(sizes),
                                          suite.train.merged(entry.train).model_dump(mode="json"),
                                          tuple(generate.prompt_tokens) if generate else ())
    return models, shapes


def _resolve_methods(suite: Suite, registry: Registry, model_ids: set[str], out: _Collector
                     ) -> tuple[list[Resolved], dict[tuple[str, str], set[str] | None]]:
    """Every method entry expanded (grids, searches, pipelines), each once, and the models each is limited to."""
    for i, entry in enumerate(suite.methods):
        for j, ref in enumerate(entry.models or []):
            if ref not in model_ids:
                out.add(("methods", i, "models", j), f"no model with id {ref!r} in this suite",
                        given=repr(ref), hint=suggest(ref, model_ids))
    methods: list[tuple[int, Resolved]] = []
    for i, entry in enumerate(suite.methods):
        if entry.pipeline is not None:
            methods += [(i, m) for m in _expand_pipeline(entry, i, registry, out)]
            continue
        spec = _method_spec(registry, entry, ("methods", i), out)
        if spec:
            searched = search_keys(entry.params)
            for p in expand_params(spec.params, entry.params, ("methods", i), out):
                p = _resolve_model_refs(spec.params, p, ("methods", i), registry, out)
                if p is not None:
                    methods.append((i, Resolved(entry.name, p, id=entry.id, kind=spec.kind, search=searched)))
    seen: dict[tuple, int] = {}
    only_models: dict[tuple[str, str], set[str] | None] = {}
    for i, m in methods:
        key = (m.name, json.dumps(m.params, sort_keys=True))
        only_models[key] = set(suite.methods[i].models) if suite.methods[i].models else None
        if key in seen and seen[key] != i:
            out.add(("methods", i), f"duplicate method {m.label} (also methods[{seen[key]}])",
                    hint="each method and params combination may appear once")
        seen.setdefault(key, i)
    unique = list({(m.name, json.dumps(m.params, sort_keys=True)): m for _, m in methods}.values())
    return unique, only_models
