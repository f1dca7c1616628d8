"""What runs inside a cell's own process: build, change, measure, write the result.

The parent (harness.run.local_executor) passes a picklable payload and reads back
``result.json``; nothing else crosses the process boundary, so a crash, hang or
out-of-memory here costs only this cell. Stdout and stderr (C libraries included)
go to the cell's log file.
"""
from __future__ import annotations

import copy
import faulthandler
import json
import math
import os
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

# Imported at module level so a forkserver that preloads this module pays for torch once.
import torch

from harness.measure import contention, fidelity, memory, model_stats, pairing
from harness.measure.host_load import OtherCPU
from harness.measure.inputs import call_model
from harness.measure.timing import Budget, precise_enough
from harness.plugin.types import (
    TRAINING_FIELDS,
    BackendSession,
    DatasetSplits,
    MethodContext,
    Skip,
    training_settings,
)
from harness.registry.manager import PluginManager
from harness.run import language_cell, limits
from harness.train import classifier, weight_cache
from harness.train.fit import TrainingContext

#: Test inputs per call when the outputs for fidelity are computed.
FIDELITY_BATCH = 256
#: Per-epoch curves of a training cell, by role (main, reference, pretrain), beside result.json.
CURVE_FILE = "curve.json"


def _redirect_output(log_path: Path) -> None:
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


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, default=str))
    os.replace(tmp, path)


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def returned(obj: Any, expected: type, plugin: Any, call: str) -> Any:
    """``obj`` when a plugin's callable returned what the contract asks for, else a TypeError that
    names the plugin, the call and what came back (instead of an AttributeError cells later)."""
    if not isinstance(obj, expected):
        wanted = "a torch.nn.Module" if expected is torch.nn.Module else f"a harness.{expected.__name__}"
        raise TypeError(f"{plugin.plugin_type} {plugin.name!r}: {call} returned {type(obj).__name__}; "
                        f"expected {wanted}")
    return obj


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def trained_model(pm: PluginManager, model_ref: dict, dataset: dict, data: Any, seed: int) -> tuple[Any, str, bool]:
    """A trained model: the user's checkpoint (an absolute path by now), cached
    weights, or trained now with the model's own settings. The flag says whether its
    weights mean anything: random weights give speed and size but no accuracy."""
    spec = pm.registry.models[model_ref["name"]]
    params = spec.params.model_validate(model_ref["params"])
    torch.manual_seed(seed)  # the same initial weights whatever ran before in this process (a teacher)
    model = returned(spec.build(params, data), torch.nn.Module, spec, "build(params, data)")
    checkpoint = model_ref.get("checkpoint")
    if checkpoint:
        path = Path(checkpoint)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.eval(), f"checkpoint {path}", True
    if not spec.trainable:
        if spec.pretrained is not None and spec.pretrained(params):
            return model.eval(), "pretrained weights, as built", True
        return model.eval(), "random weights (the model is not trained by the harness; give a checkpoint)", False
    settings = training_settings(params)
    if settings["epochs"] == 0:  # its own initial weights, or weights its build loaded itself
        return model.eval(), "as built (epochs 0: not trained by the harness)", True
    if not data.trainable:
        return model.eval(), "random weights (the dataset has no labels to train on)", False
    owner = pm.owner(spec)
    ident = {
        "model": spec.name,
        "params": model_ref["params"],
        "dataset": [dataset["name"], dataset["params"]],
        "seed": seed,
        "provider": [owner.distribution, owner.version],
    }
    if any(name not in spec.params.model_fields for name in TRAINING_FIELDS):
        ident["training"] = settings  # the harness's defaults stand in for fields the params lack
    if spec.fingerprint is not None:
        ident["code"] = spec.fingerprint(params)  # e.g. the model's source: an edit retrains it
    ds_spec = pm.registry.datasets[dataset["name"]]
    if ds_spec.fingerprint is not None:  # e.g. the data files: new data retrains it
        ident["data"] = ds_spec.fingerprint(ds_spec.params.model_validate(dataset["params"]))
    key = weight_cache.cache_key(ident)
    state = weight_cache.load(key)
    if state is not None:
        model.load_state_dict(state)
        return model.eval(), f"cached weights {key}", True
    t0 = time.perf_counter()
    classifier.train_classifier(model, data, seed=seed, **settings)
    weight_cache.save(key, model.state_dict())
    return model.eval(), f"trained in {time.perf_counter() - t0:.1f}s, cached as {key}", True


#: Kinds after which a suite's ``finetune`` schedule runs; the others either leave no
#: float weights to train (converted quantizers, compilers) or would be undone by it
#: (weight sharing, simulated quantization).
FINETUNE_AFTER_KINDS = ("pruner", "factorizer")


def apply_method(pm: PluginManager, method: dict, model: Any, ctx: MethodContext,
                 finetune: dict | None) -> tuple[Any, bool]:
    """Apply a method or a pipeline's steps in order, fine-tuning after the last pruner or
    factorizer step when the suite asks for it. Returns (model, fine-tuned?)."""
    from harness.plugin.types import TRAINING_KINDS
    from harness.suite.matrix import method_steps
    from harness.suite.schema import Finetune

    steps = method_steps(method)
    kinds = [pm.registry.methods[s["name"]].kind for s in steps]
    tune_at = max((i for i, k in enumerate(kinds) if k in FINETUNE_AFTER_KINDS), default=None)
    if finetune is None or not ctx.data.has_labels:
        tune_at = None
    for i, step in enumerate(steps):
        spec = pm.registry.methods[step["name"]]
        model = returned(spec.apply(model, spec.params.model_validate(step["params"]), ctx), torch.nn.Module, spec,
                         "apply(model, params, ctx)")
        if spec.kind in TRAINING_KINDS and "main" not in getattr(ctx, "runs", {}):
            raise RuntimeError(f"{spec.name} (kind {spec.kind}) returned without training: "
                               "a training-time method must call ctx.fit(model) (role 'main')")
        if i == tune_at:
            schedule = Finetune(**finetune)
            t0 = time.perf_counter()
            held = classifier.finetune_keeping_zeros(model, ctx.data, schedule, ctx.seed)
            log(f"fine-tuned after {spec.name}: {schedule.epochs} epochs ({schedule.optimizer}, lr {schedule.lr}) "
                f"in {time.perf_counter() - t0:.1f}s, {held} pruned weights held at zero")
    return model, tune_at is not None


def _runs_on(pm: PluginManager, method: dict, backend: str) -> None:
    """Skip, before anything is loaded, a cell whose method (or a step of it) does not run on ``backend``."""
    from harness.suite.matrix import method_steps

    for step in method_steps(method):
        spec = pm.registry.methods.get(step["name"])
        if spec is not None and spec.backends is not None and backend not in spec.backends:
            raise Skip(f"{spec.name} runs on the {' or '.join(spec.backends)} backend, not on {backend}")


def measure_cell(payload: dict) -> dict:
    """Run one cell; returns the per-batch-size measurements and the cell's facts."""
    cell, measure = payload["cell"], payload["measure"]
    pm = PluginManager.from_payload(payload["plugins"])
    seed = cell["seed"]
    torch.manual_seed(seed)

    backend_spec = pm.registry.backends[cell["backend"]["name"]]
    _runs_on(pm, cell["method"], backend_spec.name)
    session = returned(backend_spec.create(backend_spec.params.model_validate(cell["backend"]["params"])),
                       BackendSession, backend_spec, "create(params)")
    reason = session.unavailable_reason()
    if reason:
        raise Skip(reason)
    facts = session.setup()

    ds_spec = pm.registry.datasets[cell["dataset"]["name"]]
    data = returned(ds_spec.load(ds_spec.params.model_validate(cell["dataset"]["params"]), seed), DatasetSplits, ds_spec,
                    "load(params, seed)")

    data = _model_view(pm, cell["model"], data)
    rss_before_model = memory.rss_bytes()
    ctx: MethodContext
    if cell.get("train") is not None:
        model, ctx = _training_start(pm, cell, data, session, backend_spec.name, measure)
        meaningful = True
    else:
        model, source, meaningful = trained_model(pm, cell["model"], cell["dataset"], data, seed)
        log(f"model {cell['model']['id']}: {source}")
        ctx = MethodContext(data=data, device=session.device, backend=backend_spec.name, seed=seed, log=log,
                            batch_sizes=tuple(measure["batch_sizes"]))
    lm = language_cell.language_model_of(pm, cell["model"]) if cell.get("train") is None else None
    generating = lm is not None and bool(measure.get("prompt_tokens"))
    tokens = lm_quality = None
    if lm is not None:  # the held-out text as the model's tokens: perplexity's text, generation's prompts
        tokens = language_cell.held_out_tokens(lm, data.test, measure["perplexity"]["max_tokens"])
    reference, baseline_copy, pair_with = None, None, None
    unpaired = "a training cell has no trained baseline to pair with"
    held_bytes = 0
    fidelity_n = min(measure.get("fidelity_samples", 512), len(data.test))
    if cell.get("train") is None:  # a compression cell: a copy of the trained baseline, before the method
        is_baseline = cell["method"]["name"] == "baseline"
        want_pair = measure.get("paired", True) and not is_baseline
        if fidelity_n > 0 or want_pair or lm is not None:  # a language model's drift is read against it
            baseline_copy = _baseline_copy(model, session)
        unpaired = ("the baseline is the reference" if is_baseline
                    else "measure.paired is false" if not measure.get("paired", True)
                    else _pairing_unavailable(session, model, baseline_copy))
        pair_with = baseline_copy if unpaired is None else None
        held_bytes = model_stats.tensor_bytes(baseline_copy) if baseline_copy is not None else 0
    base_data = data  # the baseline's task: its outputs are read on it
    t0 = time.perf_counter()
    with memory.PeakRSS() as setup_peak:  # the method's own peak (calibration, fine-tuning, compiling)
        model, finetuned = apply_method(pm, cell["method"], model, ctx, payload.get("finetune"))
    setup_s = time.perf_counter() - t0
    log(f"method {cell['method']['name']} applied in {setup_s:.3f}s")
    task_changed = ctx.data is not data
    data = ctx.data  # a transfer method evaluates on its target task
    curves = ctx.curves() if isinstance(ctx, TrainingContext) else None
    model = session.prepare_model(model)
    if baseline_copy is not None:
        # The method's model takes its first input before the baseline's outputs are read: a backend that
        # converts it then (a runtime's exporter) skips a model it cannot take at once, not after the
        # baseline's fidelity pass.
        with torch.inference_mode():
            call_model(model, session.prepare_input(data.test.example(1)))
        if lm is None:
            reference = _reference_outputs(baseline_copy, base_data, session, fidelity_n)
        else:  # a language model: perplexity and drift over next-token distributions, not the outputs' fidelity
            lm_quality = language_cell.text_fields(lm, model, baseline_copy, tokens, session, measure["perplexity"],
                                                   exact=is_baseline, meaningful=meaningful, log=log)
        if pair_with is None:
            baseline_copy = None  # not timed against: freed before the timed window
    pair_bytes = model_stats.tensor_bytes(pair_with) if pair_with is not None else 0

    params_count, nonzero = model_stats.param_counts(model)
    flops, effective_flops = model_stats.count_flops(model, session.prepare_input(data.test.example(1)))
    serialized = model_stats.model_bytes(model)
    effective_bytes = serialized
    if "model_bytes" in ctx.facts:
        # The method counted tensor bytes only; add the checkpoint container's overhead
        # so it compares like with like against the baseline's serialized size.
        effective_bytes = ctx.facts["model_bytes"] + max(serialized - model_stats.tensor_bytes(model), 0)
    facts.update(
        model_bytes=effective_bytes,
        serialized_bytes=serialized,
        bits_per_param=ctx.facts.get("bits_per_param", effective_bytes * 8 / params_count if params_count else None),
        params_count=params_count,
        nonzero_params=nonzero,
        flops=flops,
        effective_flops=effective_flops,
        setup_s=setup_s,
        setup_peak_mb=max(setup_peak.bytes - rss_before_model - held_bytes, 0) / 2**20,
        compile_s=ctx.facts.get("compile_s"),
        finetuned=finetuned,
        accuracy=None,
    )
    if isinstance(ctx, TrainingContext):
        facts.update(ctx.training_facts())
    facts["task_changed"] = task_changed
    if measure["accuracy"] and data.test.has_labels and meaningful:
        top = classifier.evaluate_split(model, data.test, device=session.device, prepare=session.prepare_input,
                                        ks=(1, 5), num_classes=data.num_classes)
        facts["accuracy"], facts["top5_accuracy"] = top[1], top[5]
        if top[1] is None:
            log(f"accuracy: not measured, the model's outputs are not {data.num_classes} class scores per input "
                "(an embedding or hidden states); fidelity still compares them with the baseline's")
        else:
            log(f"accuracy {top[1]:.4f}" + (f", top-5 {top[5]:.4f}" if top[5] is not None else ""))
    if reference is not None:
        facts.update(_fidelity(model, reference, data, session, exact=cell["method"]["name"] == "baseline"))
    if lm is not None:
        if lm_quality is None:  # no baseline copy to read drift against: perplexity alone
            lm_quality = language_cell.text_fields(lm, model, None, tokens, session, measure["perplexity"],
                                                   exact=cell["method"]["name"] == "baseline", meaningful=meaningful,
                                                   log=log)
        facts.update(lm_quality)

    warmup, repeat = Budget(**measure["warmup"]), Budget(**measure["repeat"])
    per_batch, samples = {}, {}
    if cell.get("train") is None and unpaired is not None and cell["method"]["name"] != "baseline":
        log(f"timing: not paired with the baseline ({unpaired}); the speedup is the ratio of the two cells' medians")
    if generating:
        per_batch, samples = language_cell.generation_points(lm, model, pair_with, tokens, session, measure, seed,
                                                             rss_before_model + pair_bytes,
                                                             unpaired_reason=unpaired, log=log)
    for bs in measure["batch_sizes"] if not generating else ():
        x = session.prepare_input(data.test.example(bs))  # real test inputs (the split repeated if short)
        screen = contention.Screen(retries=measure.get("remeasure_contended", contention.RETRIES),
                                   probe=session.block_load)
        if pair_with is None:
            with torch.inference_mode():
                with memory.PeakRSS() as peak, session.memory_window(batch_size=bs) as dev_mem, OtherCPU() as other:
                    if type(session).time_model is BackendSession.time_model:  # cut into screened blocks
                        ns = contention.time_screened(session.time_calls, lambda x=x: call_model(model, x), warmup,
                                                      repeat, screen)
                        verdict = screen.verdict(torch.get_num_threads())
                    else:  # the backend's own timing, one window: judged, not re-measured
                        with session.block_load() as load:
                            ns = session.time_model(model, x, warmup, repeat)
                        verdict = contention.judge_window(load, torch.get_num_threads())
            fields = {"host_peak_mb": max(peak.bytes - rss_before_model, 0) / 2**20, "host_other_cpu": other.cores,
                      **dev_mem.fields, "paired": False, "unpaired_reason": unpaired,
                      "precision_reached": None if repeat.target_rel_ci is None
                      else precise_enough(ns, repeat.target_rel_ci), **verdict}
        else:
            ns, fields = _time_paired(session, model, pair_with, x, bs, warmup, repeat, rss_before_model + pair_bytes,
                                      seed, screen)
        if fields.get("contended"):
            log(f"batch {bs}: contended: {fields['contended_reason']}")
        elif fields.get("contention_retries"):
            log(f"batch {bs}: {fields['contention_retries']} contended blocks measured again")
        samples[str(bs)] = ns
        per_batch[str(bs)] = fields
        log(f"batch {bs}: {len(ns)} timed calls, median {sorted(ns)[len(ns) // 2] / 1e6:.4f} ms"
            + (f"; paired with the baseline: speedup {fields['paired_speedup']:.3f} "
               f"[{fields['speedup_ci_low']:.3f}, {fields['speedup_ci_high']:.3f}] over {fields['pair_blocks']} "
               f"block pairs in {fields['timing_s']:.1f}s" if fields.get("paired") else ""))
    return {"facts": {k: _finite(v) for k, v in facts.items()}, "per_batch": per_batch, "samples": samples,
            "curves": curves}


def _model_view(pm: PluginManager, model_ref: dict, data: DatasetSplits) -> DatasetSplits:
    """The dataset read through the cell's model's own preprocessing, when it has one."""
    spec = pm.registry.models[model_ref["name"]]
    if spec.preprocess is None:
        return data
    return data.with_preprocess(spec.preprocess(spec.params.model_validate(model_ref["params"]), data))


def _baseline_copy(model: Any, session: Any) -> Any:
    """A copy of the baseline prepared for this backend (the method gets the original): its outputs
    are the fidelity reference and, when paired, the method is timed against it. Every compression
    cell makes it, the baseline's included, so their memory figures see the same work. None when it
    cannot be made (logged; the cell goes on without fidelity and pairing)."""
    try:
        return session.prepare_model(copy.deepcopy(model))
    except Exception as exc:  # noqa: BLE001 - fidelity and pairing must never cost the cell its other figures
        log(f"no copy of the baseline ({type(exc).__name__}: {exc}); agreement/kl_div/cosine stay null and the "
            "timing is not paired")
        return None


def _reference_outputs(copy_of: Any, data: Any, session: Any, n: int) -> Any:
    """The baseline copy's outputs on the first ``n`` test inputs, or None when fidelity is off or they
    cannot be read (logged; the cell goes on)."""
    if n <= 0:
        return None
    try:
        return fidelity.outputs(copy_of, (b.inputs for b in data.test.batches(FIDELITY_BATCH, limit=n)),
                                session.prepare_input)
    except Exception as exc:  # noqa: BLE001
        log(f"fidelity: no baseline outputs ({type(exc).__name__}: {exc}); agreement/kl_div/cosine stay null")
        return None


#: Pair only when two copies of the model fit in this share of the memory the system has free.
PAIR_MEMORY_SHARE = 0.5


def _pairing_unavailable(session: Any, model: Any, copy_of: Any) -> str | None:
    """Why this cell's timing cannot be paired with the baseline, or None when it can."""
    if copy_of is None:
        return "no copy of the baseline could be made"
    reason = session.pairing_unavailable()
    if reason:
        return reason
    need = model_stats.tensor_bytes(copy_of)
    free = memory.available_bytes()
    if free is not None and need > PAIR_MEMORY_SHARE * free:
        return (f"the baseline's copy ({need / 2**20:.0f} MB) is held beside the model only when it takes at most "
                f"half of the free memory ({free / 2**20:.0f} MB)")
    return None


def _time_paired(session: Any, model: Any, base: Any, x: Any, bs: int, warmup: Budget, repeat: Budget,
                 rss_floor: int, seed: int, screen: contention.Screen) -> tuple[list[int], dict[str, Any]]:
    """Memory from a short window of the method's model alone (its warm-up included, as in an unpaired
    window), then the paired blocks (the method's latency samples and the speedup with its interval)."""
    short = Budget(min(repeat.min_iters, 10), 0.0)
    with torch.inference_mode():
        with memory.PeakRSS() as peak, session.memory_window(batch_size=bs) as dev_mem:
            session.time_model(model, x, warmup, short)
        with OtherCPU() as other:
            paired = pairing.time_paired(session.time_calls, lambda: call_model(model, x), lambda: call_model(base, x),
                                         warmup, repeat, target_rel_ci=repeat.target_rel_ci,
                                         max_seconds=repeat.max_seconds, seed=seed, warm_method=False,
                                         screen=screen)
    base_med = sorted(paired.baseline_ns)[len(paired.baseline_ns) // 2] / 1e6
    return paired.method_ns, {
        "host_peak_mb": max(peak.bytes - rss_floor, 0) / 2**20,  # the baseline's resident copy left out
        "host_other_cpu": other.cores,
        **dev_mem.fields,
        "paired": True,
        "unpaired_reason": None,
        "paired_speedup": paired.speedup,
        "speedup_ci_low": paired.ci_low,
        "speedup_ci_high": paired.ci_high,
        "baseline_p50_ms": base_med,
        "pair_blocks": paired.blocks,
        "precision_reached": paired.precision_reached,
        "timing_s": paired.seconds,
        **screen.verdict(torch.get_num_threads()),
    }


def _fidelity(model: Any, reference: Any, data: Any, session: Any, exact: bool) -> dict[str, Any]:
    """agreement, kl_div, cosine, max_abs_err of the changed model against ``reference`` (exact for
    the baseline itself), and fidelity_n, how many inputs they cover."""
    n = int(reference.shape[0])
    if exact:
        return {**fidelity.exact(reference, data.num_classes), "fidelity_n": n}
    try:
        batches = (b.inputs for b in data.test.batches(FIDELITY_BATCH, limit=n))
        figures = fidelity.compare(reference, fidelity.outputs(model, batches, session.prepare_input),
                                   data.num_classes)
    except Exception as exc:  # noqa: BLE001
        log(f"fidelity: not computed ({type(exc).__name__}: {exc})")
        return {"fidelity_n": None}
    shown = ", ".join(f"{k} {v:.4g}" for k, v in figures.items() if v is not None)
    log(f"fidelity over {n} test inputs: {shown}")
    return {**figures, "fidelity_n": n}


def _training_start(pm: PluginManager, cell: dict, data: Any, session: Any, backend: str,
                    measure: dict) -> tuple[Any, TrainingContext]:
    """A training cell starts from a fresh, seeded, untrained model and a TrainingContext."""
    from harness.plugin.types import ModelRef
    from harness.suite.schema import Train

    seed = cell["seed"]
    if not data.trainable:
        raise Skip(f"dataset {cell['dataset']['id'] or cell['dataset']['name']} has no labels or objective "
                   "to train on")

    def build(ref: ModelRef | None) -> Any:
        name, params = (ref.name, ref.params) if ref is not None else (cell["model"]["name"], cell["model"]["params"])
        spec = pm.registry.models[name]
        return returned(spec.build(spec.params.model_validate(params), ctx.data), torch.nn.Module, spec,
                        "build(params, data)")

    def teacher(ref: ModelRef) -> Any:
        model, source, meaningful = trained_model(pm, {"name": ref.name, "params": ref.params}, cell["dataset"],
                                                  data, seed)
        if not meaningful:
            raise Skip(f"teacher {ref.name} has no trained weights ({source})")
        log(f"teacher {ref.name}: {source}")
        return model

    ctx = TrainingContext(data=data, device=session.device, backend=backend, seed=seed, log=log,
                          batch_sizes=tuple(measure["batch_sizes"]), train=Train(**cell["train"]),
                          builder=build, trainer=teacher, session=session)
    model = ctx.build_model()
    log(f"model {cell['model']['id']}: fresh weights (seed {seed}) for training; budget {cell['train']}")
    return model, ctx


def run_cell(payload: dict, log_pipe: Any = None) -> None:
    """Process entry point. Always leaves result.json unless the process itself dies.

    Output (C libraries' included) goes to ``log_pipe`` when the executor reads it (and caps the
    log), else straight to the cell's log file. A fatal signal (segfault, abort) writes every
    thread's Python stack there first (faulthandler).
    """
    os.setpgrp()  # so the parent can kill this cell and anything it started
    start = time.perf_counter()
    result_path = Path(payload["result_path"])
    if log_pipe is not None:
        _redirect_to_fd(log_pipe.fileno())
        log_pipe.close()
    else:
        _redirect_output(Path(payload["log_path"]))
    faulthandler.enable(file=sys.stderr, all_threads=True)
    warnings.simplefilter("default")
    memory_mb = (payload.get("limits") or {}).get("memory_mb")
    limits.apply_memory_limit(memory_mb)
    log(f"cell {payload['cell']['cell_id']} pid {os.getpid()}"
        + (f", memory limit {memory_mb:g} MB" if memory_mb else ""))
    try:
        result = {"status": "ok", **measure_cell(payload)}
    except Skip as exc:
        log(f"skipped: {exc}")
        result = {"status": "skipped", "error": str(exc)}
    except BaseException as exc:  # everything a plugin can throw ends as a failed cell
        traceback.print_exc()
        if limits.is_out_of_memory(exc):
            peak = memory.rss_bytes() / 2**20
            result = {"status": "oom", "error": f"out of memory: {type(exc).__name__}: {str(exc)[:300]} "
                                                f"(execution.memory_limit_mb={memory_mb:g}; RSS {peak:.0f} MB when "
                                                "it failed)" if memory_mb else f"out of memory: {exc}"}
        else:
            result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    samples = result.pop("samples", None)
    if samples is not None:
        _write_json_atomic(Path(payload["samples_path"]), samples)
    curves = result.pop("curves", None)
    if curves:
        _write_json_atomic(result_path.with_name(CURVE_FILE), curves)
    result["work_s"] = time.perf_counter() - start
    _write_json_atomic(result_path, result)
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
