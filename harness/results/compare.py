"""``optbench compare BASE_RUN NEW_RUN``: which cells got faster, slower, or neither.

Records are matched by (cell_id, batch_size, prompt length); cell_id is a hash of what determines a
result (model, dataset, method and params, backend, seed), so the same cell in two runs
of one suite, or of two suites, is matched. Cells present in only one run are listed.

The rule is asv's: a latency change counts only when it is both large and significant.
Large: the ratio of median latencies (new / base) is above 1 + threshold (slower) or below
1 / (1 + threshold) (faster), so a threshold means the same in both directions. Significant:
a two-sided Mann-Whitney U test on the raw per-call samples (cells/<id>/samples.json)
gives p < 0.01. With thousands of samples nearly any shift is significant, so on a busy
machine it is the threshold that keeps run-to-run jitter out; raise it there.

Quality is compared too (``accuracy``, else ``final_accuracy``; another task's quality metric, in its own
direction, where both records are scored by it): a change beyond the
accuracy gate of the base run's suite (``accuracy_gate``; the new run's if the base has
none; else MLPerf's 99% tier, ``relative: 0.01``) is reported as dropped or improved.
A regression, for ``--fail-on regression``, is a slower cell, a cell that was ok and no
longer is, or an accuracy drop beyond the gate.

A cell whose record says ``contended`` in either run (timed while other processes had the CPU,
even after its blocks were measured again) is not judged faster or slower: its verdict is
``contended`` and the note gives the reason.

Runs from different machines (hostname, CPU, cores, GPUs in env.json, and the kernel-selecting
machine facts: CPU family / model / stepping / flags, torch's CPU capability and BLAS) are
refused unless ``--allow-different-machines``, and then the output says so; a run whose
env.json predates the machine facts is compared on what both runs recorded, with a note.

Every piece of text from a record or an env.json (names, errors, versions) goes through
``harness.results.labels.printable`` before any output, terminal, plain or markdown, so none
can drive the terminal; markdown cells are escaped on top (``harness.results.markdown``).
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import OptbenchError
from harness.measure.host_load import CONTENDED_CORES
from harness.record.status import BASELINE, Status
from harness.results.labels import NULL, batch_label, method_label, printable, variant_label
from harness.results.load import (
    machine_fingerprint,
    machine_label,
    read_env,
    run_dir_of,
    run_records,
)
from harness.results.markdown import markdown_table, md_cell
from harness.results.records import cell_folder, latency_samples, record_point
from harness.results.table_spec import COLUMNS as SPEC
from harness.results.table_spec import FORMATS, other_metric
from harness.suite.loader import load_yaml, read_suite_text
from harness.suite.schema import AccuracyGate

P_LIMIT = 0.01
DEFAULT_THRESHOLD = 0.05
DEFAULT_GATE = AccuracyGate(relative=0.01)  # MLPerf's 99% tier
SAMPLES_FILE = "samples.json"

FASTER, SLOWER, UNCHANGED = "faster", "slower", "unchanged"
BROKE, FIXED, NOT_MEASURED, NO_SAMPLES = "broke", "fixed", "not measured", "no samples"
#: A cell timed under contention in either run (its record says ``contended``): not judged faster or slower.
CONTENDED = "contended"
ONLY_BASE, ONLY_NEW = "only in base", "only in new"
DROPPED, IMPROVED = "dropped", "improved"


def judge_latency(base_ns: Sequence[float], new_ns: Sequence[float], threshold: float = DEFAULT_THRESHOLD,
                  p_limit: float = P_LIMIT) -> tuple[str, float | None, float | None]:
    """(verdict, relative change of the median, p-value) for two sets of per-call latencies.

    The verdict is faster or slower only when the medians differ by more than ``threshold``
    (as a ratio, either way) AND a two-sided Mann-Whitney U test gives p < ``p_limit``.
    """
    import numpy as np
    from scipy.stats import mannwhitneyu

    base, new = np.asarray(base_ns, dtype=np.float64), np.asarray(new_ns, dtype=np.float64)
    if base.size == 0 or new.size == 0:
        return NO_SAMPLES, None, None
    base_med, new_med = float(np.median(base)), float(np.median(new))
    if base_med <= 0 or new_med <= 0:
        return UNCHANGED, None, None
    ratio = new_med / base_med
    p = float(mannwhitneyu(base, new, alternative="two-sided").pvalue)
    if not math.isfinite(p):  # every sample equal on both sides: no evidence of a difference
        p = 1.0
    if p < p_limit and ratio > 1 + threshold:
        return SLOWER, ratio - 1, p
    if p < p_limit and ratio < 1 / (1 + threshold):
        return FASTER, ratio - 1, p
    return UNCHANGED, ratio - 1, p


def accuracy_of(record: dict[str, Any]) -> float | None:
    """Held-out accuracy of a record; a training cell's final accuracy when ``accuracy`` is null."""
    for key in ("accuracy", "final_accuracy"):
        v = record.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            return float(v)
    return None


def quality_of(record: dict[str, Any]) -> tuple[float | None, str, bool]:
    """(score, metric, whether higher is better) of a record's quality: its accuracy (a training cell's final
    accuracy), or its score of another task's quality metric (rmse, miou, ...)."""
    if other_metric(record):
        return _figure(record, "quality"), str(record.get("quality_metric")), \
            record.get("quality_higher_is_better") is not False
    return accuracy_of(record), "accuracy", True


def judge_accuracy(base: float | None, new: float | None, gate: AccuracyGate, higher_is_better: bool = True
                   ) -> str | None:
    """dropped when ``new`` would fail ``gate`` against ``base``; improved when ``base`` would fail it against ``new``
    (for a metric where lower is better, such as rmse, a rise is the drop)."""
    if base is None or new is None:
        return None
    if not gate.passes(new, base, higher_is_better):
        return DROPPED
    if not gate.passes(base, new, higher_is_better):
        return IMPROVED
    return None


def judge_quality(base: dict[str, Any], new: dict[str, Any], gate: AccuracyGate) -> str | None:
    """``judge_accuracy`` of two records' quality, when both are scored by one metric."""
    (b, b_metric, higher), (n, n_metric, _) = quality_of(base), quality_of(new)
    return judge_accuracy(b, n, gate, higher) if b_metric == n_metric else None


def _figure(record: dict[str, Any], key: str) -> float | None:
    v = record.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def judge_fidelity(base: dict[str, Any], new: dict[str, Any], gate: AccuracyGate) -> str | None:
    """dropped when the new run's agreement or cosine falls below the gate's minimum where the base
    run's met it; improved the other way round; None without such a criterion or figure."""
    verdicts = set()
    for key in ("agreement", "cosine"):
        floor, b, n = getattr(gate, key), _figure(base, key), _figure(new, key)
        if floor is None or b is None or n is None:
            continue
        if n < floor - 1e-12 <= b:
            verdicts.add(DROPPED)
        elif b < floor - 1e-12 <= n:
            verdicts.add(IMPROVED)
    return DROPPED if DROPPED in verdicts else IMPROVED if verdicts else None


def fidelity_note(base: dict[str, Any], new: dict[str, Any]) -> str:
    """"cosine 0.9995 → 0.4700" for the fidelity figures that moved by more than 0.001."""
    moved = []
    for key in ("agreement", "cosine"):
        b, n = _figure(base, key), _figure(new, key)
        if b is not None and n is not None and abs(n - b) > 1e-3:
            moved.append(f"{key} {b:.4f} → {n:.4f}")
    return ", ".join(moved)


@dataclass
class Row:
    """One cell x batch size in either run, and what changed."""

    cell_id: str
    batch_size: Any
    base: dict[str, Any] | None
    new: dict[str, Any] | None
    verdict: str
    base_ms: float | None = None
    new_ms: float | None = None
    change: float | None = None
    p_value: float | None = None
    accuracy: str | None = None  # dropped / improved beyond the gate
    note: str = ""

    @property
    def record(self) -> dict[str, Any]:
        return self.new or self.base or {}

    @property
    def regression(self) -> bool:
        return self.verdict in (SLOWER, BROKE) or self.accuracy == DROPPED

    @property
    def improvement(self) -> bool:
        return self.verdict in (FASTER, FIXED) or self.accuracy == IMPROVED


@dataclass
class Comparison:
    base_dir: Path
    new_dir: Path
    threshold: float
    gate: AccuracyGate
    gate_source: str
    rows: list[Row] = field(default_factory=list)
    base_env: dict[str, Any] | None = None
    new_env: dict[str, Any] | None = None
    same_machine: bool | None = None  # None: an env.json is missing
    machine_differences: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.regression]

    def counts(self) -> dict[str, int]:
        out = {v: 0 for v in (FASTER, SLOWER, UNCHANGED, ONLY_BASE, ONLY_NEW, BROKE, FIXED, NOT_MEASURED, NO_SAMPLES,
                              CONTENDED)}
        for r in self.rows:
            out[r.verdict] += 1
        out["accuracy " + DROPPED] = sum(r.accuracy == DROPPED for r in self.rows)
        out["accuracy " + IMPROVED] = sum(r.accuracy == IMPROVED for r in self.rows)
        return out

    def summary(self) -> str:
        c = self.counts()
        both = sum(1 for r in self.rows if r.base is not None and r.new is not None)
        parts = [f"{both} compared (cell x batch size): {c[FASTER]} faster, {c[SLOWER]} slower, {c[UNCHANGED]} unchanged",
                 f"{c[ONLY_BASE]} only in base, {c[ONLY_NEW]} only in new",
                 f"accuracy beyond the gate: {c['accuracy dropped']} dropped, {c['accuracy improved']} improved"]
        extra = [f"{c[k]} {k}" + (" (not judged)" if k == CONTENDED else "")
                 for k in (BROKE, FIXED, NOT_MEASURED, NO_SAMPLES, CONTENDED) if c[k]]
        if extra:
            parts.append(", ".join(extra))
        return "; ".join(parts)


# --- reading runs ---------------------------------------------------------------------

def gate_of(run_dir: Path) -> AccuracyGate | None:
    """The accuracy gate of the run's own suite copy (suite.yaml), or None when it sets none."""
    try:
        data = load_yaml(read_suite_text(run_dir / "suite.yaml"), None)  # the suite loader's limits
        gate = data.get("accuracy_gate") if isinstance(data, dict) else None
        return AccuracyGate.model_validate(gate) if gate else None
    except (OSError, ValueError, OptbenchError):  # SuiteError: missing, unreadable, refused
        return None


class Samples:
    """Raw latency samples of a run, read from cells/<cell_id>/samples.json once per cell."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._cache: dict[str, dict[str, Any]] = {}

    def get(self, cell_id: str, point: Any) -> list[float] | None:
        """The samples of one point of a cell: its batch size, or ``record_point``'s key."""
        if cell_id not in self._cache:
            folder = cell_folder(self.run_dir, cell_id)
            try:
                data = json.loads((folder / SAMPLES_FILE).read_text(encoding="utf-8")) if folder else {}
            except (OSError, ValueError, RecursionError):
                data = {}
            self._cache[cell_id] = data if isinstance(data, dict) else {}
        return latency_samples(self._cache[cell_id].get(str(point)))


#: How a machine difference names the keys of the machine facts (the first four keep their names).
FACT_NAMES = {"cpu_vendor": "cpu vendor", "cpu_family": "cpu family", "cpu_model_number": "cpu model number",
              "cpu_stepping": "cpu stepping", "cpu_flags": "cpu flags", "cpu_capability": "torch cpu capability",
              "blas": "torch BLAS", "onednn": "torch oneDNN"}


def _differences(base: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two machine fingerprints, on the keys both have: a run whose env.json
    predates the machine facts is compared on hostname, CPU model, cores and GPUs alone (the
    header says so, ``_facts_missing``). GPUs known only by index ("GPU 0") are compared by count;
    flag sets by what one side has and the other lacks."""
    out = []
    for k in (k for k in base if k in new and base[k] != new[k]):
        b, n = base[k], new[k]
        if k == "gpus" and isinstance(b, list) and isinstance(n, list) and len(b) == len(n) \
                and any(all(re.fullmatch(r"GPU \S*", str(g)) for g in side) for side in (b, n)):
            continue  # one run named its GPUs, the other only counted them: the same count
        if isinstance(b, list) and isinstance(n, list) and k != "gpus":
            only_base, only_new = [str(f) for f in b if f not in n], [str(f) for f in n if f not in b]
            parts = [f"{side} has {', '.join(flags)}; {other} lacks {'them' if len(flags) > 1 else 'it'}"
                     for side, other, flags in (("base", "new", only_base), ("new", "base", only_new)) if flags]
            out.append(printable(f"{FACT_NAMES.get(k, k)}: {'; '.join(parts)}"))
            continue
        out.append(f"{FACT_NAMES.get(k, k)} {_show(b)} → {_show(n)}")
    return out


def _facts_missing(cmp: Comparison) -> tuple[str, list[str]] | None:
    """("base"|"new", names) when one run's env.json lacks machine facts the other's has."""
    bf, nf = machine_fingerprint(cmp.base_env), machine_fingerprint(cmp.new_env)
    if not bf or not nf:
        return None
    for side, has, lacks in (("base", nf, bf), ("new", bf, nf)):
        names = [FACT_NAMES.get(k, k) for k in has if k not in lacks]
        if names:
            return side, names
    return None


def _show(v: Any) -> str:
    """A value of env.json as a difference names it (controls escaped: it reaches the terminal)."""
    if isinstance(v, list):
        return printable(", ".join(map(str, v)) or "none")
    return "unknown" if v is None else printable(v)


def software_differences(base_env: dict[str, Any] | None, new_env: dict[str, Any] | None) -> list[str]:
    """Versions that differ between the runs (harness, python, torch, numpy, plugins): said, not refused."""
    if not base_env or not new_env:
        return []
    keys = ("harness_version", "python", "torch", "numpy")
    out = [f"{k} {_show(base_env.get(k))} → {_show(new_env.get(k))}" for k in keys if base_env.get(k) != new_env.get(k)]

    def versions(env: dict[str, Any]) -> dict[str, Any]:
        plugins = env.get("plugins")
        return {str(k): v.get("version") if isinstance(v, dict) else None
                for k, v in plugins.items()} if isinstance(plugins, dict) else {}

    bp, np_ = versions(base_env), versions(new_env)
    for name in sorted(set(bp) | set(np_)):
        bv, nv = bp.get(name), np_.get(name)
        if bv != nv:
            out.append(f"plugin {printable(name)} {_show(bv or 'absent')} → {_show(nv or 'absent')}")
    return out


def _status_note(r: dict[str, Any]) -> str:
    status = str(r.get("status") or "?")
    error = " ".join(str(r.get("error") or "").split())
    return f"{status} ({error[:79] + '…' if len(error) > 80 else error})" if error else status


def _p50(r: dict[str, Any] | None, samples: list[float] | None) -> float | None:
    """Median latency in ms: from the samples when there are any (what the test used), else the record's p50."""
    if samples:
        import numpy as np

        return float(np.median(np.asarray(samples, dtype=np.float64))) / 1e6
    v = (r or {}).get("latency_p50_ms")
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _row(key: tuple[str, Any], base: dict | None, new: dict | None, threshold: float, gate: AccuracyGate,
         base_samples: Samples, new_samples: Samples) -> Row:
    cell_id, point = key  # point: the batch size (and a generation record's prompt length), record_point
    bs = (new or base or {}).get("batch_size")
    if base is None or new is None:  # listed with the record's own p50; nothing to test it against
        only = new if base is None else base
        ms = _p50(only, None)
        note = "" if only.get("status") == Status.OK else _status_note(only)
        if base is None:
            return Row(cell_id, bs, None, new, ONLY_NEW, new_ms=ms, note=note)
        return Row(cell_id, bs, base, None, ONLY_BASE, base_ms=ms, note=note)
    acc = judge_quality(base, new, gate)
    fid = judge_fidelity(base, new, gate)
    acc = DROPPED if DROPPED in (acc, fid) else acc or fid
    b_ok, n_ok = base.get("status") == Status.OK, new.get("status") == Status.OK
    if not (b_ok and n_ok):
        verdict = BROKE if b_ok else FIXED if n_ok else NOT_MEASURED
        return Row(cell_id, bs, base, new, verdict, _p50(base, None), _p50(new, None), accuracy=acc,
                   note=f"{_status_note(base)} → {_status_note(new)}")
    b, n = base_samples.get(cell_id, point), new_samples.get(cell_id, point)
    base_ms, new_ms = _p50(base, b), _p50(new, n)
    if b is None or n is None:
        missing = " and ".join(side for side, s in (("base", b), ("new", n)) if s is None)
        change = new_ms / base_ms - 1 if base_ms and new_ms else None
        return Row(cell_id, bs, base, new, NO_SAMPLES, base_ms, new_ms, change, accuracy=acc,
                   note=f"no raw samples in the {missing} run (cells/{cell_id}/{SAMPLES_FILE}): not judged")
    verdict, change, p = judge_latency(b, n, threshold)
    contended = [side for side, r in (("base", base), ("new", new)) if r.get("contended") is True]
    if contended:  # its samples were taken while other processes had the CPU: no verdict on them
        why = next(r.get("contended_reason") for side, r in (("base", base), ("new", new)) if side == contended[0])
        note = (f"timed under contention in the {' and '.join(contended)} run"
                + (f" ({printable(why)})" if why else "") + ": not judged faster or slower")
        return Row(cell_id, bs, base, new, CONTENDED, base_ms, new_ms, change, p, accuracy=acc, note=note)
    noisy = [side for side, r in (("base", base), ("new", new)) if r.get("noisy")]
    notes = [f"noisy in the {' and '.join(noisy)} run (IQR/p50 > 10%)"] if noisy else []
    busy = [f"{side} {r['host_other_cpu']:.2f}" for side, r in (("base", base), ("new", new))
            if isinstance(r.get("host_other_cpu"), (int, float)) and r["host_other_cpu"] > CONTENDED_CORES]
    if busy:
        notes.append(f"other processes busy while timed (cores: {', '.join(busy)})")
    moved = fidelity_note(base, new)
    if moved:
        notes.append(moved)
    note = "; ".join(notes)
    return Row(cell_id, bs, base, new, verdict, base_ms, new_ms, change, p, accuracy=acc, note=note)


def compare_runs(base_dir: Path | str, new_dir: Path | str, threshold: float = DEFAULT_THRESHOLD) -> Comparison:
    """Every cell x batch size of both runs, judged. Raises OptbenchError for a path that is not a run."""
    base_dir, new_dir = run_dir_of(base_dir, "base run"), run_dir_of(new_dir, "new run")
    gate, source = gate_of(base_dir), "the base run's suite"
    if gate is None:
        gate, source = gate_of(new_dir), "the new run's suite"
    if gate is None:
        gate, source = DEFAULT_GATE, "default: MLPerf's 99% tier; neither suite sets accuracy_gate"
    elif not gate.judges_accuracy:
        gate = gate.model_copy(update={"relative": DEFAULT_GATE.relative})
        source += f"; accuracy at MLPerf's 99% tier (relative {DEFAULT_GATE.relative:g}), which it does not set"
    base_env, new_env = read_env(base_dir), read_env(new_dir)
    cmp = Comparison(base_dir, new_dir, threshold, gate, source, base_env=base_env, new_env=new_env)
    bf, nf = machine_fingerprint(base_env), machine_fingerprint(new_env)
    if bf is not None and nf is not None:
        cmp.machine_differences = _differences(bf, nf)
        cmp.same_machine = not cmp.machine_differences

    def keyed(records: list[dict[str, Any]]) -> dict[tuple[str, Any], dict[str, Any]]:
        return {(r["cell_id"], record_point(r)): r for r in records if r.get("cell_id")}

    base, new = keyed(run_records(base_dir)), keyed(run_records(new_dir))
    base_samples, new_samples = Samples(base_dir), Samples(new_dir)
    keys = list(base) + [k for k in new if k not in base]
    cmp.rows = [_row(k, base.get(k), new.get(k), threshold, gate, base_samples, new_samples) for k in keys]
    return cmp


# --- output ---------------------------------------------------------------------------

def _rank(r: Row) -> int:
    if r.regression:
        return 0
    if r.improvement:
        return 1
    return 3 if r.verdict == UNCHANGED else 2


def _order(r: Row) -> tuple:
    rec = r.record
    b = r.batch_size
    return (_rank(r), str(rec.get("model")), variant_label(rec, "dataset"), variant_label(rec, "backend"),
            rec.get("method") != BASELINE, method_label(rec), str(rec.get("seed")),
            not isinstance(b, (int, float)), b if isinstance(b, (int, float)) else 0)


#: The comparison's columns: its figures are the table spec's (their labels and formats), read in both runs.
P50, ACCURACY = SPEC["p50"], SPEC["acc"]
COLUMNS = ("cell", SPEC["batch"].label, f"base {P50.label}", f"new {P50.label}", "change", "p", "result",
           ACCURACY.label, "note")
RIGHT = COLUMNS[1:6]


def _cell_label(rec: dict[str, Any], shown: set[str], seeds: bool) -> str:
    parts = [str(rec.get("model"))]
    if "dataset" in shown:
        parts.append(variant_label(rec, "dataset"))
    parts.append(method_label(rec) + (f" (seed {rec.get('seed')})" if seeds else ""))
    if "backend" in shown:
        parts.append(variant_label(rec, "backend"))
    return " · ".join(parts)


def _fmt_p(p: float | None) -> str:
    if p is None:
        return NULL
    return "<1e-4" if p < 1e-4 else f"{p:.2g}" if p < 0.01 else f"{p:.2f}"


def _fmt_acc(r: Row) -> str:
    """The quality of the two records: "0.9533 → 0.9511", or another metric's, named: "rmse 54.15 → 60.2"."""
    b, b_metric, _ = quality_of(r.base) if r.base else (None, "accuracy", True)
    n, n_metric, _ = quality_of(r.new) if r.new else (None, "accuracy", True)
    if b is None and n is None:
        return NULL
    named = {m for m, v in ((b_metric, b), (n_metric, n)) if v is not None} - {"accuracy"}
    prefix = f"{'/'.join(sorted(named))} " if named else ""
    if r.base is None or r.new is None or b == n:
        v = n if b is None else b
        return prefix + _num(v)
    text = f"{prefix}{_num(b)} → {_num(n)}"
    return f"{text} ({r.accuracy})" if r.accuracy else text


def _num(v: float | None) -> str:
    return NULL if v is None else FORMATS[ACCURACY.format or "fraction"](v)


def _ms(v: float | None) -> str:
    return NULL if v is None else FORMATS[P50.format or "ms"](v)


def table_rows(cmp: Comparison) -> tuple[list[list[str]], list[Row], list[str]]:
    """Rows as text in COLUMNS order (regressions first, unchanged last), the Rows they came from, and
    header lines naming a dataset or backend that every row shares (left out of the cell label)."""
    rows = sorted(cmp.rows, key=_order)
    shown, folded = set(), []
    for key in ("dataset", "backend"):
        values = {variant_label(r.record, key) for r in rows}
        if len(values) > 1:
            shown.add(key)
        elif values:
            folded.append(f"{key}: {values.pop()}")
    seeds = len({r.record.get("seed") for r in rows}) > 1
    text = []
    for r in rows:
        change = NULL if r.change is None else f"{0.0 if abs(r.change) < 5e-4 else r.change:+.1%}"
        text.append([_cell_label(r.record, shown, seeds), batch_label(r.record), _ms(r.base_ms), _ms(r.new_ms),
                     change, _fmt_p(r.p_value), r.verdict, _fmt_acc(r), r.note])
    return [[printable(c) for c in row] for row in text], rows, [printable(f) for f in folded]


def header_lines(cmp: Comparison) -> list[str]:
    """Which runs, which machine (and a warning when they differ), software changes, and the rule applied."""
    def run_line(label: str, run_dir: Path, rows: list[dict | None]) -> str:
        recs = [r for r in rows if r]
        suite = next((r.get("suite") for r in recs if r.get("suite")), None) or run_dir.parent.name
        return f"{label} {run_dir} (suite {suite}, {len(recs)} records)"

    lines = [run_line("base:", cmp.base_dir, [r.base for r in cmp.rows]),
             run_line("new: ", cmp.new_dir, [r.new for r in cmp.rows])]
    if cmp.same_machine:
        missing = _facts_missing(cmp)
        richer = cmp.new_env if missing and missing[0] == "base" else cmp.base_env
        lines.append(f"machine: {printable(machine_label(richer))} (both runs)")
        if missing:
            what = "CPU family, model, stepping and flags, torch's CPU capability and BLAS" \
                if len(missing[1]) == len(FACT_NAMES) else ", ".join(missing[1])
            lines.append(f"note: machine facts missing in the {missing[0]} run (its env.json, from an older optbench, "
                         f"has no {what}): compared on what both runs recorded")
    elif cmp.same_machine is None:
        missing = " and ".join(str(d / "env.json") for d, e in ((cmp.base_dir, cmp.base_env), (cmp.new_dir, cmp.new_env))
                               if not e)
        lines.append(f"WARNING: machine unknown ({missing} missing), compared because of --allow-different-machines")
    else:
        lines.append(f"WARNING: DIFFERENT MACHINES, compared because of --allow-different-machines: "
                     f"{'; '.join(cmp.machine_differences)}. Latency changes mix the code's effect with the machines'.")
        lines.append(f"base machine: {machine_label(cmp.base_env)}; new machine: {machine_label(cmp.new_env)}")
    software = software_differences(cmp.base_env, cmp.new_env)
    if software:
        lines.append("software changed: " + "; ".join(software))
    gate = cmp.gate.describe()
    lines.append(f"rule: latency counts as changed when the median moves more than {cmp.threshold:.0%} "
                 f"(ratio, either way) and Mann-Whitney U p < {P_LIMIT:g}; accuracy when it moves beyond the gate "
                 f"({gate}, {cmp.gate_source})")
    return [printable(line) for line in lines]


def render_text(cmp: Comparison) -> str:
    """Plain aligned columns (what a pipe or a CI log gets)."""
    rows, _, folded = table_rows(cmp)
    cols = [i for i, c in enumerate(COLUMNS) if c != "note" or any(r[i] for r in rows)]
    grid = [[COLUMNS[i] for i in cols]] + [[row[i] for i in cols] for row in rows]
    widths = [max(len(line[j]) for line in grid) for j in range(len(cols))]
    out = header_lines(cmp) + folded + [""]
    for line in grid:
        cells = [line[j].rjust(widths[j]) if COLUMNS[cols[j]] in RIGHT else line[j].ljust(widths[j])
                 for j in range(len(cols))]
        out.append("  ".join(cells).rstrip())
    if not rows:
        out.append("(no records in either run)")
    out += ["", cmp.summary()]
    return "\n".join(out) + "\n"


def render_markdown(cmp: Comparison) -> str:
    """For a pull-request comment: changes in a table, unchanged cells folded away in <details>."""
    rows, objs, folded = table_rows(cmp)
    cols = [i for i, c in enumerate(COLUMNS) if c != "note" or any(r[i] for r in rows)]
    headers = [COLUMNS[i] for i in cols]
    right = [h in RIGHT for h in headers]
    changed = [[row[i] for i in cols] for row, r in zip(rows, objs, strict=True) if _rank(r) < 3]
    same = [[row[i] for i in cols] for row, r in zip(rows, objs, strict=True) if _rank(r) == 3]
    head = [md_cell(line) for line in header_lines(cmp) + folded]
    regressions = len(cmp.regressions)
    title = f"### optbench compare: {regressions} regression{'s' if regressions != 1 else ''}" if regressions \
        else "### optbench compare: no regressions"
    parts = [title, "  \n".join(head), f"**{md_cell(cmp.summary())}**"]
    if changed:
        parts.append(markdown_table(headers, changed, right))
    if same:
        parts.append(f"<details><summary>{len(same)} unchanged</summary>\n\n{markdown_table(headers, same, right)}"
                     "\n\n</details>")
    return "\n\n".join(parts) + "\n"


def render_rich(cmp: Comparison, console: Any = None) -> None:
    """A coloured table on a terminal."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console()
    rows, objs, folded = table_rows(cmp)
    for line in header_lines(cmp) + folded:
        console.print(Text(line, style="bold red" if line.startswith("WARNING") else ""))
    cols = [i for i, c in enumerate(COLUMNS) if c != "note" or any(r[i] for r in rows)]
    table = Table(show_lines=False, header_style="bold")
    for i in cols:
        table.add_column(COLUMNS[i], justify="right" if COLUMNS[i] in RIGHT else "left",
                         overflow="fold", no_wrap=COLUMNS[i] in RIGHT)
    colour = {SLOWER: "red", BROKE: "red", FASTER: "green", FIXED: "green", ONLY_BASE: "yellow", ONLY_NEW: "yellow",
              NO_SAMPLES: "yellow", CONTENDED: "yellow", UNCHANGED: "dim"}
    for row, r in zip(rows, objs, strict=True):
        style = "red" if r.regression else colour.get(r.verdict, "")
        table.add_row(*[Text(row[i], style=style if COLUMNS[i] in ("result", "change") else
                             ("red" if COLUMNS[i] == "accuracy" and r.accuracy == DROPPED else "")) for i in cols])
    console.print(table)
    console.print(Text(cmp.summary(), style="bold"))


def check_machines(cmp: Comparison, allow: bool) -> None:
    """Refuse runs from different (or unknown) machines unless allowed: latency depends on the hardware."""
    if allow or cmp.same_machine:
        return
    hint = "pass --allow-different-machines to compare anyway (the output will say so)"
    if cmp.same_machine is None:
        missing = [printable(d / "env.json") for d, e in ((cmp.base_dir, cmp.base_env), (cmp.new_dir, cmp.new_env))
                   if not e]
        raise OptbenchError(f"cannot tell whether the runs were measured on the same machine: "
                            f"{' and '.join(missing)} missing or unreadable; {hint}")
    raise OptbenchError(f"{printable(cmp.base_dir)} and {printable(cmp.new_dir)} were measured on different machines "
                        f"({'; '.join(cmp.machine_differences)}); latency is not comparable across machines; {hint}")


def cmd_compare(args: argparse.Namespace) -> int:
    """``optbench compare BASE_RUN NEW_RUN [--threshold F] [--fail-on regression|never] [--markdown]
    [--allow-different-machines]``: 0, or 1 when --fail-on regression finds a regression."""
    threshold = args.threshold
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold) \
            or threshold < 0:
        raise OptbenchError(f"--threshold {threshold}: expected a fraction >= 0, e.g. 0.05 for 5%")
    fail_on = getattr(args, "fail_on", "never")
    if fail_on not in ("regression", "never"):
        raise OptbenchError(f"--fail-on {fail_on!r}: expected 'regression' or 'never'")
    cmp = compare_runs(args.base_run, args.new_run, float(threshold))
    check_machines(cmp, bool(getattr(args, "allow_different_machines", False)))
    if getattr(args, "markdown", False):
        sys.stdout.write(render_markdown(cmp))
    elif sys.stdout.isatty():
        render_rich(cmp)
    else:
        sys.stdout.write(render_text(cmp))
    regressions = cmp.regressions
    if regressions and fail_on == "regression":
        print(f"optbench compare: {len(regressions)} regression(s); exit 1 (--fail-on regression)", file=sys.stderr)
        return 1
    return 0
