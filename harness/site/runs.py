"""Finding the runs of a results folder and describing the machines they ran on (``optbench publish``).

A run is a folder holding a records.jsonl with at least one usable record, or none yet (a run
that has not finished a cell): a folder whose records.jsonl cannot be read or holds only bad
lines is skipped with a ``RecordWarning`` naming it, so it never stops the site being built
from the other runs. A missing or malformed run.json or env.json is read as empty (a malformed
one with a warning): the run is published, its machine "unknown". Its machine is a fingerprint of the hardware in its
env.json (``machine_fingerprint``), shown by host, CPU, cores and GPUs (``machine_label``).
The site is built from these by ``harness.site.data`` and ``harness.site.pages``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import OptbenchError
from harness.results import load
from harness.results.labels import printable
from harness.results.records import RECORDS_FILE, RecordWarning, parse_lines

#: Distinct colours for machines, in order of first appearance (oldest run first).
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#7f7f7f", "#bcbd22")


# --- machines -------------------------------------------------------------------------------

def machine_fingerprint(env: dict) -> str:
    """A short id of the hardware a run's figures came from (``harness.results.load.machine_fingerprint``:
    hostname, CPU model, logical cores, GPUs and, where env.json has them, the kernel-selecting
    machine facts), the same rule ``optbench compare`` applies. A run recorded before the machine
    facts keeps the id it had; a newer run on that host gets another, as its facts are unknown.
    Software (torch, plugins) is not part of it: it is shown beside every row, and two
    torch builds on one machine are what a comparison is for. No env.json gives "unknown".
    """
    fp = load.machine_fingerprint(env)
    if not fp or not any(fp.values()):
        return "unknown"
    return hashlib.sha256(json.dumps(fp, sort_keys=True, default=str).encode()).hexdigest()[:10]


def machine_label(env: dict) -> str:
    """What a reader recognises a machine by: host, CPU, cores, GPUs."""
    return load.machine_label(env) or "unknown machine"


def env_facts(env: dict) -> list[tuple[str, str]]:
    """env.json as (what, value) pairs for the machine panel of a row."""
    git = env.get("suite_git") if isinstance(env.get("suite_git"), dict) else {}
    plugins = env.get("plugins") if isinstance(env.get("plugins"), dict) else {}
    backends = env.get("backends") if isinstance(env.get("backends"), dict) else {}
    cpu = env.get("cpu") if isinstance(env.get("cpu"), dict) else {}
    build = env.get("torch_build") if isinstance(env.get("torch_build"), dict) else {}
    flags = cpu.get("flags") if isinstance(cpu.get("flags"), list) else None
    facts = [
        ("machine id", machine_fingerprint(env)),
        ("host", env.get("hostname")),
        ("CPU", env.get("cpu_model")),
        ("CPU vendor / family / model / stepping",
         " / ".join(str(cpu.get(k)) for k in ("vendor_id", "family", "model", "stepping")) if cpu else None),
        ("CPU flags (kernel-selecting)", (" ".join(map(str, flags)) or "none of them") if flags is not None else None),
        ("torch CPU capability", build.get("cpu_capability")),
        ("torch BLAS / LAPACK", " / ".join(str(build.get(k)) for k in ("blas", "lapack")) if build else None),
        ("MKL", build.get("mkl")),
        ("oneDNN", build.get("onednn")),
        ("torch parallel backend", build.get("parallel_backend")),
        ("OpenMP", build.get("openmp")),
        ("cores", " / ".join(str(v) for v in (env.get("cores"), env.get("physical_cores")) if v)
         + (" (logical / physical)" if env.get("physical_cores") else "")),
        ("default threads", env.get("threads_default")),
        ("GPUs", ", ".join(load.gpu_names(env)) or "none recorded"),
        ("GPU driver", env.get("gpu_driver")),
        ("torch", env.get("torch")),
        ("Python", " ".join(str(v) for v in (env.get("python_implementation"), env.get("python")) if v)),
        ("numpy", env.get("numpy")),
        ("platform", env.get("platform")),
        ("optbench", env.get("harness_version")),
        ("suite commit", (str(git.get("commit", ""))[:12] + (" (uncommitted changes)" if git.get("dirty") else ""))
         if git.get("commit") else None),
        ("plugins", ", ".join(f"{name} {(info or {}).get('version', '')}".strip() for name, info in plugins.items()
                              if isinstance(info, dict) or info is None)),
    ]
    facts += [(f"backend {name}", json.dumps(info, sort_keys=True, default=str)) for name, info in backends.items()]
    return [(k, str(v)) for k, v in facts if v not in (None, "")]


# --- finding runs ---------------------------------------------------------------------------

@dataclass
class Run:
    """One run directory and what the site needs to know about it before reading its records."""

    path: Path
    rel: str  # path under RESULTS_DIR, as the reader knows it
    suite: str
    run_id: str
    started: str | None
    meta: dict
    env: dict
    machine: str = ""
    href: str = ""  # the run's folder in the site, relative to the site root
    records: list[tuple] = field(default_factory=list)
    report: str = ""  # "rendered"
    training: bool = False


def _first_record(path: Path) -> tuple[dict | None, str | None]:
    """The first usable record of a run ({} when it has no complete line yet), or None and why the run
    cannot be published: records.jsonl unreadable, or every line of it bad. Reads no further than the
    first usable line; warns about nothing (the run's reader warns about each bad line)."""
    first_problem = None
    try:
        for number, record, problem in parse_lines(path / RECORDS_FILE):
            if record is not None:
                return record, None
            first_problem = first_problem or f"line {number}: {problem}"
    except OptbenchError as exc:
        return None, str(exc)
    if first_problem:
        return None, f"no usable record in {RECORDS_FILE} (first bad {first_problem})"
    return {}, None


def _read_meta(path: Path) -> dict:
    """run.json or env.json as a dict; {} when missing, and with a warning when unreadable or not an object."""
    if path.is_symlink():
        warnings.warn(f"{printable(path)}: ignored (a symbolic link: a run's files are read only from its own "
                      "folder)", RecordWarning, stacklevel=3)
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, RecursionError) as exc:
        data, why = None, getattr(exc, "strerror", None) or type(exc).__name__
    else:
        why = f"a {type(data).__name__}, not an object"
    if isinstance(data, dict):
        return data
    warnings.warn(f"{printable(path)}: ignored ({why}); the run is shown without it", RecordWarning, stacklevel=3)
    return {}


def _text(*values: object) -> str | None:
    """The first non-empty text among ``values`` (run.json or a record may hold anything)."""
    return next((v for v in values if isinstance(v, str) and v), None)


def find_runs(results_dir: Path) -> list[Run]:
    """Every folder under ``results_dir`` (itself included) holding a records.jsonl.

    A run's folder is not searched further (its cells/ hold no runs); hidden folders (temp
    files, a previous site's swap) are skipped, and so, with a RecordWarning naming the folder, is
    a run whose records.jsonl cannot be read or holds no usable record among its lines.
    """
    found = []
    for folder, dirs, files in os.walk(results_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if RECORDS_FILE not in files:
            continue
        dirs[:] = []
        path = Path(folder)
        first, why = _first_record(path)
        if first is None:
            warnings.warn(f"{printable(path)}: run skipped: {why}", RecordWarning, stacklevel=2)
            continue
        meta, env = _read_meta(path / "run.json"), _read_meta(path / "env.json")
        suite = _text(meta.get("suite"), first.get("suite")) or (path.parent.name if path != results_dir else "unnamed")
        rel = path.relative_to(results_dir).as_posix()
        found.append(Run(path=path, rel=rel if rel != "." else path.name, suite=suite,
                         run_id=_text(meta.get("run_id"), first.get("run_id")) or path.name,
                         started=_text(meta.get("started_at"), env.get("started_at")), meta=meta, env=env,
                         machine=machine_fingerprint(env)))
    return found


def slug(name: str, taken: set[str]) -> str:
    """A file-name-safe, unique form of ``name`` (hostile names included)."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")[:60] or "x"
    slug = base if base == name else f"{base}-{hashlib.sha256(name.encode()).hexdigest()[:6]}"
    n = 2
    while slug.lower() in taken:
        slug, n = f"{base}-{n}", n + 1
    taken.add(slug.lower())
    return slug


# --- the site's machines --------------------------------------------------------------------

def machines_of(runs: list[Run]) -> dict[str, dict]:
    """Every machine, oldest first: a colour, a short name (the host, numbered when hosts repeat), a label."""
    machines: dict[str, dict] = {}
    for run in sorted(runs, key=lambda r: (str(r.started or ""), r.rel)):
        if run.machine not in machines:
            machines[run.machine] = {"env": run.env, "label": machine_label(run.env)}
    hosts = Counter(str(m["env"].get("hostname") or "unknown") for m in machines.values())
    seen: Counter = Counter()
    for i, m in enumerate(machines.values()):
        host = str(m["env"].get("hostname") or "unknown")
        seen[host] += 1
        m["short"] = f"{host} #{seen[host]}" if hosts[host] > 1 else host
        m["colour"] = PALETTE[i % len(PALETTE)]
    return machines
