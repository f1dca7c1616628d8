"""The cpu backend: host timers around synchronous calls, a fixed thread count."""
from __future__ import annotations

import os
import platform
from collections.abc import Callable
from typing import Any

from pydantic import Field

from harness.measure.timing import time_calls
from harness.plugin.types import Backend, BackendSession, Params


class CPUParams(Params):
    threads: int | None = Field(
        None, ge=1, le=1024, description="intra-op threads; default: torch's default (physical cores)"
    )


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class CPUSession(BackendSession):
    device_key = "cpu"

    def __init__(self, params: CPUParams) -> None:
        self.params = params
        self.threads: int | None = None

    def unavailable_reason(self) -> str | None:
        return None

    def setup(self) -> dict[str, Any]:
        import torch

        self.threads = self.params.threads or torch.get_num_threads()
        torch.set_num_threads(self.threads)
        return {"threads": self.threads}

    @property
    def device(self) -> Any:
        import torch

        return torch.device("cpu")

    def time_calls(self, fn: Callable[[], Any], warmup: Any, repeat: Any) -> list[int]:
        return time_calls(fn, warmup, repeat)

    def info(self) -> dict[str, Any]:
        return {"cpu_model": cpu_model(), "logical_cores": os.cpu_count(), "threads": self.threads}


CPU = Backend(
    name="cpu",
    description="host CPU: perf_counter_ns around each call, fixed intra-op thread count",
    create=CPUSession,
    params=CPUParams,
)
