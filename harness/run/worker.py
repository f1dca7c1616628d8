"""What runs inside a cell's own process: the scenario (``harness.run.cell_scenario``), then its result.

The parent (an executor) passes a ``CellPayload`` and reads back ``result.json`` (a ``CellResult``);
nothing else crosses the process boundary, so a crash, hang or out-of-memory here costs only this
cell. Stdout and stderr (C libraries included) go to the cell's log. The record parts the cell
measured are checked against the record schema here, so a plugin that writes a field twice, an
undeclared field or a value of the wrong type fails its own cell, naming the field.
"""
from __future__ import annotations

import faulthandler
import json
import os
import sys
import time
import traceback
import warnings
from typing import Any

# Imported at module level so a forkserver that preloads this module pays for torch once.
import torch  # noqa: F401

from harness.measure import memory
from harness.plugin.types import Skip
from harness.record.core_fields import IDENTITY, LATENCY, OUTCOME, RELATIVE
from harness.record.schema import RecordSchema
from harness.record.status import Status
from harness.registry.manager import PluginManager
from harness.run import limits
from harness.run.cell_log import log
from harness.run.cell_payload import CellPayload, CellResult, write_json_atomic
from harness.run.cell_scenario import CellScenario

#: The field groups the runner writes itself (the cell's identity and outcome, the timing summary of its
#: samples, the figures against the baseline): a cell's own parts may not write them.
RUNNER_GROUPS = (IDENTITY, OUTCOME, LATENCY, RELATIVE)


def _redirect_output(log_path: Any) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    _redirect_to_fd(fd)
    os.close(fd)


def _redirect_to_fd(fd: int) -> None:
    """Stdout and stderr (file descriptors 1 and 2, so C libraries' output too) to ``fd``."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115


def reserved_fields(schema: RecordSchema) -> dict[str, str]:
    """The fields the runner writes (``RUNNER_GROUPS``), each with the name of its writer."""
    return {name: "the runner" for name, f in schema.fields.items() if f.owner == "core" and f.group in RUNNER_GROUPS}


def measure_cell(payload: CellPayload, pm: PluginManager) -> tuple[CellResult, dict[str, list[int]], dict | None]:
    """Run one cell's scenario; its parts checked against the record schema."""
    parts, points, samples, curves = CellScenario(payload, pm).run()
    schema, reserved = pm.registry.schema, reserved_fields(pm.registry.schema)
    parts = schema.checked(parts, reserved)
    shared = {name: part.source for part in parts for name in part.values}
    checked = {key: schema.checked(point, {**reserved, **shared}) for key, point in points.items()}
    return CellResult(Status.OK, None, parts, checked), samples, curves


def _failure(exc: BaseException, memory_mb: float | None) -> CellResult:
    if limits.is_out_of_memory(exc):
        peak = memory.rss_bytes() / 2**20
        error = (f"out of memory: {type(exc).__name__}: {str(exc)[:300]} (execution.memory_limit_mb={memory_mb:g}; "
                 f"RSS {peak:.0f} MB when it failed)" if memory_mb else f"out of memory: {exc}")
        return CellResult(Status.OOM, error)
    return CellResult(Status.FAILED, f"{type(exc).__name__}: {exc}")


def run_cell(payload: CellPayload, log_pipe: Any = None) -> None:
    """Process entry point. Always leaves result.json unless the process itself dies.

    Output (C libraries' included) goes to ``log_pipe`` when the executor reads it (and caps the
    log), else straight to the cell's log file. A fatal signal (segfault, abort) writes every
    thread's Python stack there first (faulthandler).
    """
    os.setpgrp()  # so the parent can kill this cell and anything it started
    start = time.perf_counter()
    files = payload.files
    if log_pipe is not None:
        _redirect_to_fd(log_pipe.fileno())
        log_pipe.close()
    else:
        _redirect_output(files.log)
    faulthandler.enable(file=sys.stderr, all_threads=True)
    warnings.simplefilter("default")
    memory_mb = payload.memory_limit_mb
    limits.apply_memory_limit(memory_mb)
    log(f"cell {payload.cell.cell_id} pid {os.getpid()}" + (f", memory limit {memory_mb:g} MB" if memory_mb else ""))
    samples: dict[str, list[int]] | None = None
    curves = None
    try:
        result, samples, curves = measure_cell(payload, PluginManager.from_payload(payload.plugins))
    except Skip as exc:
        log(f"skipped: {exc}")
        result = CellResult(Status.SKIPPED, str(exc))
    except BaseException as exc:  # everything a plugin can throw ends as a failed cell
        traceback.print_exc()
        result = _failure(exc, memory_mb)
    if samples is not None:
        write_json_atomic(files.samples, samples)
    if curves:
        write_json_atomic(files.curves, curves)
    result.work_s = time.perf_counter() - start
    write_json_atomic(files.result, result.to_json())
    sys.stdout.flush()
    sys.stderr.flush()


def backend_info(plugins: dict, backends: list[dict], conn: Any) -> None:
    """Process entry point: each backend's ``info()`` (hardware details for env.json), or why it
    cannot run here. Runs in a throwaway process so that, e.g., a CUDA context it creates is
    gone before any cell starts."""
    out: dict[str, Any] = {}
    try:
        pm = PluginManager.from_payload(plugins)
        for entry in backends:
            label = entry["name"] + (f"({json.dumps(entry['params'], sort_keys=True)})" if entry["params"] else "")
            try:
                spec = pm.registry.backends[entry["name"]]
                session = spec.create(spec.params.model_validate(entry["params"]))
                reason = session.unavailable_reason()
                if reason:
                    out[label] = {"unavailable": reason}
                    continue
                session.setup()
                out[label] = session.info()
            except Exception as exc:  # noqa: BLE001 - a backend's info must not stop the run
                out[label] = {"error": f"{type(exc).__name__}: {exc}"}
        conn.send(json.loads(json.dumps(out, default=str)))
    finally:
        conn.close()

