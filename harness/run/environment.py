"""env.json: the machine and software a run's figures came from."""
from __future__ import annotations

import datetime as dt
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.builtin.cpu import cpu_model
from harness.registry.manager import PluginManager
from harness.run import machine_facts


def physical_cores() -> int | None:
    try:
        seen = set()
        phys = core = None
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("physical id"):
                    phys = line.split(":")[1].strip()
                elif line.startswith("core id"):
                    core = line.split(":")[1].strip()
                    seen.add((phys, core))
        return len(seen) or None
    except OSError:
        return None


def git_commit(folder: Path) -> dict[str, Any] | None:
    """Commit (and whether the tree is dirty) of the repository holding ``folder``."""
    try:
        head = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain"], capture_output=True, text=True, timeout=10)
        return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


def gpus() -> list[dict[str, Any]]:
    """Visible GPUs: ``{"index": i}``, with name and memory_total_mb where NVML names them.
    Counted through torch, named through NVML: naming them through torch would create a CUDA
    context in the driver process; the cuda backend records per-GPU details itself."""
    return machine_facts.gpu_facts()[0]


def collect(pm: PluginManager, suite_path: Path | None) -> dict[str, Any]:
    import numpy
    import torch

    from harness.version import __version__

    visible_gpus, gpu_driver = machine_facts.gpu_facts()
    return {
        "harness_version": __version__,
        "plugins": {
            info.name: {"distribution": info.distribution, "version": info.version}
            for info in pm.plugins.values()
        },
        "broken_plugins": {name: info.error for name, info in pm.broken.items()},
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "physical_cores": physical_cores(),
        "threads_default": torch.get_num_threads(),
        "gpus": visible_gpus,
        "gpu_driver": gpu_driver,
        # what selects kernels; harness.results.load.machine_fingerprint is made from these
        "cpu": machine_facts.cpu_facts(),
        "torch_build": machine_facts.torch_build_facts(),
        "hostname": socket.gethostname(),
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "suite_git": git_commit(suite_path.parent) if suite_path else None,
    }
