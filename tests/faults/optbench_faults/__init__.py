"""Methods that fail the way real plugins do: raise, abort, segfault, ``os._exit``, hang, leave children
running, flood their output, grow past the memory limit. The fault tests install this distribution into
a folder of their own and run ``faults.yaml`` through the real CLI; nothing here is for real work.

Methods that start processes write their pids to ``pid_file`` so a test can check none outlived the run.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pydantic import Field

from harness import Method, Params, hookimpl


class FaultParams(Params):
    pid_file: str | None = Field(None, description="append the pids of processes this method starts here")
    seconds: float = Field(1000.0, ge=0, description="how long a hang lasts")
    megabytes: float = Field(50.0, ge=0, description="how much a flood prints, or a growth allocates (MB)")


def _note_pids(params: FaultParams, pids: list[int]) -> None:
    if params.pid_file:
        with open(params.pid_file, "a") as fh:
            fh.write("".join(f"{p}\n" for p in pids))


def _sleepers(params: FaultParams, n: int = 2) -> list[subprocess.Popen]:
    procs = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)"]) for _ in range(n)]
    _note_pids(params, [p.pid for p in procs])
    return procs


def _raise(model, params, ctx):
    raise RuntimeError("faults.raise: a plugin bug")


def _abort(model, params, ctx):
    os.abort()


def _segfault(model, params, ctx):
    import ctypes

    ctypes.string_at(0)


def _kill(model, params, ctx):
    os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer or a user's kill -9 ends a process


def _exit(model, params, ctx):
    os._exit(7)


def _hang(model, params, ctx):
    _sleepers(params)  # a hang that also started children: a timeout or Ctrl-C must take them all
    print("faults.hang: sleeping", flush=True)
    time.sleep(params.seconds)
    return model


def _children(model, params, ctx):
    _sleepers(params)  # ... and returns normally, leaving them running
    return model


def _flood(model, params, ctx):
    line = "x" * 1023 + "\n"
    for _ in range(int(params.megabytes * 1024)):
        sys.stdout.write(line)
    sys.stdout.flush()
    return model


def _grow(model, params, ctx):
    import torch

    hoard = [torch.ones(int(64 * 2**20 // 4)) for _ in range(int(params.megabytes // 64) + 1)]  # 64 MB a piece
    Path(os.devnull).write_text(str(len(hoard)))
    return model


FAULTS = {
    "faults.raise": ("raises a RuntimeError", _raise),
    "faults.abort": ("calls abort() (SIGABRT)", _abort),
    "faults.segfault": ("dereferences NULL (SIGSEGV)", _segfault),
    "faults.exit": ("os._exit(7) without a result", _exit),
    "faults.kill": ("SIGKILLs its own process (not the OOM killer)", _kill),
    "faults.hang": ("starts two sleeping children and sleeps", _hang),
    "faults.children": ("starts two sleeping children and returns normally", _children),
    "faults.flood": ("prints `megabytes` MB to stdout", _flood),
    "faults.grow": ("allocates `megabytes` MB of tensors", _grow),
}


@hookimpl
def register_methods(register):
    for name, (description, apply) in FAULTS.items():
        register(Method(name=name, kind="pruner", description=description, apply=apply, params=FaultParams))
