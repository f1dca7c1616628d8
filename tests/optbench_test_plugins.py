"""Misbehaving plugins for the runner's isolation and contract tests.

Registered in-test with the ``optbench_plugin`` fixture; cell processes import this
module by name (it sits on sys.path next to the tests).
"""
from __future__ import annotations

import os
import time

from pydantic import Field

from harness import Method, Params, Skip, hookimpl


class SleepParams(Params):
    seconds: float = Field(1000.0, ge=0, description="how long apply() sleeps")


def _crash(model, params, ctx):
    os._exit(3)


def _segfault(model, params, ctx):
    import ctypes

    ctypes.string_at(0)


def _raise(model, params, ctx):
    raise RuntimeError("plugin bug: tensor shapes do not match")


def _hang(model, params, ctx):
    time.sleep(params.seconds)
    return model


def _skip(model, params, ctx):
    raise Skip("needs hardware this machine does not have")


class TrainSGDParams(Params):
    lr: float = Field(0.1, gt=0, description="SGD learning rate")
    schedule: str = "none"


def _train_sgd(model, params, ctx):
    import torch

    ctx.fit(model, optimizer=lambda ps: torch.optim.SGD(ps, lr=params.lr), schedule=params.schedule)
    return model


def _train_forgets(model, params, ctx):
    return model


def _busy_gpu(params):
    from contextlib import contextmanager

    from harness.builtin.cpu import CPUParams, CPUSession
    from harness.plugin.types import MemoryReading

    class BusySession(CPUSession):
        """The cpu backend, reporting that another process shared the device."""

        @contextmanager
        def memory_window(self, batch_size=None):
            reading = MemoryReading()
            yield reading
            reading.fields["gpu_other_processes"] = 1

    return BusySession(CPUParams())


class WritesParams(Params):
    field: str = Field("model_bytes", description="the record field the memory reading writes")
    value: str = Field("1", description="its value, as JSON")


def _writes(params):
    """The cpu backend, whose memory reading writes ``params.field`` (a field the harness writes itself, one no
    one declared, or a value of the wrong type)."""
    import json
    from contextlib import contextmanager

    from harness.builtin.cpu import CPUParams, CPUSession
    from harness.plugin.types import MemoryReading

    class WritingSession(CPUSession):
        @contextmanager
        def memory_window(self, batch_size=None):
            reading = MemoryReading()
            yield reading
            reading.fields[params.field] = json.loads(params.value)

    return WritingSession(CPUParams())


class ContendedParams(Params):
    blocks: int = Field(-1, ge=-1, description="timed blocks that read contended, then quiet ones; -1: every block")


def _contended(params):
    from harness.builtin.cpu import CPUParams, CPUSession

    class Load:
        """What ``harness.measure.host_load.BlockLoad`` reads, scripted: the cell's threads waited for a
        CPU half their time (another process had a core) while ``left`` blocks last."""

        def __init__(self, session):
            self.session, self.wait_share, self.other_cores, self.wall_s = session, None, None, 0.0

        def __enter__(self):
            self.t0 = time.perf_counter()
            return self

        def __exit__(self, *exc):
            self.wall_s = time.perf_counter() - self.t0
            busy = self.session.left != 0
            self.session.left -= busy and self.session.left > 0
            self.wait_share, self.other_cores = (0.5, 1.0) if busy else (0.0, 0.0)

    class ContendedSession(CPUSession):
        """The cpu backend, whose probe says the machine was busy for the first ``blocks`` timed blocks."""

        def __init__(self):
            super().__init__(CPUParams(threads=1))
            self.left = params.blocks

        def block_load(self):
            return Load(self)

    return ContendedSession()


def _returns_none(model, params, ctx):
    model.eval()  # forgot the return


def _build_plain(params, data):
    """A model with plain NoParams: the harness trains it with TrainableParams' defaults."""
    import math

    from torch import nn

    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(data.input_shape), data.num_classes))


def _load_tuple(params, seed):
    from harness.builtin.datasets import DIGITS

    splits = DIGITS.load(DIGITS.params(), seed)
    return splits.x_train, splits.y_train, splits.x_test, splits.y_test  # not a DatasetSplits


def _twice(model, params, ctx):
    """The same model run twice per call: exactly half the speed, the same outputs."""
    from torch import nn

    class Twice(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            self.inner(x)
            return self.inner(x)

    return Twice(model)


@hookimpl
def register_models(register):
    from harness import Model

    register(Model(name="test.plain", description="Flatten + Linear with NoParams", build=_build_plain))


@hookimpl
def register_datasets(register):
    from harness import Dataset

    register(Dataset(name="test.tuple", description="returns a tuple instead of DatasetSplits", load=_load_tuple))


@hookimpl
def register_backends(register):
    from harness import Backend

    register(Backend(name="test.busy-gpu", description="cpu, reporting a shared device", create=_busy_gpu))
    register(Backend(name="test.contended", description="cpu, whose probe reports a busy machine",
                     create=_contended, params=ContendedParams))
    register(Backend(name="test.writes", description="cpu, whose memory reading writes a record field of its choice",
                     create=_writes, params=WritesParams))


@hookimpl
def register_methods(register):
    register(Method(name="test.crash", kind="pruner", description="exits the process", apply=_crash))
    register(Method(name="test.segfault", kind="pruner", description="dereferences NULL", apply=_segfault))
    register(Method(name="test.raise", kind="pruner", description="raises", apply=_raise))
    register(Method(name="test.hang", kind="pruner", description="sleeps", apply=_hang, params=SleepParams))
    register(Method(name="test.skip", kind="pruner", description="skips", apply=_skip))
    register(Method(name="test.sgd", kind="optimizer", description="plain SGD through ctx.fit", apply=_train_sgd,
                    params=TrainSGDParams))
    register(Method(name="test.forgets", kind="optimizer", description="never calls ctx.fit", apply=_train_forgets))
    register(Method(name="test.twice", kind="pruner", description="runs the model twice per call", apply=_twice))
    register(Method(name="test.returns-none", kind="pruner", description="forgets to return the model",
                    apply=_returns_none))
