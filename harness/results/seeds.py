"""Training cells summarised the way DeepOBS reports optimizers: over seeds, then tuned.

A *configuration* is one method with one set of params on one problem (model x
dataset x backend); its seeds are aggregated (mean and sample std). Params that the
suite searched (``lr: {log_grid: ...}``, recorded in ``search_params``) are then tuned:
per problem and method (the remaining params fixed), the configuration with the best
mean final held-out accuracy wins (lowest mean held-out loss on a loss problem). A
configuration in which any seed diverged or failed ranks below every one that did not.
Nothing here imports torch: reports and leaderboards use it on records alone.
"""
from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.record.status import Status
from harness.results.labels import finite, variant_label


def is_training(record: dict[str, Any]) -> bool:
    """A record of a cell that trained its model: it carries the training budget it was given (``train``)."""
    return isinstance(record.get("train"), dict)


def problem_of(r: dict) -> tuple[str, ...]:
    """Model, dataset and backend (with their params); a transfer method's records, evaluated on
    its target task, form a problem of their own."""
    base = (str(r.get("model")), variant_label(r, "dataset"), variant_label(r, "backend"))
    return (*base, "target task of transfer") if r.get("task_changed") else base


@dataclass
class Stat:
    """Mean and sample std of one figure over the seeds that have it."""

    values: list[float]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values) if len(self.values) > 1 else None


@dataclass
class Config:
    problem: tuple[str, ...]
    method: str
    params: dict[str, Any]
    search: tuple[str, ...]
    records: list[dict[str, Any]] = field(default_factory=list)  # one per seed, any status

    @property
    def ok(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("status") == Status.OK]

    @property
    def seeds(self) -> list[Any]:
        return sorted((r.get("seed") for r in self.records), key=lambda s: (s is None, s))

    @property
    def metric(self) -> str:
        return "accuracy" if any(r.get("final_accuracy") is not None for r in self.ok) else "loss"

    def stat(self, key: str) -> Stat:
        """Over the ok seeds; ``floor_gap`` is (final objective - loss floor) / |loss floor|,
        comparable across seeds whose floors differ."""
        if key == "floor_gap":
            return Stat([(o - f) / abs(f) for r in self.ok
                         if (o := finite(r.get("final_objective"))) is not None
                         and (f := finite(r.get("loss_floor"))) not in (None, 0.0)])
        return Stat([v for r in self.ok if (v := finite(r.get(key))) is not None])

    @property
    def reached(self) -> int:
        return sum(1 for r in self.ok if r.get("time_to_target_s") is not None)

    @property
    def has_target(self) -> bool:
        return any(r.get("target_accuracy") is not None or r.get("target_loss") is not None for r in self.ok)

    @property
    def diverged(self) -> int:
        return sum(1 for r in self.ok if r.get("diverged"))

    @property
    def not_ok(self) -> int:
        return len(self.records) - len(self.ok)

    @property
    def tuned_key(self) -> tuple:
        fixed = {k: v for k, v in self.params.items() if k not in self.search}
        return (self.problem, self.method, json.dumps(fixed, sort_keys=True, default=str))

    @property
    def searched(self) -> dict[str, Any]:
        return {k: self.params.get(k) for k in self.search}

    def score(self) -> tuple:
        """Smaller is better: sound runs first, then the final held-out metric."""
        broken = self.diverged > 0 or self.not_ok > 0 or not self.ok
        if self.metric == "accuracy":
            m = self.stat("final_accuracy").mean
            return (broken, m is None, -(m or 0.0))
        m = self.stat("final_loss").mean
        return (broken, m is None, m if m is not None else math.inf)


def configurations(records: Iterable[dict[str, Any]]) -> list[Config]:
    """Training records grouped over seeds, one record per cell (batch sizes repeat the figures)."""
    seen: set[str] = set()
    groups: dict[tuple, Config] = {}
    for r in records:
        if not is_training(r) or r.get("cell_id") in seen:
            continue
        seen.add(r.get("cell_id"))
        method = str(r.get("method_id") or r.get("method"))
        params = r.get("params") or {}
        key = (problem_of(r), method, json.dumps(params, sort_keys=True, default=str))
        if key not in groups:
            groups[key] = Config(problem_of(r), method, params, tuple(r.get("search_params") or ()))
        groups[key].records.append(r)
    return list(groups.values())


def tuned(configs: Iterable[Config]) -> list[tuple[Config, list[Config]]]:
    """The best configuration of each searched group, with every candidate (best first)."""
    groups: dict[tuple, list[Config]] = {}
    for c in configs:
        groups.setdefault(c.tuned_key, []).append(c)
    out = []
    for candidates in groups.values():
        ranked = sorted(candidates, key=lambda c: c.score())
        out.append((ranked[0], ranked))
    return out


def mean_curve(curves: list[list[dict[str, Any]]], key: str) -> list[dict[str, float]]:
    """Points averaged over seeds at the evaluations every seed has (same epoch index).

    Returns [{"epoch", "elapsed_s", "value", "std"}]; a seed that stopped early (diverged)
    shortens the mean curve to what every seed reached.
    """
    if not curves:
        return []
    by_epoch: list[dict[Any, dict]] = [{p.get("epoch"): p for p in c} for c in curves]
    common = [e for e in (p.get("epoch") for p in curves[0]) if all(e in b for b in by_epoch)]
    out = []
    for e in common:
        values = [finite(b[e].get(key)) for b in by_epoch]
        times = [finite(b[e].get("elapsed_s")) for b in by_epoch]
        if any(v is None for v in values) or any(t is None for t in times):
            continue
        out.append({"epoch": e, "elapsed_s": statistics.fmean(times), "value": statistics.fmean(values),
                    "std": statistics.stdev(values) if len(values) > 1 else 0.0})
    return out
