"""Quality of a model that is not a language model: its task's metrics on the held-out split (accuracy and
top-5 for classes, rmse and r2 for regression, f1 for multi-label, miou for masks, box mAP for a detector,
or the suite's own; ``harness.run.quality_metrics``), and output fidelity against the baseline's copy on the
same inputs (agreement, KL, cosine, max error, relative error; a detector's mAP against the baseline's
boxes), which needs no labels."""
from __future__ import annotations

from typing import Any

from harness.measure import fidelity
from harness.plugin.targets import CLASSIFICATION, DETECTION, SEGMENTATION, SEQ2SEQ
from harness.record.schema import RecordPart
from harness.run.cell_log import log
from harness.run.cell_state import CellState, QualityStep
from harness.run.quality_metrics import build_scorers, score_split
from harness.suite.metric_refs import REGISTERED, MetricRef

#: Test inputs per call when the outputs for fidelity are computed (images per call for a detector or a
#: segmenter, whose inputs and outputs are large).
FIDELITY_BATCH = 256
DENSE_BATCH = 16
#: The quality of an embedding model on classes when the suite names no metric.
PROBE = MetricRef("linear_probe", "linear_probe", REGISTERED)


def _read(state: CellState, model: Any, batches: Any) -> Any:
    """A model's outputs for fidelity: its predictions where the model decodes them (text), a detector's boxes,
    else its output tensor."""
    if state.data.postprocess is not None:
        return fidelity.predictions(model, batches, state.session.prepare_input, state.data.postprocess)
    if state.base_data.task == DETECTION:
        return fidelity.detections(model, batches, state.session.prepare_input)
    return fidelity.outputs(model, batches, state.session.prepare_input)


def _compare(state: CellState, reference: Any, output: Any) -> dict[str, Any]:
    """The fidelity figures of ``output`` against ``reference`` (None: the baseline against itself)."""
    if state.data.postprocess is not None:
        return fidelity.compare_predictions(reference, output)
    if state.data.task == DETECTION:
        return fidelity.compare_detections(reference, output)
    if output is None:
        return fidelity.exact(reference, state.data.num_classes, state.data.task)
    return fidelity.compare(reference, output, state.data.num_classes, state.data.task)


def _batch(state: CellState) -> int:
    return DENSE_BATCH if state.base_data.task in (DETECTION, SEGMENTATION, SEQ2SEQ) else FIDELITY_BATCH


def fidelity_samples(state: CellState) -> int:
    """How many held-out inputs of the baseline's task fidelity covers: ``measure.fidelity_samples``, fewer when
    the split is smaller."""
    return min(state.payload.measure.fidelity_samples, len(state.base_data.test))


class TaskQuality(QualityStep):
    def __init__(self) -> None:
        self.reference: Any = None

    def against_baseline(self, state: CellState) -> None:
        """The baseline copy's outputs on the first ``fidelity_samples`` held-out inputs of its own task, or
        None when fidelity is off or they cannot be read (logged; the cell goes on)."""
        n = fidelity_samples(state)
        if n <= 0:
            return
        try:
            batches = (b.inputs for b in state.base_data.test.batches(_batch(state), limit=n))
            self.reference = _read(state, state.baseline_copy, batches)
        except Exception as exc:  # noqa: BLE001 - fidelity must never cost the cell its other figures
            log(f"fidelity: no baseline outputs ({type(exc).__name__}: {exc}); agreement/kl_div/cosine stay null")

    def parts(self, state: CellState) -> list[RecordPart]:
        out = [RecordPart("quality", self._quality(state))]
        if self.reference is not None:
            out.append(RecordPart("fidelity", self._fidelity(state)))
        return out

    @staticmethod
    def _quality(state: CellState) -> dict[str, Any]:
        """The task, and its metrics' scores: every one in ``metrics``, the first as the record's ``quality``;
        classification's accuracy and top-5 in their own fields too."""
        data = state.data
        fields: dict[str, Any] = {"task": data.task}
        if not (state.payload.measure.accuracy and data.test.has_labels and state.meaningful):
            return fields
        scorers = build_scorers(list(state.payload.cell.metrics), state.pm.registry, data, log)
        if not scorers:
            return fields
        scores = score_split(scorers, state.model, data, state.session.prepare_input, log)
        first = scorers[0]
        fields.update(metrics=scores, quality_metric=first.id, quality=scores[first.id],
                      quality_higher_is_better=first.higher_is_better,
                      lower_is_better=[s.id for s in scorers if not s.higher_is_better])
        if "accuracy" in scores:
            fields["accuracy"] = scores["accuracy"]
        if "top5_accuracy" in scores:
            fields["top5_accuracy"] = scores["top5_accuracy"]
        if data.task == CLASSIFICATION and scores.get("accuracy") is None and "accuracy" in scores:
            if state.payload.cell.metrics:
                log(f"accuracy: not measured, the model's outputs are not {data.num_classes} class scores per "
                    "input (an embedding or hidden states); fidelity still compares them with the baseline's")
                return fields
            # the task's own metrics do not apply to an embedding: its quality is a linear probe's accuracy
            log(f"accuracy: the model's outputs are not {data.num_classes} class scores per input (an embedding or "
                "hidden states); its quality is a linear probe's accuracy on them instead")
            probe = build_scorers([PROBE], state.pm.registry, data, log)
            scores = score_split(probe, state.model, data, state.session.prepare_input, log)
            fields.update(metrics=scores, quality_metric=PROBE.id, quality=scores[PROBE.id],
                          quality_higher_is_better=True, lower_is_better=[])
        log(", ".join(f"{k} {v:.4g}" if v is not None else f"{k} -" for k, v in scores.items()))
        return fields

    def _fidelity(self, state: CellState) -> dict[str, Any]:
        """agreement, kl_div, cosine, max_abs_err of the changed model against the reference (exact for the
        baseline itself), and fidelity_n, how many inputs they cover."""
        n = len(self.reference)
        if state.plan.baseline:
            return {**_compare(state, self.reference, None), "fidelity_n": n}
        try:
            batches = (b.inputs for b in state.data.test.batches(_batch(state), limit=n))
            figures = _compare(state, self.reference, _read(state, state.model, batches))
        except Exception as exc:  # noqa: BLE001
            log(f"fidelity: not computed ({type(exc).__name__}: {exc})")
            return {"fidelity_n": None}
        shown = ", ".join(f"{k} {v:.4g}" for k, v in figures.items() if v is not None)
        log(f"fidelity over {n} test inputs: {shown}")
        return {**figures, "fidelity_n": n}
