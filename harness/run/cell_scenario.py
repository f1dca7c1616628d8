"""A cell run as a scenario: its plan (``harness.run.cell_plan``), then the same steps for every cell.

1. open the backend (a backend that cannot run here skips the cell);
2. load the dataset, read through the model's own preprocessing;
3. prepare: a compression cell gets the trained baseline and a copy of it (the fidelity reference and,
   when paired, what the method is timed against); a training cell gets fresh, seeded weights and a
   ``TrainingContext``;
4. apply the method (its own peak memory and time);
5. hand the model to the backend and let it take a first input, then let the quality step read what it
   needs of the baseline's copy (dropped afterwards unless timing pairs with it);
6. the model's size and work, a training cell's figures, the quality step's figures;
7. the latency step times every point.

What differs between kinds of cell is the plan and the two steps it picks: a causal language model's
quality and latency are ``LanguageQuality`` and ``GenerationLatency`` (``harness.run.language_steps``),
any other model's ``TaskQuality`` and ``ForwardLatency``.
"""
from __future__ import annotations

import copy
import time
from typing import Any

import torch

from harness.measure import memory, model_stats
from harness.measure.inputs import call_model
from harness.plugin.targets import DETECTION, TASK_LOSS
from harness.plugin.types import BackendSession, DatasetSplits, MethodContext, ModelRef, Skip
from harness.record.schema import RecordPart
from harness.registry.manager import PluginManager
from harness.run.baseline_model import build_model, returned, trained_model
from harness.run.cell_log import log
from harness.run.cell_payload import CellPayload
from harness.run.cell_plan import CellPlan, plan_cell
from harness.run.cell_state import CellState, LatencyStep, QualityStep
from harness.run.language_steps import GenerationLatency, LanguageQuality, held_out_tokens
from harness.run.latency_steps import ForwardLatency
from harness.run.method_apply import apply_method
from harness.run.quality_steps import TaskQuality, fidelity_samples
from harness.suite.schema import Train
from harness.train.fit import TrainingContext

#: Pair only when two copies of the model fit in this share of the memory the system has free.
PAIR_MEMORY_SHARE = 0.5


class CellScenario:
    """One cell's steps, in order; ``run`` returns its record parts, samples and curves."""

    def __init__(self, payload: CellPayload, pm: PluginManager) -> None:
        self.payload, self.pm = payload, pm
        self.plan: CellPlan = plan_cell(payload, pm.registry)
        self.quality: QualityStep = TaskQuality()
        self.latency: LatencyStep = ForwardLatency()

    def run(self) -> tuple[list[RecordPart], dict[str, list[RecordPart]], dict[str, list[int]], dict | None]:
        """(the cell's record parts, each point's parts, each point's latency samples, training curves)."""
        torch.manual_seed(self.payload.cell.seed)
        session, backend_facts = self.open_backend()
        state = self.load_data(session)
        self.prepare(state)
        method = self.apply(state)
        self.read_baseline(state)
        parts = [RecordPart(f"the {self.plan.backend.name} backend's facts", backend_facts), method,
                 RecordPart("the model's size and work", self.size(state))]
        if isinstance(state.ctx, TrainingContext):
            parts.append(RecordPart("training", state.ctx.training_facts()))
        parts += self.quality.parts(state)
        points, samples = self.latency.measure(state)
        deployed = session.deployed_bytes()
        if deployed is not None:  # what the backend loads (an exported graph) is the model's size there
            parts[2] = RecordPart(parts[2].source, _deployed(parts[2].values, deployed))
        curves = state.ctx.curves() if isinstance(state.ctx, TrainingContext) else None
        return parts, points, samples, curves

    # -- the steps -----------------------------------------------------------------------------------
    def open_backend(self) -> tuple[BackendSession, dict[str, Any]]:
        spec = self.plan.backend
        session = returned(spec.create(self.plan.backend_params), BackendSession, spec, "create(params)")
        reason = session.unavailable_reason()
        if reason:
            raise Skip(reason)
        return session, session.setup()

    def load_data(self, session: BackendSession) -> CellState:
        plan = self.plan
        data = returned(plan.dataset.load(plan.dataset_params, self.payload.cell.seed), DatasetSplits, plan.dataset,
                        "load(params, seed)")
        if plan.model.preprocess is not None:  # read through the model's own preprocessing
            data = data.with_preprocess(plan.model.preprocess(plan.model_params, data))
        if plan.model.postprocess is not None:  # its outputs as its metrics score them (token ids as text)
            data = data.with_postprocess(plan.model.postprocess(plan.model_params, data))
        cell = self.payload.cell
        named = {k: v for k, v in (("task", cell.task), ("loss_name", cell.loss)) if v is not None}
        if named:  # the suite's word on what the targets are and how to train on them
            data = data.replace(**named)
        if data.train.has_labels:
            log(f"dataset {cell.dataset.id or cell.dataset.name}: {data.task} targets"
                + (f", {data.num_classes} classes" if data.num_classes else "")
                + (f"; models trained on it use {_training_loss(data)}" if plan.training or plan.model.trainable
                   else ""))
        return CellState(self.payload, plan, self.pm, session, data, data)

    def prepare(self, state: CellState) -> None:
        state.rss_before_model = memory.rss_bytes()
        if self.plan.training:
            state.model, state.ctx = self._training_start(state)
            state.unpaired = "a training cell has no trained baseline to pair with"
            return
        cell = self.payload.cell
        state.model, source, state.meaningful = trained_model(
            self.pm, cell.model.name, cell.model.params, (cell.dataset.name, cell.dataset.params), state.data,
            cell.seed, cell.model.checkpoint)
        log(f"model {cell.model.id}: {source}")
        state.ctx = MethodContext(data=state.data, device=state.session.device, backend=state.backend_name,
                                  seed=cell.seed, log=log, batch_sizes=tuple(cell.batch_sizes))
        lm = self.plan.language_model
        if lm is not None:  # the held-out text as the model's tokens: perplexity's text, generation's prompts
            tokens = held_out_tokens(lm, state.data.test, self.payload.measure.perplexity.max_tokens)
            self.quality = LanguageQuality(lm, tokens)
            if self.plan.generating:
                self.latency = GenerationLatency(lm, tokens)
        if fidelity_samples(state) > 0 or self.plan.paired or lm is not None:  # a language model's drift needs it
            state.baseline_copy = _baseline_copy(state.model, state.session)
        state.unpaired = ("the baseline is the reference" if self.plan.baseline
                          else "measure.paired is false" if not self.payload.measure.paired
                          else _pairing_unavailable(state.session, state.baseline_copy))
        state.pair_with = state.baseline_copy if state.unpaired is None else None
        state.held_bytes = model_stats.tensor_bytes(state.baseline_copy) if state.baseline_copy is not None else 0

    def apply(self, state: CellState) -> RecordPart:
        """The method applied to the model: its time, its own memory peak (calibration, fine-tuning, compiling)."""
        assert state.ctx is not None
        data = state.data
        t0 = time.perf_counter()
        with memory.PeakRSS() as setup_peak:
            state.model, finetuned = apply_method(self.plan, state.model, state.ctx, self.payload.finetune)
        setup_s = time.perf_counter() - t0
        log(f"method {self.payload.cell.method.name} applied in {setup_s:.3f}s")
        state.data = state.ctx.data  # a transfer method evaluates on its target task
        return RecordPart("the method", {
            "setup_s": setup_s,
            "setup_peak_mb": max(setup_peak.bytes - state.rss_before_model - state.held_bytes, 0) / 2**20,
            "compile_s": state.ctx.facts.get("compile_s"), "finetuned": finetuned,
            "task_changed": state.ctx.data is not data})

    def read_baseline(self, state: CellState) -> None:
        state.model = state.session.prepare_model(state.model)
        if state.baseline_copy is None:
            return
        # The method's model takes its first input before the baseline's outputs are read: a backend that
        # converts it then (a runtime's exporter) skips a model it cannot take at once, not after the
        # baseline's fidelity pass.
        with torch.inference_mode():
            call_model(state.model, state.session.prepare_input(state.data.test.example(1)))
        self.quality.against_baseline(state)
        if state.pair_with is None:
            state.baseline_copy = None  # not timed against: freed before the timed window

    def size(self, state: CellState) -> dict[str, Any]:
        """Parameters, FLOPs and bytes of the changed model; the method's own count of its storage when it
        reports one (simulated quantization), with the checkpoint container's overhead added so it compares
        like with like against the baseline's serialized size."""
        model, facts = state.model, state.ctx.facts if state.ctx is not None else {}
        params_count, nonzero = model_stats.param_counts(model)
        flops, effective_flops = model_stats.count_flops(model, state.session.prepare_input(state.data.test.example(1)))
        serialized = model_stats.model_bytes(model)
        effective_bytes = serialized
        if "model_bytes" in facts:
            effective_bytes = facts["model_bytes"] + max(serialized - model_stats.tensor_bytes(model), 0)
        return {"model_bytes": effective_bytes, "serialized_bytes": serialized,
                "bits_per_param": facts.get("bits_per_param",
                                            effective_bytes * 8 / params_count if params_count else None),
                "params_count": params_count, "nonzero_params": nonzero, "flops": flops,
                "effective_flops": effective_flops}

    def _training_start(self, state: CellState) -> tuple[Any, TrainingContext]:
        """A training cell starts from a fresh, seeded, untrained model and a TrainingContext."""
        cell, data, seed = self.payload.cell, state.data, self.payload.cell.seed
        if not data.trainable:
            raise Skip(f"dataset {cell.dataset.id or cell.dataset.name} has no labels or objective to train on")

        def build(ref: ModelRef | None) -> Any:
            name, params = (ref.name, ref.params) if ref is not None else (cell.model.name, cell.model.params)
            spec = self.pm.registry.models[name]
            return build_model(spec, spec.params.model_validate(params), ctx.data)

        def teacher(ref: ModelRef) -> Any:
            model, source, meaningful = trained_model(self.pm, ref.name, ref.params,
                                                      (cell.dataset.name, cell.dataset.params), data, seed)
            if not meaningful:
                raise Skip(f"teacher {ref.name} has no trained weights ({source})")
            log(f"teacher {ref.name}: {source}")
            return model

        ctx = TrainingContext(data=data, device=state.session.device, backend=state.backend_name, seed=seed, log=log,
                              batch_sizes=tuple(cell.batch_sizes), train=Train(**cell.train or {}),
                              builder=build, trainer=teacher, session=state.session)
        model = ctx.build_model()
        log(f"model {cell.model.id}: fresh weights (seed {seed}) for training; budget {cell.train}")
        return model, ctx


def _deployed(size: dict[str, Any], deployed: int) -> dict[str, Any]:
    """The size part with ``model_bytes`` what the backend loads, and bits per parameter from it."""
    count = size.get("params_count")
    return {**size, "model_bytes": deployed, "bits_per_param": deployed * 8 / count if count else None}


def _baseline_copy(model: Any, session: BackendSession) -> Any:
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


def _pairing_unavailable(session: BackendSession, copy_of: Any) -> str | None:
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


def _training_loss(data: Any) -> str:
    """What a model trained on ``data`` minimises, in words."""
    if data.objective is not None:
        return "the dataset's own objective"
    if data.loss_name is None and data.task == DETECTION:
        return "the losses the detector computes itself, given the targets"
    return f"{data.loss_name or TASK_LOSS.get(data.task, 'no')} loss"
