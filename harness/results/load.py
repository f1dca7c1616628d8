"""Reading runs: finding run folders, their records and env.json, the machine a run was timed
on, and a run's records as a pandas DataFrame (for notebooks).

``load(path)`` reads what the report reads: the latest record of each cell x batch size
(a resumed run may have rerun a cell) with the baseline-relative figures recomputed, so a
notebook and report.html show the same numbers. Two columns come from the run's env.json:
``machine`` (hostname, CPU, cores, GPUs: what the latency depends on) and ``torch``.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import OptbenchError
from harness.record.field import BOOL, INTEGER, LIST, OBJECT, TEXT, TIMESTAMP
from harness.record.schema import RecordSchema
from harness.registry.installed_schema import installed_schema
from harness.results.records import RECORDS_FILE, fill_relative_figures, read_records

if TYPE_CHECKING:  # pandas is imported on use: the CLI starts without it
    import pandas as pd

ENV_FILE = "env.json"
ENV_COLUMNS = ("machine", "torch")  # from env.json, last in a frame

#: A declared field's column kind in a DataFrame, by its type (``harness.record.field``).
COLUMN_KIND = {TEXT: "text", TIMESTAMP: "timestamp", BOOL: "boolean", INTEGER: "integer", OBJECT: "nested",
               LIST: "nested"}
#: The columns from env.json are text.
ENV_KINDS = {"machine": "text", "torch": "text"}


def read_json(path: Path) -> dict:
    """A JSON object from disk, or {} when absent or unreadable: a report must still render."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# --- finding runs -------------------------------------------------------------------

def find_runs(root: Path | str) -> list[Path]:
    """Run directories at or below ``root`` (any folder holding a records.jsonl), sorted by path.

    ``root`` may be one run, a suite's folder (results/<suite>/) or a whole results tree.
    """
    root = Path(root)
    if (root / RECORDS_FILE).is_file():
        return [root]
    if not root.is_dir():
        return []
    runs = []
    for folder, dirs, files in os.walk(root):  # os.walk shrugs off folders vanishing mid-walk; rglob does not
        if RECORDS_FILE in files:
            runs.append(Path(folder))
            dirs.clear()  # a run's cells/ hold no runs
        dirs.sort()
    return sorted(runs)


def run_dir_of(path: Path | str, what: str = "run") -> Path:
    """The run directory ``path`` names (the folder, or its records.jsonl); errors say which path and why."""
    path = Path(path)
    if path.is_file() and path.name == RECORDS_FILE:
        return path.parent
    if not path.exists():
        raise OptbenchError(f"{path}: no such {what} directory")
    if not path.is_dir():
        raise OptbenchError(f"{path}: expected a run directory (results/<suite>/<run-id>/), got a file")
    if not (path / RECORDS_FILE).is_file():
        raise OptbenchError(f"{path}: not a run directory (no {RECORDS_FILE} in it); "
                            "expected results/<suite>/<run-id>/ as printed by `optbench run`")
    return path


def run_records(run_dir: Path) -> list[dict[str, Any]]:
    """The records as the report shows them: latest per (cell_id, batch_size, prompt_tokens), relative figures filled."""
    return fill_relative_figures(read_records(run_dir))


# --- the machine a run was measured on ------------------------------------------------

def read_env(run_dir: Path) -> dict[str, Any] | None:
    """env.json of a run, or None when it is missing or unreadable."""
    try:
        env = json.loads((Path(run_dir) / ENV_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return env if isinstance(env, dict) else None


def gpu_names(env: dict[str, Any]) -> list[str]:
    """GPU names from the backends' hardware details (cuda backend), else from env.json's ``gpus``
    (named through NVML since the machine facts), else one "GPU i" per visible index."""
    names: list[str] = []
    backends = env.get("backends")
    for info in backends.values() if isinstance(backends, dict) else ():
        gpus = info.get("gpus") if isinstance(info, dict) else None
        names += [str(g["name"]) for g in gpus if isinstance(g, dict) and g.get("name")] if isinstance(gpus, list) else []
    if names:
        return sorted(names)
    gpus = env.get("gpus") if isinstance(env.get("gpus"), list) else []
    names = [str(g["name"]) if g.get("name") else f"GPU {g.get('index')}" for g in gpus if isinstance(g, dict)]
    return sorted(names) if any(isinstance(g, dict) and g.get("name") for g in gpus) else names


#: Fingerprint keys made from env.json's ``cpu`` (the machine facts), and from its ``torch_build``.
CPU_FACT_KEYS = {"cpu_vendor": "vendor_id", "cpu_family": "family", "cpu_model_number": "model",
                 "cpu_stepping": "stepping", "cpu_flags": "flags"}
TORCH_FACT_KEYS = {"cpu_capability": "cpu_capability", "blas": "blas"}


def machine_fingerprint(env: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a latency depends on in hardware: host, CPU model, logical cores, GPUs, and, where
    env.json has the machine facts, what selects kernels: the CPU's vendor, family, model,
    stepping and kernel-selecting flags, the CPU capability torch dispatches to, its BLAS and
    whether it has oneDNN. Versions are not part of it (comparing torch 2.4 with 2.5, or two
    drivers, on one machine is a normal use), but a torch that dispatches to other kernels on
    the same CPU (ATEN_CPU_CAPABILITY, another BLAS) is measuring another machine.

    A key is present only when env.json has its facts: an env.json written before them gives
    the four first keys, exactly as before, so its run keeps its machine id; ``optbench
    compare`` compares two fingerprints on the keys both have."""
    if not env:
        return None
    fp: dict[str, Any] = {"hostname": env.get("hostname"), "cpu_model": env.get("cpu_model"),
                          "cores": env.get("cores"), "gpus": gpu_names(env)}
    cpu, build = env.get("cpu"), env.get("torch_build")
    if isinstance(cpu, dict):
        fp.update({k: cpu.get(v) for k, v in CPU_FACT_KEYS.items()})
        if isinstance(fp["cpu_flags"], list):
            fp["cpu_flags"] = sorted(map(str, fp["cpu_flags"]))
    if isinstance(build, dict):
        fp.update({k: build.get(v) for k, v in TORCH_FACT_KEYS.items()})
        fp["onednn"] = None if "onednn" not in build else build["onednn"] is not None
    return fp


#: The flag a label names: the first of these the CPU has (the widest kernels it can run).
LABEL_FLAGS = ("amx_tile", "avx512_fp16", "avx512_bf16", "avx512_vnni", "avx512f", "avx_vnni", "avx2",
               "avx", "sme2", "sme", "sve2", "sve", "i8mm", "bf16", "asimd")


def machine_label(env: dict[str, Any] | None) -> str | None:
    """A one-line machine name: "vm · AMD EPYC 9B45 (family 26 model 2) · avx512_bf16 · 2 cores · no GPU"
    ("vm · AMD EPYC · 2 cores · no GPU" from an env.json without the machine facts)."""
    fp = machine_fingerprint(env)
    if fp is None:
        return None
    gpus = fp["gpus"]
    gpu = "no GPU" if not gpus else (f"{len(gpus)}x {gpus[0]}" if len(set(gpus)) == 1 else ", ".join(gpus))
    cores = f"{fp['cores']} cores" if fp.get("cores") else None
    facts = env.get("cpu") if isinstance(env, dict) and isinstance(env.get("cpu"), dict) else {}
    cpu = facts.get("model_name") or fp.get("cpu_model")  # on ARM only the facts name the core
    family, model = fp.get("cpu_family"), fp.get("cpu_model_number")
    if isinstance(model, str) and model.startswith("0x"):  # ARM: the part number says which core
        cpu = f"{cpu} (part {model})" if cpu else f"part {model}"
    elif family is not None and model is not None:
        cpu = f"{cpu} (family {family} model {model})" if cpu else f"family {family} model {model}"
    flags = fp.get("cpu_flags") if isinstance(fp.get("cpu_flags"), list) else []
    top = next((f for f in LABEL_FLAGS if f in flags), None)
    return " · ".join(str(p) for p in (fp.get("hostname"), cpu, top, cores, gpu) if p)


# --- the DataFrame --------------------------------------------------------------------

def run_groups(path: Path | str) -> list[tuple[Path, list[dict[str, Any]]]]:
    """(run directory, its records) for every run ``path`` names: a run, its records.jsonl, or a folder of runs."""
    path = Path(path)
    if not path.exists():
        raise OptbenchError(f"{path}: no such file or directory; expected a run directory, a {RECORDS_FILE} "
                            "file or a folder of runs")
    if path.is_file():
        if path.suffix != ".jsonl":
            raise OptbenchError(f"{path}: expected a run directory, a {RECORDS_FILE} file or a folder of runs")
        return [(path.parent, fill_relative_figures(read_records(path)))]
    runs = find_runs(path)
    if not runs:
        raise OptbenchError(f"{path}: no runs in it (no {RECORDS_FILE} in it or below it); expected a run "
                            "directory (results/<suite>/<run-id>/) or a folder of runs (results/)")
    return [(run, run_records(run)) for run in runs]


def rows_with_machine(groups: list[tuple[Path, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    rows = []
    for run, records in groups:
        env = read_env(run)
        machine, torch = machine_label(env), (env or {}).get("torch")
        rows += [{**r, "machine": machine, "torch": torch} for r in records]
    return rows


def _column_kind(name: str, values: Sequence[Any], schema: RecordSchema) -> str:
    """A declared field's kind from its type (a number: float), an env column's, else from its values."""
    declared = schema.get(name)
    if declared is not None:
        return COLUMN_KIND.get(declared.type, "float")
    if name in ENV_KINDS:
        return ENV_KINDS[name]
    present = [v for v in values if v is not None]
    if not present:
        return "float"
    if any(isinstance(v, (dict, list)) for v in present):
        return "nested"
    if all(isinstance(v, bool) for v in present):
        return "boolean"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "integer"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "float"
    if all(isinstance(v, str) for v in present):
        return "text"
    return "nested"  # mixed values: kept as they are


def _series(name: str, values: list[Any], kind: str) -> pd.Series:
    import pandas as pd

    if kind == "nested":
        return pd.Series(values, dtype=object, name=name)
    if kind == "timestamp":
        return pd.Series(pd.to_datetime(pd.Series(values, dtype=object), utc=True, errors="coerce", format="ISO8601"),
                         name=name)
    if kind == "text":
        return pd.Series([None if v is None else str(v) for v in values], dtype="string", name=name)
    if kind == "boolean":
        return pd.Series([v if isinstance(v, bool) else None for v in values], dtype="boolean", name=name)
    if kind == "integer":
        ok = all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in values)
        if ok:
            return pd.Series(values, dtype="Int64", name=name)
    # float, or an "integer" field that holds fractions in some record: float keeps every value
    return pd.Series([_float(v) for v in values], dtype="float64", name=name)


def _float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return math.nan
    try:
        return float(v)
    except OverflowError:  # an int past any float
        return math.nan


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A DataFrame of records: the harness's record fields in their order, then the plugins' declared fields
    the records hold, then any other field, one typed column each.

    Text is ``string``, counts ``Int64``, flags ``boolean`` (all nullable), measurements
    ``float64`` (NaN when not measured), ``started_at`` a UTC timestamp; dict and list
    fields (params, train, rank_p50_ms, ...) stay Python objects.
    """
    import pandas as pd

    schema = installed_schema()
    present: dict[str, None] = {}
    for r in rows:
        present.update(dict.fromkeys(k for k in r if k not in present))
    declared = [*schema.owned_by(()), *(c for c in schema.names if c in present)]
    seen = dict.fromkeys([*declared, *present])
    columns = [c for c in seen if c not in ENV_COLUMNS] + list(ENV_COLUMNS)
    data = {}
    for name in columns:
        values = [r.get(name) for r in rows]
        data[name] = _series(name, values, _column_kind(name, values, schema))
    return pd.DataFrame(data, columns=columns)


def load(path: Path | str) -> pd.DataFrame:
    """Records of one run or many, as a DataFrame with one row per cell x batch size.

    ``path``: a run directory, its records.jsonl, or a folder of runs (results/ or
    results/<suite>/), whose runs are concatenated; ``run_id`` and ``suite`` tell them apart.
    Figures are the report's: the latest record per cell x batch size, speedup and the other
    baseline-relative figures recomputed. ``machine`` and ``torch`` come from env.json.
    """
    return frame(rows_with_machine(run_groups(path)))


# --- exports --------------------------------------------------------------------------


