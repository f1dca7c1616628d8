"""Quality of a model that is not a language model: top-1 and top-5 accuracy on the held-out split, and
output fidelity against the baseline's copy on the same inputs (agreement, KL, cosine, max error),
which needs no labels."""
from __future__ import annotations

from typing import Any

from harness.measure import fidelity
from harness.record.schema import RecordPart
from harness.run.cell_log import log
from harness.run.cell_state import CellState, QualityStep
from harness.train import classifier

#: Test inputs per call when the outputs for fidelity are computed.
FIDELITY_BATCH = 256


def fidelity_samples(state: CellState) -> int:
    """How many held-out inputs of the baseline's task fidelity covers: ``measure.fidelity_samples``, fewer when
    the split is smaller."""
    return min(state.payload.measure.fidelity_samples, len(state.base_data.test))


class ClassifierQuality(QualityStep):
    def __init__(self) -> None:
        self.reference: Any = None

    def against_baseline(self, state: CellState) -> None:
        """The baseline copy's outputs on the first ``fidelity_samples`` held-out inputs of its own task, or
        None when fidelity is off or they cannot be read (logged; the cell goes on)."""
        n = fidelity_samples(state)
        if n <= 0:
            return
        try:
            batches = (b.inputs for b in state.base_data.test.batches(FIDELITY_BATCH, limit=n))
            self.reference = fidelity.outputs(state.baseline_copy, batches, state.session.prepare_input)
        except Exception as exc:  # noqa: BLE001 - fidelity must never cost the cell its other figures
            log(f"fidelity: no baseline outputs ({type(exc).__name__}: {exc}); agreement/kl_div/cosine stay null")

    def parts(self, state: CellState) -> list[RecordPart]:
        out = []
        accuracy = self._accuracy(state)
        if accuracy:
            out.append(RecordPart("accuracy", accuracy))
        if self.reference is not None:
            out.append(RecordPart("fidelity", self._fidelity(state)))
        return out

    @staticmethod
    def _accuracy(state: CellState) -> dict[str, Any]:
        data = state.data
        if not (state.payload.measure.accuracy and data.test.has_labels and state.meaningful):
            return {}
        top = classifier.evaluate_split(state.model, data.test, device=state.session.device,
                                        prepare=state.session.prepare_input, ks=(1, 5), num_classes=data.num_classes)
        if top[1] is None:
            log(f"accuracy: not measured, the model's outputs are not {data.num_classes} class scores per input "
                "(an embedding or hidden states); fidelity still compares them with the baseline's")
        else:
            log(f"accuracy {top[1]:.4f}" + (f", top-5 {top[5]:.4f}" if top[5] is not None else ""))
        return {"accuracy": top[1], "top5_accuracy": top[5]}

    def _fidelity(self, state: CellState) -> dict[str, Any]:
        """agreement, kl_div, cosine, max_abs_err of the changed model against the reference (exact for the
        baseline itself), and fidelity_n, how many inputs they cover."""
        n = int(self.reference.shape[0])
        if state.plan.baseline:
            return {**fidelity.exact(self.reference, state.data.num_classes), "fidelity_n": n}
        try:
            batches = (b.inputs for b in state.data.test.batches(FIDELITY_BATCH, limit=n))
            figures = fidelity.compare(self.reference, fidelity.outputs(state.model, batches,
                                                                        state.session.prepare_input),
                                       state.data.num_classes)
        except Exception as exc:  # noqa: BLE001
            log(f"fidelity: not computed ({type(exc).__name__}: {exc})")
            return {"fidelity_n": None}
        shown = ", ".join(f"{k} {v:.4g}" for k, v in figures.items() if v is not None)
        log(f"fidelity over {n} test inputs: {shown}")
        return {**figures, "fidelity_n": n}
