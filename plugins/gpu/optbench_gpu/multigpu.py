"""The multi-gpu backend: one process per device over torch.distributed, data-parallel
inference and training.

The cell's model (method applied, on the CPU) is handed to N rank processes forked from
the cell's process, so nothing needs pickling and CUDA is only ever initialised in the
ranks. Each rank gets a torchrun-compatible environment (RANK, WORLD_SIZE, LOCAL_RANK,
LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), joins a process group (NCCL on GPUs, gloo
for ``device_type: cpu``, which runs the same distributed code with CPU processes so it
can be tested without GPUs), moves its replica to its device and takes its share of the
batch (``torch.tensor_split``: a batch smaller than N leaves ranks idle, recorded as
``ranks_used``).

Timing follows the harness's rules (warm-up and repeat, each until both its minimum
count and minimum time hold), with the iterations aligned across ranks: every call
starts after a barrier and is timed on its own rank (CUDA: synchronised before the clock
is read); rank 0 decides, outside the timed region, whether another iteration is needed.
A call's latency is the slowest rank's time for that iteration, so throughput = batch /
mean latency is the aggregate. ``rank_p50_ms``/``rank_p99_ms`` give each rank's own.
With ``scaling`` on, one rank also times its share alone, and
``scaling_efficiency`` = throughput on N / (N x throughput of that single rank).

Training-time methods (optimizers, distillers, transfer) train with
DistributedDataParallel: every ``ctx.fit`` of the method runs in N ranks, where
``harness.train.fit.fit`` splits each global batch across them (same steps and same
gradients as on one device, see its docstring); rank 0's weights come back into the
cell's model, which is then measured like any other. The record gains
``train_samples_per_s`` (over every epoch but the first) and, with ``scaling`` on,
``train_single_rank_samples_per_s`` from a short run on one device alone (the same
budget, capped at SCALING_REFERENCE_EPOCHS epochs, no process group) and
``train_scaling_efficiency`` = samples/s on N / (N x samples/s on one device).
Time to target is measured as on one device: training seconds of rank 0 with
evaluation paused.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

from pydantic import Field

from harness import Backend, BackendSession, MemoryReading, Params

RANK_TIMEOUT_S = 600.0
RANK_WAIT_FOREVER_S = 7 * 24 * 3600.0
#: Epochs of the one-device reference run behind train_scaling_efficiency (the first is warm-up).
SCALING_REFERENCE_EPOCHS = 3


class MultiGPUParams(Params):
    devices: int = Field(2, ge=1, le=64, description="ranks: one process per device")
    device_type: Literal["cuda", "cpu"] = Field(
        "cuda", description="cuda: one GPU per rank over NCCL; cpu: CPU processes over gloo (the distributed "
        "path without GPUs)",
    )
    scaling: bool = Field(True, description="also time one rank alone, for scaling_efficiency")
    threads_per_rank: int | None = Field(
        None, ge=1, le=1024, description="cpu ranks: intra-op threads each (default: cores // devices, at least 1)"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _send(conn: Any, message: dict[str, Any]) -> None:
    """Plain pickle, by value: multiprocessing's own pickler would share tensors through
    file descriptors that die with the rank, which exits right after sending."""
    conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


RankWork = Callable[[int, int, Any, Callable[[], None]], Any]


def _rank_main(rank: int, world: int, port: int, device_type: str, threads: int | None, group: bool,
               work: RankWork, conn: Any) -> None:
    """One rank: a torchrun-like environment, its device, the process group (when
    ``group``), then ``work(rank, world, device, sync)``; rank 0 sends what it returns."""
    code = 0
    try:
        import torch
        import torch.distributed as dist

        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                          LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
        if device_type == "cuda":
            torch.cuda.set_device(rank)
            device = torch.device("cuda", rank)
            sync: Callable[[], None] = lambda: torch.cuda.synchronize(device)  # noqa: E731
            backend = "nccl"
        else:
            if threads:
                torch.set_num_threads(threads)
            device = torch.device("cpu")
            sync = lambda: None  # noqa: E731
            backend = "gloo"
        if group:
            dist.init_process_group(backend, rank=rank, world_size=world)
        payload = work(rank, world, device, sync)
        if rank == 0:
            _send(conn, {"ok": True, "payload": payload})
        if group:
            dist.destroy_process_group()
    except BaseException as exc:  # a failing rank reports, the parent raises with its message
        code = 1
        from harness import Skip

        try:
            _send(conn, {"ok": False, "rank": rank, "skip": isinstance(exc, Skip),
                         "error": f"{type(exc).__name__}: {exc}", "message": str(exc), "trace": traceback.format_exc()})
        except Exception:  # noqa: BLE001 - the pipe may be gone with the parent
            pass
    finally:
        conn.close()
        os._exit(code)  # never run the cell process's atexit handlers in a rank


def launch(world: int, work: RankWork, *, device_type: str, threads: int | None, group: bool = True,
           timeout_s: float | None = RANK_TIMEOUT_S) -> Any:
    """Fork ``world`` rank processes running ``work``; return what rank 0's returned.

    Forked, so ``work`` and what it closes over (the model, a loss function) need no
    pickling; rank 0's return value travels back through a pipe. A rank's exception is
    raised here with its message (``Skip`` as ``Skip``); ranks still alive at the end are
    killed. ``timeout_s`` None waits as long as the cell may run (its own timeout kills
    the cell's process group, ranks included).
    """
    from harness import Skip

    ctx = mp.get_context("fork")
    port = _free_port()
    receiver, sender = ctx.Pipe(duplex=False)
    procs = []
    for rank in range(world):
        p = ctx.Process(target=_rank_main, name=f"rank-{rank}",
                        args=(rank, world, port, device_type, threads, group, work, sender))
        p.start()
        procs.append(p)
    sender.close()
    limit = RANK_WAIT_FOREVER_S if timeout_s is None else timeout_s
    try:
        messages = []
        deadline = time.monotonic() + limit
        while receiver.poll(max(0.0, deadline - time.monotonic())):
            try:
                messages.append(pickle.loads(receiver.recv_bytes()))
            except EOFError:
                break
            if messages[-1].get("ok"):
                break
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()) + 5)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(5)
        receiver.close()
    done = next((m for m in messages if m.get("ok")), None)
    if done is None:
        failed = next((m for m in messages if not m.get("ok")), None)
        if failed and failed.get("skip"):
            raise Skip(failed["message"])
        if failed:
            raise RuntimeError(f"multi-gpu rank {failed['rank']} failed: {failed['error']}\n{failed['trace']}")
        codes = [p.exitcode for p in procs]
        raise RuntimeError(f"multi-gpu ranks ended without a result within {limit:g}s (exit codes {codes})")
    return done["payload"]


def _timing_work(model: Any, shares: list[Any], warmup: tuple[int, float], repeat: tuple[int, float]) -> RankWork:
    """Each rank times aligned calls of its replica on its share; rank 0 returns every rank's samples (ns)."""

    def work(rank: int, world: int, device: Any, sync: Callable[[], None]) -> list[dict[str, Any]]:
        import torch
        import torch.distributed as dist

        from harness import batch_size, call_model, map_tensors

        replica = model.to(device)
        share = shares[rank]
        x = map_tensors(share, lambda t: t.to(device)) if share is not None and batch_size(share) else None
        flag = torch.zeros(1, dtype=torch.int32, device=device if device.type == "cuda" else "cpu")

        def loop(budget: tuple[int, float], timed: bool) -> list[int]:
            min_iters, min_s = budget
            samples: list[int] = []
            begin = time.perf_counter()
            done = 0
            while True:
                dist.barrier()
                t0 = time.perf_counter_ns()
                if x is not None:
                    with torch.inference_mode():
                        call_model(replica, x)
                    sync()
                if timed:
                    samples.append(time.perf_counter_ns() - t0)
                done += 1
                if rank == 0:  # rank 0 decides, outside the timed region, for everyone
                    flag.fill_(int(done < min_iters or time.perf_counter() - begin < min_s))
                dist.broadcast(flag, src=0)
                if not int(flag.item()):
                    return samples

        loop(warmup, timed=False)
        mine = loop(repeat, timed=True)
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, {"rank": rank, "samples": mine, "idle": x is None})
        return gathered

    return work


def run_ranks(model: Any, shares: list[Any], warmup: Any, repeat: Any, *, device_type: str,
              threads: int | None, timeout_s: float = RANK_TIMEOUT_S) -> list[dict[str, Any]]:
    """Fork one process per share, time aligned calls, return each rank's samples (ns)."""
    work = _timing_work(model, shares, (warmup.min_iters, warmup.min_seconds), (repeat.min_iters, repeat.min_seconds))
    ranks = launch(len(shares), work, device_type=device_type, threads=threads, timeout_s=timeout_s)
    return sorted(ranks, key=lambda r: r["rank"])


def _training_work(train: Callable[..., Any], modules: list[Any], max_epochs: int | None,
                   start: list[dict[str, Any]] | None = None) -> RankWork:
    """Each rank runs the training run (data-parallel when a group is up), from the
    weights ``start`` when given; rank 0 returns its FitResult without the model, and the
    trained weights of ``modules``."""

    def work(rank: int, world: int, device: Any, sync: Callable[[], None]) -> dict[str, Any]:
        for module, state in zip(modules, start or [], strict=False):
            module.load_state_dict(state)
        result = train(device) if max_epochs is None else train(device, max_epochs)
        if rank != 0:
            return {}
        states = [m.state_dict() for m in modules]  # fit leaves them on the CPU
        result.model = None
        return {"result": result, "states": states}

    return work


class MultiGPUSession(BackendSession):
    times_whole_calls = True  # one call is spread over the ranks (``time_model``)

    def __init__(self, params: MultiGPUParams) -> None:
        self.params = params
        self.device_key = f"multi-gpu:{params.device_type}"
        self._fields: dict[str, Any] = {}

    def unavailable_reason(self) -> str | None:
        if self.params.device_type == "cpu":
            return None
        import torch

        if not torch.distributed.is_available() or not torch.distributed.is_nccl_available():
            return "multi-gpu on cuda needs torch.distributed with NCCL, which this torch build lacks"
        if torch.version.cuda is None:
            return f"this torch build has no CUDA support (torch {torch.__version__}); multi-gpu needs CUDA devices"
        visible = torch.cuda.device_count()  # counts without creating a context: ranks initialise CUDA
        if visible < self.params.devices:
            env = os.environ.get("CUDA_VISIBLE_DEVICES")
            return (f"multi-gpu asks for {self.params.devices} CUDA devices, {visible} visible"
                    + (f" (CUDA_VISIBLE_DEVICES={env})" if env is not None else ""))
        return None

    def _threads(self) -> int | None:
        if self.params.device_type != "cpu":
            return None
        return self.params.threads_per_rank or max(1, (os.cpu_count() or 1) // self.params.devices)

    def setup(self) -> dict[str, Any]:
        return {"world_size": self.params.devices,
                "dist_backend": "nccl" if self.params.device_type == "cuda" else "gloo",
                "threads": self._threads()}

    @property
    def device(self) -> Any:
        import torch

        return torch.device("cpu")  # the cell's process keeps the model on the CPU; ranks move their replica

    def time_calls(self, fn: Callable[[], Any], warmup: Any, repeat: Any) -> list[int]:
        from harness import time_calls

        return time_calls(fn, warmup, repeat)

    def time_model(self, model: Any, x: Any, warmup: Any, repeat: Any) -> list[int]:
        import torch

        from harness import batch_size, summarize

        n = self.params.devices
        if isinstance(x, dict):  # every named tensor split the same way, so each rank's share stays aligned
            parts = {k: torch.tensor_split(v, n) for k, v in x.items()}
            shares = [{k: parts[k][i] for k in parts} for i in range(n)]
        else:
            shares = list(torch.tensor_split(x, n))
        used = sum(1 for s in shares if batch_size(s))
        ranks = run_ranks(model, shares, warmup, repeat, device_type=self.params.device_type,
                          threads=self._threads())
        iterations = min(len(r["samples"]) for r in ranks)
        per_call = [max(r["samples"][i] for r in ranks if not r["idle"]) for i in range(iterations)]
        per_rank = [summarize(r["samples"], max(1, batch_size(share))) if not r["idle"] else None
                    for r, share in zip(ranks, shares, strict=True)]
        fields: dict[str, Any] = {
            "ranks_used": used,
            "rank_p50_ms": [p["latency_p50_ms"] if p else None for p in per_rank],
            "rank_p99_ms": [p["latency_p99_ms"] if p else None for p in per_rank],
            "scaling_efficiency": None,
            "single_rank_throughput_per_s": None,
        }
        if self.params.scaling and used > 1:
            (alone,) = run_ranks(model, [shares[0]], warmup, repeat, device_type=self.params.device_type,
                                 threads=self._threads())
            single = batch_size(shares[0]) / (sum(alone["samples"]) / len(alone["samples"]) / 1e9)
            aggregate = batch_size(x) / (sum(per_call) / len(per_call) / 1e9)
            fields["single_rank_throughput_per_s"] = single
            fields["scaling_efficiency"] = aggregate / (used * single)
        self._fields = fields
        return per_call

    def run_training(self, train: Callable[..., Any], modules: Any, role: str) -> Any:
        """Train data-parallel (DDP) over the ranks; for the main run, with ``scaling`` on,
        also train on one device alone for a few epochs: train_scaling_efficiency."""
        import copy

        modules = list(modules)
        n, kind, threads = self.params.devices, self.params.device_type, self._threads()
        # The one-device reference starts where the data-parallel run started, not from its
        # trained weights (a converged model trains on denormal-sized updates, several times slower on CPUs).
        reference = self.params.scaling and n > 1 and role == "main"
        initial = [copy.deepcopy(m.state_dict()) for m in modules] if reference else None
        out = launch(n, _training_work(train, modules, None), device_type=kind, threads=threads,
                     group=n > 1, timeout_s=None)
        for module, state in zip(modules, out["states"], strict=True):
            module.load_state_dict(state)
        result = out["result"]
        result.model = modules[0]
        if reference and result.samples_per_s:
            alone = launch(1, _training_work(train, modules, SCALING_REFERENCE_EPOCHS, initial), device_type=kind,
                           threads=threads, group=False, timeout_s=None)["result"]
            result.single_rank_samples_per_s = alone.samples_per_s
        return result

    @contextmanager
    def memory_window(self, batch_size: int | None = None) -> Iterator[MemoryReading]:
        self._fields = {}
        reading = MemoryReading()
        yield reading
        reading.fields.update(self._fields)

    def info(self) -> dict[str, Any]:
        return {"world_size": self.params.devices, "device_type": self.params.device_type}


MULTI_GPU = Backend(
    name="multi-gpu",
    description="data-parallel inference and DistributedDataParallel training over N ranks (torch.distributed: "
    "NCCL on GPUs, gloo on CPU processes); aggregate throughput, per-rank p50/p99, scaling efficiency",
    create=MultiGPUSession,
    params=MultiGPUParams,
)
