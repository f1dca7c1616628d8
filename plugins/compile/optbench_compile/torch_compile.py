"""``torch.compile`` as a method: compile once, up front, and report how long it took.

torch compiles lazily, on the first call with a new input shape. Left alone, that
first call would land in the harness's warm-up or, worse, its timed calls. So ``apply``
runs one forward pass per measured batch size (``ctx.batch_sizes``) under
``torch.inference_mode()``, the mode the harness measures in, and reports the total
as ``compile_s``; latency is then the latency of compiled code.

A Hugging Face generative model (a causal LM) is also set up for compiled generation the way
transformers does it: ``generate`` with a static key/value cache compiles its per-token decode step
(``compile_generation``); those graphs compile on the first generation at each shape, which the
harness makes apart, before timing, and records as ``first_generation_ms``.

What cannot work here becomes ``Skip`` (a Python version or platform dynamo does not
support, no working C++ compiler for inductor on CPU, no Triton for CUDA); what fails
for this model (a graph break under ``fullgraph=True``, an inductor error) is a failed
cell with the exception's first line.

torch imports stay inside functions: this module is imported at plugin discovery.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from harness import MethodContext, Params, Skip, call_model, map_tensors

if TYPE_CHECKING:
    import torch
    from torch import nn


class CompileParams(Params):
    mode: Literal["default", "reduce-overhead", "max-autotune"] = Field(
        "default",
        description="torch.compile mode; reduce-overhead and max-autotune add CUDA graphs, which are "
        "skipped on CPU; max-autotune also autotunes matmul kernels",
    )
    dynamic: bool | None = Field(
        None,
        description="None: static shapes first, one dynamic graph once a shape changes; "
        "True: dynamic shapes from the start; False: one static graph per batch size "
        "(batch size 1 is always its own static graph)",
    )
    fullgraph: bool = Field(False, description="fail instead of splitting the model at graph breaks")


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message``, the part of a long torch error a reader needs."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    while exc is not None and exc not in out:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def unavailable_reason(device: torch.device) -> str | None:
    """Why torch.compile cannot run on ``device`` here, found before compiling; else None."""
    import torch._dynamo

    try:
        torch._dynamo.eval_frame.check_if_dynamo_supported()
    except Exception as exc:  # e.g. "Python 3.15+ not yet supported for torch.compile"
        return f"torch.compile is not supported here: {first_line(exc)}"
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            return "torch.compile (inductor) on CUDA needs Triton, which is not installed or does not support this GPU"
    return None


def environment_failure(exc: BaseException) -> str | None:
    """A Skip reason when compiling failed because of the machine, not the model."""
    for e in _chain(exc):
        name = type(e).__name__
        if name == "InvalidCxxCompiler":
            return f"torch.compile needs a working C++ compiler for inductor on CPU: {first_line(e)}"
        if "triton" in str(e).lower() and ("cannot find" in str(e).lower() or "not installed" in str(e).lower()):
            return f"torch.compile needs Triton on this device: {first_line(e)}"
    return None


def dynamo_counts() -> dict[str, int]:
    """The dynamo/inductor counters this method logs: graphs captured, graph breaks, CUDA graph skips."""
    from torch._dynamo.utils import counters

    return {
        "graphs": int(counters["stats"]["unique_graphs"]),
        "graph_breaks": int(sum(counters["graph_break"].values())),
        "cudagraph_skips": int(counters["inductor"]["cudagraph_skips"]),
    }


def _sync(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compile_model(model: nn.Module, params: CompileParams, ctx: MethodContext) -> tuple[Any, dict[str, Any]]:
    """(compiled module, facts): compiled and warmed at every batch size in ``ctx.batch_sizes``."""
    import torch

    t0 = time.perf_counter()  # the first use in a process imports dynamo (seconds): part of the cost
    reason = unavailable_reason(ctx.device)
    if reason:
        raise Skip(reason)
    # Compile for the device and mode the harness will run in: moving or switching to
    # train mode afterwards would fail dynamo's guards and compile again, unrecorded.
    model = model.to(ctx.device).eval()
    compiled = torch.compile(model, mode=params.mode, dynamic=params.dynamic, fullgraph=params.fullgraph)
    wrap_s = time.perf_counter() - t0
    before = dynamo_counts()
    per_batch: dict[int, float] = {}
    for bs in dict.fromkeys(ctx.batch_sizes):  # unique, in order
        x = map_tensors(ctx.data.test.example(bs), lambda t: t.to(ctx.device))  # the batch the harness times
        _sync(ctx.device)
        t0 = time.perf_counter()
        try:
            with torch.inference_mode():
                call_model(compiled, x)
            _sync(ctx.device)
        except Exception as exc:
            skip = environment_failure(exc)
            if skip:
                raise Skip(skip) from exc
            if params.fullgraph and any(type(e).__name__ in ("Unsupported", "UserError") for e in _chain(exc)):
                raise RuntimeError(
                    f"torch.compile(fullgraph=True) cannot capture this model in one graph: {first_line(exc)}; "
                    "fullgraph=false allows graph breaks"
                ) from exc
            raise RuntimeError(
                f"torch.compile(mode={params.mode!r}) failed at batch size {bs}: {first_line(exc)}"
            ) from exc
        per_batch[bs] = time.perf_counter() - t0
    after = dynamo_counts()
    facts = {
        "compile_s": wrap_s + sum(per_batch.values()),
        "wrap_s": wrap_s,
        "per_batch_s": per_batch,
        **{k: after[k] - before[k] for k in after},
    }
    return compiled, facts


def generative_models(model: nn.Module) -> list[Any]:
    """The Hugging Face generative models inside ``model``: what ``generate`` runs on."""
    return [m for m in model.modules()
            if callable(getattr(m, "generate", None)) and hasattr(m, "generation_config")
            and callable(getattr(m, "get_compiled_call", None))]


def compile_generation(model: nn.Module, params: CompileParams) -> int:
    """Have transformers' ``generate`` compile what it runs per new token: a static key/value cache
    (fixed shapes, which compiled decode steps need) and ``compile_config`` with this method's mode,
    dynamic and fullgraph, on every device (transformers compiles on CUDA only unless told). The
    prefill stays eager, as transformers runs it. Returns the number of models set up so."""
    found = generative_models(model)
    if not found:
        return 0
    from transformers import CompileConfig

    for m in found:
        config = CompileConfig(fullgraph=params.fullgraph, dynamic=params.dynamic, mode=params.mode)
        config._compile_all_devices = True
        m.generation_config.cache_implementation = "static"
        m.generation_config.compile_config = config
    return len(found)


def apply(model: nn.Module, params: CompileParams, ctx: MethodContext) -> nn.Module:
    generating = compile_generation(model, params)
    compiled, facts = compile_model(model, params, ctx)
    ctx.report(compile_s=facts["compile_s"])
    times = ", ".join([f"torch.compile {facts['wrap_s']:.2f}s"] + [f"bs {bs}: {s:.2f}s" for bs, s in facts["per_batch_s"].items()])
    ctx.log(
        f"compile.torch (mode {params.mode}, dynamic {params.dynamic}, fullgraph {params.fullgraph}) "
        f"on {ctx.device}: compiled in {facts['compile_s']:.2f}s ({times}); "
        f"{facts['graphs']} graph(s), {facts['graph_breaks']} graph break(s)"
    )
    if generating:
        ctx.log(
            "compile.torch: generation: transformers' generate compiles its decode step (static key/value cache, "
            f"CompileConfig(mode={params.mode!r}, dynamic={params.dynamic}, fullgraph={params.fullgraph})); the prefill "
            "runs eager; the first generation at each batch size and prompt length compiles "
            "(first_generation_ms in its record)"
        )
    if facts["graphs"] == 0:
        ctx.log("compile.torch: warning: dynamo captured no graph (recompile limit?); the model runs eagerly")
    if facts["cudagraph_skips"]:
        ctx.log(
            f"compile.torch: CUDA graphs were skipped for {facts['cudagraph_skips']} graph(s): "
            f"mode {params.mode!r} asks for them, but they need every tensor on a CUDA device"
        )
    return compiled
