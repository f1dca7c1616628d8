"""Latency of one forward pass at each batch size: timed against the baseline's copy in alternating blocks
(paired) where the cell can be, else alone; screened for contention either way; with the host's and
the backend's memory over the timed window."""
from __future__ import annotations

from typing import Any

import torch

from harness.measure import contention, memory, model_stats, pairing
from harness.measure.host_load import OtherCPU
from harness.measure.inputs import call_model
from harness.measure.stats import precise_enough
from harness.measure.timing import Budget
from harness.record.schema import RecordPart
from harness.results.records import point_key
from harness.run.cell_log import log
from harness.run.cell_state import CellState, LatencyStep

TIMING = "timing"


def memory_part(state: CellState, fields: dict[str, Any]) -> RecordPart:
    """A backend's memory reading of a window, as a record part named for the backend."""
    return RecordPart(f"the {state.backend_name} backend's memory reading", fields)


class ForwardLatency(LatencyStep):
    def measure(self, state: CellState) -> tuple[dict[str, list[RecordPart]], dict[str, list[int]]]:
        measure = state.payload.measure
        if state.plan.compression and state.unpaired is not None and not state.plan.baseline:
            log(f"timing: not paired with the baseline ({state.unpaired}); the speedup is the ratio of the two cells' "
                "medians")
        points: dict[str, list[RecordPart]] = {}
        samples: dict[str, list[int]] = {}
        for bs in state.payload.cell.batch_sizes:
            x = state.session.prepare_input(state.data.test.example(bs))  # real test inputs (repeated if short)
            screen = contention.Screen(retries=measure.remeasure_contended, probe=state.session.block_load)
            if state.pair_with is None:
                ns, fields, reading = _time_alone(state, x, bs, screen)
            else:
                ns, fields, reading = _time_paired(state, x, bs, screen)
            _log_point(bs, ns, fields)
            samples[point_key(bs)] = ns
            points[point_key(bs)] = [RecordPart(TIMING, fields), memory_part(state, reading)]
        return points, samples


def _time_alone(state: CellState, x: Any, bs: int, screen: contention.Screen
                ) -> tuple[list[int], dict[str, Any], dict[str, Any]]:
    session, model, repeat = state.session, state.model, state.repeat
    with torch.inference_mode():
        with memory.PeakRSS() as peak, session.memory_window(batch_size=bs) as dev_mem, OtherCPU() as other:
            if not session.times_whole_calls:  # cut into screened blocks
                ns = contention.time_screened(session.time_calls, lambda: call_model(model, x), state.warmup, repeat,
                                              screen)
                verdict = screen.verdict(torch.get_num_threads())
            else:  # the backend's own timing, one window: judged, not re-measured
                with session.block_load() as load:
                    ns = session.time_model(model, x, state.warmup, repeat)
                verdict = contention.judge_window(load, torch.get_num_threads())
    fields = {"host_peak_mb": max(peak.bytes - state.rss_before_model, 0) / 2**20, "host_other_cpu": other.cores,
              "paired": False, "unpaired_reason": state.unpaired,
              "precision_reached": None if repeat.target_rel_ci is None else precise_enough(ns, repeat.target_rel_ci),
              **verdict}
    return ns, fields, dev_mem.fields


def _time_paired(state: CellState, x: Any, bs: int, screen: contention.Screen
                 ) -> tuple[list[int], dict[str, Any], dict[str, Any]]:
    """Memory from a short window of the method's model alone (its warm-up included, as in an unpaired
    window), then the paired blocks (the method's latency samples and the speedup with its interval)."""
    session, model, base, repeat = state.session, state.model, state.pair_with, state.repeat
    rss_floor = state.rss_before_model + model_stats.tensor_bytes(base)  # the baseline's resident copy left out
    short = Budget(min(repeat.min_iters, 10), 0.0)
    with torch.inference_mode():
        with memory.PeakRSS() as peak, session.memory_window(batch_size=bs) as dev_mem:
            session.time_model(model, x, state.warmup, short)
        with OtherCPU() as other:
            paired = pairing.time_paired(session.time_calls, lambda: call_model(model, x), lambda: call_model(base, x),
                                         state.warmup, repeat, target_rel_ci=repeat.target_rel_ci,
                                         max_seconds=repeat.max_seconds, seed=state.seed, warm_method=False,
                                         screen=screen)
    base_med = sorted(paired.baseline_ns)[len(paired.baseline_ns) // 2] / 1e6
    return paired.method_ns, {
        "host_peak_mb": max(peak.bytes - rss_floor, 0) / 2**20,
        "host_other_cpu": other.cores,
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
    }, dev_mem.fields


def _log_point(bs: int, ns: list[int], fields: dict[str, Any]) -> None:
    if fields.get("contended"):
        log(f"batch {bs}: contended: {fields['contended_reason']}")
    elif fields.get("contention_retries"):
        log(f"batch {bs}: {fields['contention_retries']} contended blocks measured again")
    log(f"batch {bs}: {len(ns)} timed calls, median {sorted(ns)[len(ns) // 2] / 1e6:.4f} ms"
        + (f"; paired with the baseline: speedup {fields['paired_speedup']:.3f} "
           f"[{fields['speedup_ci_low']:.3f}, {fields['speedup_ci_high']:.3f}] over {fields['pair_blocks']} "
           f"block pairs in {fields['timing_s']:.1f}s" if fields.get("paired") else ""))
