"""Output fidelity: how far a method moved a model's outputs from the baseline's, on the same inputs.

Needs no labels, so a random-weight model, a base encoder or an unlabelled dataset still says
how much a method changed it (llama.cpp's perplexity tool judges quantized models the same way,
by drift from the unquantized one). Figures, over the first ``fidelity_samples`` evaluation
inputs, computed in float64 on the CPU:

- ``agreement``: the share of inputs whose top-1 prediction (argmax over the last dimension)
  is the baseline's; for classifier outputs only (``(N, num_classes)``);
- ``kl_div``: the mean over inputs of KL(baseline softmax || method softmax), in nats; for
  classifier outputs only;
- ``cosine``: the mean over inputs of the cosine similarity of the two outputs, each flattened
  (embeddings, hidden states, logits: any tensor output of more than one value per input; on one value
  it would only compare signs, so it is null there);
- ``max_abs_err``: the largest absolute difference of any output element;
- ``rel_err``: for one value per input (a regression), the mean absolute difference over the mean
  absolute baseline output;
- ``map_vs_baseline``: for a detector (one dict of boxes, scores and labels per image), the COCO box mAP
  of its detections with the baseline's confident ones (score at least 0.5) as the ground truth.

A model with its own ``postprocess`` (a seq2seq model's generations, decoded to text) is compared by its
predictions: ``agreement`` is the share of inputs whose whole generation equals the baseline's.

Dense class scores (a segmentation model's ``(N, classes, H, W)``) get ``agreement`` per element: the
share of pixels whose highest-scoring class is the baseline's.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from harness.measure.inputs import call_model

if TYPE_CHECKING:
    import torch
    from torch import nn

FIELDS = ("agreement", "kl_div", "cosine", "max_abs_err", "rel_err")
#: Keys of a mapping output (a Hugging Face ModelOutput, a dict) tried in this order.
OUTPUT_KEYS = ("logits", "last_hidden_state", "pooler_output", "sentence_embedding", "embeddings")


def output_tensor(out: Any) -> torch.Tensor:
    """The tensor a model's call returned: itself, a mapping's ``logits`` / ``last_hidden_state`` /
    ... (else its first tensor value), or a sequence's first tensor."""
    import torch

    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, Mapping) or hasattr(out, "keys"):
        for key in OUTPUT_KEYS:
            value = out.get(key) if hasattr(out, "get") else None
            if isinstance(value, torch.Tensor):
                return value
        for key in out.keys():
            if isinstance(out[key], torch.Tensor):
                return out[key]
    if isinstance(out, Sequence) and not isinstance(out, (str, bytes)):
        for value in out:
            if isinstance(value, torch.Tensor):
                return value
    raise TypeError(f"the model returned {type(out).__name__}, which holds no tensor to compare")


def outputs(model: nn.Module, batches: Iterable[Any], prepare: Callable[[Any], Any]) -> torch.Tensor:
    """The model's outputs on each batch of inputs (through ``prepare``, a backend's ``prepare_input``),
    as one float32 CPU tensor."""
    import torch

    parts = []
    with torch.inference_mode():
        for inputs in batches:
            out = output_tensor(call_model(model, prepare(inputs)))
            parts.append(out.detach().to("cpu", torch.float32))
    if not parts:
        raise ValueError("no inputs to compare outputs on")
    return torch.cat(parts)


def detections(model: nn.Module, batches: Iterable[Any], prepare: Callable[[Any], Any]) -> list[Any]:
    """A detector's outputs on each batch of inputs: one (boxes, scores, labels) per image, on the CPU."""
    import torch

    from harness.measure.detection_map import as_detections

    found = []
    with torch.inference_mode():
        for inputs in batches:
            out = call_model(model, prepare(inputs))
            if not isinstance(out, (list, tuple)):
                raise TypeError(f"a detector returns one dict of boxes per image; this model returned "
                                f"{type(out).__name__}")
            found += [as_detections(image) for image in out]
    if not found:
        raise ValueError("no inputs to compare outputs on")
    return found


def predictions(model: nn.Module, batches: Iterable[Any], prepare: Callable[[Any], Any],
                postprocess: Callable[[Any], Any]) -> list[Any]:
    """The model's predictions as its metrics score them (``postprocess`` of its outputs: a seq2seq model's
    generations as text), one per input."""
    import torch

    found: list[Any] = []
    with torch.inference_mode():
        for inputs in batches:
            found += list(postprocess(call_model(model, prepare(inputs))))
    if not found:
        raise ValueError("no inputs to compare outputs on")
    return found


def compare_predictions(reference: list[Any], output: list[Any] | None) -> dict[str, float | None]:
    """``agreement``: the share of inputs whose prediction (a whole generated text) equals the baseline's; 1 for
    the baseline itself."""
    if output is None:
        return {"agreement": 1.0}
    same = sum(a == b for a, b in zip(reference, output, strict=True))
    return {"agreement": same / len(reference)}


def compare_detections(reference: list[Any], output: list[Any] | None) -> dict[str, float | None]:
    """``map_vs_baseline`` of ``output`` (None: the baseline itself) against the reference's confident boxes:
    null where the baseline is confident of nothing."""
    from harness.measure.detection_map import (
        BASELINE_SCORE,
        COCO_IOU_THRESHOLDS,
        as_truth,
        mean_average_precision,
    )

    truths = [as_truth({"boxes": b[s >= BASELINE_SCORE], "labels": lab[s >= BASELINE_SCORE]})
              for b, s, lab in reference]
    if not any(len(t[1]) for t in truths):
        return {"map_vs_baseline": None}
    if output is None:  # the baseline against itself: 1 by definition
        return {"map_vs_baseline": 1.0}
    return {"map_vs_baseline": mean_average_precision(output, truths, COCO_IOU_THRESHOLDS, 100)}


def is_classifier_output(out: torch.Tensor, num_classes: int) -> bool:
    return out.dim() == 2 and num_classes >= 2 and out.shape[1] == num_classes


def is_dense_output(out: torch.Tensor, num_classes: int) -> bool:
    """Class scores per element: (N, classes, ...) with at least one more dimension (a segmentation's maps)."""
    return out.dim() > 2 and num_classes >= 2 and out.shape[1] == num_classes


def _one_value(out: torch.Tensor) -> bool:
    return out[0].numel() == 1 if out.shape[0] else False


def exact(reference: torch.Tensor, num_classes: int, task: str = "classification") -> dict[str, float | None]:
    """The baseline against itself: agreement 1, KL 0, cosine 1, errors 0, by definition (fields that
    do not apply to this kind of output stay null)."""
    classifier = is_classifier_output(reference, num_classes) and task != "multilabel"
    agrees = classifier or is_dense_output(reference, num_classes) or (task == "multilabel" and reference.dim() == 2)
    one = _one_value(reference)
    return {"agreement": 1.0 if agrees else None, "kl_div": 0.0 if classifier else None,
            "cosine": None if one else 1.0, "max_abs_err": 0.0, "rel_err": 0.0 if one else None}


def compare(reference: torch.Tensor, output: torch.Tensor, num_classes: int,
            task: str = "classification") -> dict[str, float | None]:
    """The fidelity figures of ``output`` against ``reference`` (same inputs, same order). For multi-label
    scores (``task``), agreement is the share of label decisions (a logit above 0) both make alike."""
    import torch
    import torch.nn.functional as F

    if reference.shape != output.shape:
        raise ValueError(f"the method's outputs have shape {tuple(output.shape)}, the baseline's "
                         f"{tuple(reference.shape)}: not comparable")
    ref, out = reference.to(torch.float64), output.to(torch.float64)
    finite = bool(torch.isfinite(ref).all() and torch.isfinite(out).all())
    flat_ref, flat_out = ref.reshape(ref.shape[0], -1), out.reshape(out.shape[0], -1)
    cosine = F.cosine_similarity(flat_ref, flat_out, dim=1, eps=1e-12)
    both_zero = (flat_ref.abs().amax(dim=1) == 0) & (flat_out.abs().amax(dim=1) == 0)
    cosine = torch.where(both_zero, torch.ones_like(cosine), cosine)
    one = _one_value(ref)
    scale = float(ref.abs().mean()) if finite and ref.numel() else 0.0
    result: dict[str, float | None] = {
        "agreement": None,
        "kl_div": None,
        "cosine": float(cosine.mean()) if finite and not one else None,
        "max_abs_err": float((ref - out).abs().max()) if finite and ref.numel() else None,
        "rel_err": float((ref - out).abs().mean()) / scale if finite and one and scale > 0 else None,
    }
    if is_dense_output(ref, num_classes):
        result["agreement"] = float((ref.argmax(dim=1) == out.argmax(dim=1)).double().mean())
    if task == "multilabel" and ref.dim() == 2:
        result["agreement"] = float(((ref > 0) == (out > 0)).double().mean())
        return result
    if is_classifier_output(ref, num_classes):
        result["agreement"] = float((ref.argmax(dim=1) == out.argmax(dim=1)).double().mean())
        if finite:
            log_p, log_q = F.log_softmax(ref, dim=1), F.log_softmax(out, dim=1)
            result["kl_div"] = float((log_p.exp() * (log_p - log_q)).sum(dim=1).mean().clamp_min(0.0))
    return result
