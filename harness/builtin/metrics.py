"""The built-in metrics, one set per task, and the metrics a suite names by reference.

- classification: ``accuracy`` (top-1) and ``top_k_accuracy`` (``k``, default 5), written here as the
  harness always computed them (argmax; a model whose outputs are not one score per class gets none), and
  ``linear_probe`` for a model of embeddings: a logistic regression on them, the model frozen;
- regression: ``mse``, ``rmse``, ``mae``, ``r2``;
- multi-label: ``f1`` (micro, or ``average: macro``; ``threshold`` on the sigmoid of the outputs) and
  ``average_precision`` (the mean over labels: mAP);
- segmentation: ``miou`` (the mean intersection over union of the classes) and ``pixel_accuracy``, pixels
  labelled 255 ignored;
- detection: ``map`` (COCO box mAP over IoU 0.50:0.95), ``map_50``, ``map_75`` (``harness.measure.detection_map``);
- seq2seq (the target is text): ``bleu`` (corpus BLEU-4, 0 to 1) and ``wer`` (word error rate) of the
  generations, decoded by the model's own ``postprocess``.

Each is written here, in plain torch, and computes what torchmetrics' class of the same meaning computes
(``tests/test_metrics.py`` checks them against it), without importing torchmetrics (seconds per cell).
A suite also names any torchmetrics class by its import path
(``torchmetrics.regression.PearsonCorrCoef``, with ``params`` its keyword arguments), or a user's own by
reference (``metrics.py:evaluate``): a class with ``update(outputs, targets)`` and ``compute()``, or a
function ``evaluate(predictions, targets, **params) -> float`` called once on every held-out prediction.
"""
from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field

from harness.measure.detection_map import COCO_IOU_THRESHOLDS, as_detections, as_truth, mean_average_precision
from harness.plugin.metric import Metric, MetricState, prediction
from harness.plugin.targets import (
    CLASSIFICATION,
    DETECTION,
    IGNORE_INDEX,
    MULTILABEL,
    REGRESSION,
    SEGMENTATION,
    SEQ2SEQ,
)
from harness.plugin.types import DatasetSplits, Params


class Accuracy(MetricState):
    """Top-k accuracy of class scores against class indices; None when the outputs are not one score per class
    (an embedding, hidden states)."""

    def __init__(self, k: int, num_classes: int) -> None:
        self.k, self.num_classes = k, num_classes
        self.correct = self.n = 0
        self.applies = True

    def update(self, outputs: Any, targets: Any) -> None:
        out = prediction(outputs)
        if out.dim() != 2 or (self.num_classes and out.shape[1] != self.num_classes) or targets is None:
            self.applies = False
            return
        self.n += int(targets.shape[0])
        if self.k == 1:  # argmax, as top-1 always was here (topk may break an exact tie differently)
            self.correct += int((out.argmax(dim=1) == targets).sum())
        elif self.k <= out.shape[1]:
            self.correct += int((out.topk(self.k, dim=1).indices == targets[:, None]).any(dim=1).sum())
        else:
            self.applies = False

    def compute(self) -> float | None:
        return self.correct / self.n if self.applies and self.n else None


class TopKParams(Params):
    k: int = Field(5, ge=1, le=1000, description="a target counts when it is among the k highest scores")


class Torchmetric(MetricState):
    """A torchmetrics metric a suite names by class (``torchmetrics.regression.PearsonCorrCoef``), updated with
    the model's main output tensor (squeezed to a one-value target's shape) and the targets; a detector's raw
    outputs and targets (lists of dicts) pass through as they are."""

    def __init__(self, metric: Any) -> None:
        self.metric = metric

    def update(self, outputs: Any, targets: Any) -> None:
        if isinstance(outputs, (list, tuple)) and outputs and isinstance(outputs[0], dict):
            self.metric.update(outputs, targets)
            return
        self.metric.update(prediction(outputs, targets), targets)

    def compute(self) -> Any:
        return self.metric.compute()


class RegressionError(MetricState):
    """Mean squared (``power`` 2, its root with ``root``) or absolute (``power`` 1) error over every predicted
    value, as torchmetrics' MeanSquaredError / MeanAbsoluteError compute it; accumulated in float64."""

    def __init__(self, power: int, root: bool = False) -> None:
        self.power, self.root = power, root
        self.total = 0.0
        self.n = 0

    def update(self, outputs: Any, targets: Any) -> None:
        diff = prediction(outputs, targets).double() - targets.double()
        self.total += float((diff * diff).sum()) if self.power == 2 else float(diff.abs().sum())
        self.n += diff.numel()

    def compute(self) -> float | None:
        if not self.n:
            return None
        mean = self.total / self.n
        return math.sqrt(mean) if self.root else mean


class R2(MetricState):
    """The coefficient of determination, per target column and averaged uniformly over the columns (torchmetrics'
    R2Score, ``multioutput="uniform_average"``); None when a column's targets are constant (R² is undefined)."""

    def __init__(self) -> None:
        self.n = 0
        self.sum = self.sum_sq = self.rss = None

    def update(self, outputs: Any, targets: Any) -> None:
        pred = prediction(outputs, targets).double()
        target = targets.double()
        pred, target = (pred.reshape(-1, 1), target.reshape(-1, 1)) if target.dim() < 2 else \
            (pred.reshape(target.shape[0], -1), target.reshape(target.shape[0], -1))
        parts = (target.sum(0), (target * target).sum(0), ((target - pred) ** 2).sum(0))
        if self.sum is None:
            self.sum, self.sum_sq, self.rss = parts
        else:
            self.sum, self.sum_sq, self.rss = (a + b for a, b in zip((self.sum, self.sum_sq, self.rss), parts))
        self.n += target.shape[0]

    def compute(self) -> float | None:
        if self.n < 2 or self.sum is None:
            return None
        tss = self.sum_sq - self.sum * self.sum / self.n
        if bool((tss <= 0).any()):
            return None
        return float((1 - self.rss / tss).mean())


def _probabilities(scores: Any) -> Any:
    """Scores as probabilities the way torchmetrics reads them: a batch with any value outside [0, 1] is taken
    for logits and passed through the sigmoid; a batch inside [0, 1] is taken for probabilities."""
    return scores.sigmoid() if bool(((scores < 0) | (scores > 1)).any()) else scores


class MultilabelF1(MetricState):
    """Multi-label F1 of the thresholded probabilities: micro (every label decision pooled) or macro (each label's
    F1, averaged; a label no one predicted nor carried counts 0), as torchmetrics' MultilabelF1Score."""

    def __init__(self, num_labels: int, average: str, threshold: float) -> None:
        self.num_labels, self.average, self.threshold = num_labels, average, threshold
        self.tp = self.fp = self.fn = None

    def update(self, outputs: Any, targets: Any) -> None:
        predicted = _probabilities(prediction(outputs)).reshape(targets.shape[0], -1) > self.threshold
        actual = targets.reshape(targets.shape[0], -1) == 1
        counts = ((predicted & actual).sum(0), (predicted & ~actual).sum(0), (~predicted & actual).sum(0))
        if self.tp is None:
            self.tp, self.fp, self.fn = (c.double() for c in counts)
        else:
            self.tp, self.fp, self.fn = (a + b for a, b in zip((self.tp, self.fp, self.fn), counts))

    def compute(self) -> float | None:
        if self.tp is None:
            return None
        tp, fp, fn = (x.sum() for x in (self.tp, self.fp, self.fn)) if self.average == "micro" else \
            (self.tp, self.fp, self.fn)
        denominator = 2 * tp + fp + fn
        f1 = (2 * tp / denominator.clamp(min=1)) * (denominator > 0)
        return float(f1.mean())


class MultilabelAveragePrecision(MetricState):
    """The mean over labels of each label's average precision (the area under its precision-recall curve as a
    step sum, sklearn's and torchmetrics' definition); a label with no positive held-out sample scores 0, as
    both of them score it. Keeps every held-out score, as any exact AP must."""

    def __init__(self) -> None:
        self.scores: list[Any] = []
        self.targets: list[Any] = []

    def update(self, outputs: Any, targets: Any) -> None:
        self.scores.append(_probabilities(prediction(outputs)).reshape(targets.shape[0], -1))
        self.targets.append(targets.reshape(targets.shape[0], -1))

    def compute(self) -> float | None:
        import torch

        if not self.scores:
            return None
        scores, targets = torch.cat(self.scores), torch.cat(self.targets) == 1
        per_label = [_average_precision(scores[:, j], targets[:, j]) for j in range(scores.shape[1])]
        return sum(per_label) / len(per_label) if per_label else None


def _average_precision(scores: Any, positive: Any) -> float:
    """sum over the distinct score thresholds, highest first, of (recall gained) x precision there."""
    import torch

    total = int(positive.sum())
    if total == 0:
        return 0.0
    order = torch.argsort(scores, descending=True)
    scores, positive = scores[order], positive[order].double()
    last_of_each = torch.cat([torch.where(scores[1:] != scores[:-1])[0], torch.tensor([scores.numel() - 1])])
    tps = torch.cumsum(positive, 0)[last_of_each]
    precision = tps / (last_of_each + 1).double()
    recall_gain = torch.diff(tps, prepend=torch.zeros(1, dtype=torch.float64)) / total
    return float((recall_gain * precision).sum())


class SegmentationScores(MetricState):
    """A confusion matrix of the labelled pixels (those not ``ignore_index``) of the class map (argmax over the
    outputs' class dimension) against the masks. ``miou``: the mean over classes of intersection over union,
    classes absent from both the predictions and the masks left out (torchmetrics' MulticlassJaccardIndex,
    macro); ``pixel_accuracy``: the share of labelled pixels given their class."""

    def __init__(self, num_classes: int, ignore_index: int, score: str) -> None:
        self.num_classes, self.ignore_index, self.score = num_classes, ignore_index, score
        self.confusion = None

    def update(self, outputs: Any, targets: Any) -> None:
        import torch

        out = prediction(outputs)
        predicted = out.argmax(dim=1) if out.dim() == targets.dim() + 1 else out.long()
        labelled = targets != self.ignore_index
        actual, predicted = targets[labelled].long(), predicted[labelled].long()
        if bool(((actual < 0) | (actual >= self.num_classes)).any()):
            raise ValueError(f"mask values must be class indices 0..{self.num_classes - 1} or {self.ignore_index} "
                             f"(unlabelled); found {sorted(set(actual.unique().tolist()))[:10]}")
        counts = torch.bincount(actual * self.num_classes + predicted.clamp(0, self.num_classes - 1),
                                minlength=self.num_classes ** 2).reshape(self.num_classes, self.num_classes)
        self.confusion = counts if self.confusion is None else self.confusion + counts

    def compute(self) -> float | None:
        if self.confusion is None or int(self.confusion.sum()) == 0:
            return None
        confusion = self.confusion.double()
        hits = confusion.diag()
        if self.score == "pixel_accuracy":
            return float(hits.sum() / confusion.sum())
        union = confusion.sum(0) + confusion.sum(1) - hits
        present = union > 0
        return float((hits[present] / union[present]).mean())


class DetectionMAP(MetricState):
    """COCO box mAP over the held-out images (every image's detections and targets are kept until
    ``compute``, as any exact AP needs)."""

    def __init__(self, iou_thresholds: tuple[float, ...] = COCO_IOU_THRESHOLDS, max_detections: int = 100) -> None:
        self.iou_thresholds, self.max_detections = tuple(iou_thresholds), max_detections
        self.detections: list[tuple[Any, Any, Any]] = []
        self.truths: list[tuple[Any, Any, Any]] = []

    def update(self, outputs: Any, targets: Any) -> None:
        if not isinstance(outputs, (list, tuple)) or not isinstance(targets, (list, tuple)):
            raise TypeError("detection mAP needs one dict of boxes per image, for the outputs and the targets "
                            f"(got {type(outputs).__name__} and {type(targets).__name__})")
        if len(outputs) != len(targets):
            raise ValueError(f"{len(outputs)} images of detections for {len(targets)} of targets")
        self.detections += [as_detections(o) for o in outputs]
        self.truths += [as_truth(t) for t in targets]

    def compute(self) -> float | None:
        return mean_average_precision(self.detections, self.truths, self.iou_thresholds, self.max_detections)



class LinearProbe(MetricState):
    """The accuracy of a linear classifier on the model's embeddings, the model frozen (MTEB's classification
    protocol): a logistic regression (standardised features) is fitted on the embeddings of up to
    ``train_samples`` training samples (a seeded choice) and scored on those of the held-out split. An
    embedding is the model's output for a sample: a sequence of token states is averaged over its tokens
    (the attention mask's, where the inputs have one)."""

    def __init__(self, train_samples: int, seed: int = 0) -> None:
        self.train_samples, self.seed = train_samples, seed
        self.value: float | None = None

    def setup(self, model: Any, data: DatasetSplits, prepare: Any) -> None:
        import torch
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        n = len(data.train)
        chosen = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))[: self.train_samples]
        train_x, train_y = embeddings(model, data.train, prepare, chosen.sort().values)
        test_x, test_y = embeddings(model, data.test, prepare, torch.arange(len(data.test)))
        if len(set(train_y.tolist())) < 2:
            raise ValueError("a linear probe needs training samples of at least two classes")
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        probe.fit(train_x, train_y)
        self.value = float(probe.score(test_x, test_y))

    def update(self, outputs: Any, targets: Any) -> None:
        """Nothing: ``setup`` embeds the held-out split itself, with its inputs' attention masks."""

    def compute(self) -> float | None:
        return self.value


def embeddings(model: Any, split: Any, prepare: Any, indices: Any, batch: int = 64) -> tuple[Any, Any]:
    """(features, labels) as numpy arrays: the model's embedding of each sample of ``split`` at ``indices``."""
    import torch

    from harness.measure.inputs import call_model

    features, labels = [], []
    with torch.inference_mode():
        for start in range(0, len(indices), batch):
            b = split.batch(indices[start:start + batch])
            inputs = prepare(b.inputs)
            out = prediction(call_model(model, inputs))
            if out.dim() == 3:  # token states: the mean over the tokens the attention mask keeps
                mask = inputs.get("attention_mask") if isinstance(inputs, dict) else None
                if mask is not None and tuple(mask.shape) == tuple(out.shape[:2]):
                    weights = mask.to("cpu", torch.float32)[..., None]
                    out = (out * weights).sum(1) / weights.sum(1).clamp(min=1)
                else:
                    out = out.mean(1)
            features.append(out.reshape(out.shape[0], -1).double())
            labels.append(b.labels)
    return torch.cat(features).numpy(), torch.cat(labels).numpy()


class ProbeParams(Params):
    train_samples: int = Field(1000, ge=10, le=1_000_000, description="training samples the probe is fitted on "
                                                                      "(a seeded choice when the split has more)")


def _texts(outputs: Any, what: str) -> list[str]:
    if isinstance(outputs, str) or not isinstance(outputs, (list, tuple)) or not all(isinstance(o, str) for o in outputs):
        raise TypeError(f"{what} scores text: the model's generations decoded (a seq2seq model of the transformers "
                        f"plugin decodes them with its tokenizer); got {type(outputs).__name__}")
    return list(outputs)


def _references(targets: Any) -> list[list[str]]:
    """Each sample's reference texts: one string, or a list of them (several references)."""
    return [[t] if isinstance(t, str) else [str(r) for r in t] for t in targets]


class Bleu(MetricState):
    """Corpus BLEU (Papineni et al.): the geometric mean of the clipped 1..``n``-gram precisions of every
    generation against its references, times the brevity penalty, over whitespace tokens; from 0 to 1, as
    torchmetrics' BLEUScore computes it (no smoothing: a corpus without one matching ``n``-gram scores 0).
    For sacrebleu's tokenization and 0..100 scale, name ``torchmetrics.text.SacreBLEUScore``."""

    def __init__(self, n: int = 4) -> None:
        self.n = n
        self.matches, self.totals = [0] * n, [0] * n
        self.generated = self.reference = 0

    def update(self, outputs: Any, targets: Any) -> None:
        from collections import Counter

        for text, refs in zip(_texts(outputs, "bleu"), _references(targets), strict=True):
            words, ref_words = text.split(), [r.split() for r in refs]
            self.generated += len(words)
            # the reference closest in length (the first of equals), as torchmetrics picks it
            diffs = [abs(len(r) - len(words)) for r in ref_words]
            self.reference += len(ref_words[diffs.index(min(diffs))])
            for k in range(1, self.n + 1):
                mine = Counter(tuple(words[i:i + k]) for i in range(len(words) - k + 1))
                best: Counter = Counter()
                for r in ref_words:
                    best |= Counter(tuple(r[i:i + k]) for i in range(len(r) - k + 1))
                self.matches[k - 1] += sum((mine & best).values())
                self.totals[k - 1] += sum(mine.values())

    def compute(self) -> float | None:
        if not self.generated and not self.reference:
            return None
        if min(self.matches) == 0:
            return 0.0
        log_precision = sum(math.log(m / t) for m, t in zip(self.matches, self.totals)) / self.n
        brevity = 1.0 if self.generated > self.reference else math.exp(1 - self.reference / self.generated)
        return brevity * math.exp(log_precision)


class WordErrorRate(MetricState):
    """Word error rate: the word-level edit distance (substitutions, deletions, insertions) of every
    generation from its reference, summed over the corpus and divided by the reference words (torchmetrics'
    WordErrorRate); 0 is perfect, and it can exceed 1."""

    def __init__(self) -> None:
        self.errors = self.words = 0

    def update(self, outputs: Any, targets: Any) -> None:
        for text, refs in zip(_texts(outputs, "wer"), _references(targets), strict=True):
            ref = refs[0].split()
            self.errors += _edit_distance(text.split(), ref)
            self.words += len(ref)

    def compute(self) -> float | None:
        return self.errors / self.words if self.words else None


def _edit_distance(a: list[str], b: list[str]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return row[-1]


class BleuParams(Params):
    n: int = Field(4, ge=1, le=8, description="the longest n-gram counted (BLEU-4 by default)")


class DetectionParams(Params):
    max_detections: int = Field(100, ge=1, le=10_000, description="the highest-scoring detections per image and "
                                                                  "class that count (COCO: 100)")


class F1Params(Params):
    average: Literal["micro", "macro"] = Field("micro", description="micro: over every label decision; macro: "
                                                                    "the mean of each label's F1")
    threshold: float = Field(0.5, gt=0.0, lt=1.0, description="a label is predicted when its probability (the "
                                                              "sigmoid of the output) is above this")


class SegmentationParams(Params):
    ignore_index: int = Field(IGNORE_INDEX, description="the mask value of pixels no one labelled")


def _labels_of(data: DatasetSplits) -> int:
    if data.num_classes < 1:
        raise ValueError(f"this metric needs the number of {'labels' if data.task == MULTILABEL else 'classes'}; "
                         "the dataset gives none (num_classes)")
    return data.num_classes


BUILTIN_METRICS: tuple[Metric, ...] = (
    Metric("accuracy", "top-1 accuracy: the share of held-out samples whose highest score is their class",
           lambda params, data: Accuracy(1, data.num_classes), tasks=(CLASSIFICATION,)),
    Metric("top_k_accuracy", "the share of held-out samples whose class is among the k highest scores",
           lambda params, data: Accuracy(params.k, data.num_classes), params=TopKParams, tasks=(CLASSIFICATION,)),
    Metric("linear_probe", "accuracy of a logistic regression fitted on the model's embeddings (the model frozen)",
           lambda params, data: LinearProbe(params.train_samples), params=ProbeParams, tasks=(CLASSIFICATION,)),
    Metric("mse", "mean squared error of the predictions", lambda params, data: RegressionError(2),
           higher_is_better=False, tasks=(REGRESSION,)),
    Metric("rmse", "root mean squared error of the predictions", lambda params, data: RegressionError(2, root=True),
           higher_is_better=False, tasks=(REGRESSION,)),
    Metric("mae", "mean absolute error of the predictions", lambda params, data: RegressionError(1),
           higher_is_better=False, tasks=(REGRESSION,)),
    Metric("r2", "coefficient of determination R² (1 is perfect, 0 is the targets' mean)",
           lambda params, data: R2(), tasks=(REGRESSION,)),
    Metric("f1", "multi-label F1 score of the thresholded predictions",
           lambda params, data: MultilabelF1(_labels_of(data), params.average, params.threshold),
           params=F1Params, tasks=(MULTILABEL,)),
    Metric("average_precision", "multi-label mean average precision over labels (mAP)",
           lambda params, data: MultilabelAveragePrecision(), tasks=(MULTILABEL,)),
    Metric("miou", "segmentation: the mean over classes of intersection over union",
           lambda params, data: SegmentationScores(_labels_of(data), params.ignore_index, "miou"),
           params=SegmentationParams, tasks=(SEGMENTATION,)),
    Metric("pixel_accuracy", "segmentation: the share of labelled pixels given their class",
           lambda params, data: SegmentationScores(_labels_of(data), params.ignore_index, "pixel_accuracy"),
           params=SegmentationParams, tasks=(SEGMENTATION,)),
    Metric("bleu", "seq2seq: corpus BLEU of the generated text against the references (0 to 1)",
           lambda params, data: Bleu(params.n), params=BleuParams, tasks=(SEQ2SEQ,)),
    Metric("wer", "seq2seq: word error rate of the generated text against the reference (a transcript's)",
           lambda params, data: WordErrorRate(), higher_is_better=False, tasks=(SEQ2SEQ,)),
    Metric("map", "detection: COCO box mAP, averaged over IoU 0.50:0.95 and the classes",
           lambda params, data: DetectionMAP(COCO_IOU_THRESHOLDS, params.max_detections),
           params=DetectionParams, tasks=(DETECTION,)),
    Metric("map_50", "detection: box mAP at IoU 0.50 (PASCAL VOC's threshold, COCO's interpolation)",
           lambda params, data: DetectionMAP((0.5,), params.max_detections), params=DetectionParams,
           tasks=(DETECTION,)),
    Metric("map_75", "detection: box mAP at IoU 0.75", lambda params, data: DetectionMAP((0.75,),
           params.max_detections), params=DetectionParams, tasks=(DETECTION,)),
)

#: The metrics a task is scored by when the suite names none (its first: the record's ``quality``).
TASK_METRICS: dict[str, tuple[str, ...]] = {
    CLASSIFICATION: ("accuracy", "top_k_accuracy"),
    REGRESSION: ("rmse", "r2"),
    MULTILABEL: ("f1", "average_precision"),
    SEGMENTATION: ("miou", "pixel_accuracy"),
    DETECTION: ("map", "map_50"),
    SEQ2SEQ: ("bleu", "wer"),
}
#: A default metric's id in records where it differs from its name (as the record's own fields always named it).
DEFAULT_IDS = {"top_k_accuracy": "top5_accuracy"}


def default_metric_ids(task: str | None = None) -> tuple[str, ...]:
    """The record ids of a task's default metrics (of every task's, where the task is not known yet)."""
    names = TASK_METRICS.get(task, ()) if task else tuple(n for names in TASK_METRICS.values() for n in names)
    return tuple(DEFAULT_IDS.get(n, n) for n in names)


class FunctionMetric(MetricState):
    """A user's function ``fn(predictions, targets, **params) -> float``, called once on every held-out
    prediction and target (concatenated)."""

    def __init__(self, fn: Any, params: dict[str, Any]) -> None:
        self.fn, self.params = fn, params
        self.predictions: list[Any] = []
        self.targets: list[Any] = []

    def update(self, outputs: Any, targets: Any) -> None:
        self.predictions.append(prediction(outputs, targets))
        self.targets.append(targets)

    def compute(self) -> Any:
        import torch

        if not self.predictions:
            return None
        targets = torch.cat(self.targets) if all(isinstance(t, torch.Tensor) for t in self.targets) else \
            [t for batch in self.targets for t in batch]
        return self.fn(torch.cat(self.predictions), targets, **self.params)


def referenced_metric(target: Any, params: dict[str, Any]) -> MetricState:
    """A metric named by reference: a class (instantiated with ``params``; a torchmetrics class is updated with
    the model's main output tensor) or a function (``FunctionMetric``)."""
    if isinstance(target, type):
        instance = target(**params)
        if type(instance).__module__.startswith("torchmetrics"):
            return Torchmetric(instance)
        if not (callable(getattr(instance, "update", None)) and callable(getattr(instance, "compute", None))):
            raise TypeError(f"{target.__module__}.{target.__qualname__} has no update(outputs, targets) and "
                            "compute(); expected a metric class or a function (predictions, targets) -> float")
        return instance
    if callable(target):
        return FunctionMetric(target, params)
    raise TypeError(f"{target!r} is neither a metric class nor a function")

