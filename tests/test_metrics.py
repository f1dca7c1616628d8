"""The built-in metrics compute what torchmetrics' classes of the same meaning compute, batch by batch, without
importing torchmetrics; and the metric a suite names by reference behaves as its docs say."""
from __future__ import annotations

import math

import pytest
import torch

torchmetrics = pytest.importorskip("torchmetrics")

from harness.builtin.metrics import BUILTIN_METRICS, TASK_METRICS, referenced_metric  # noqa: E402
from harness.plugin.metric import score  # noqa: E402
from harness.plugin.types import DatasetSplits  # noqa: E402

METRICS = {m.name: m for m in BUILTIN_METRICS}


def _data(task: str, num_classes: int = 0) -> DatasetSplits:
    x = torch.zeros(4, 3)
    return DatasetSplits(train=(x, torch.zeros(4)), test=(x, torch.zeros(4)), num_classes=num_classes, task=task)


def _ours(name: str, batches, task: str, num_classes: int = 0, **params) -> float | None:
    metric = METRICS[name]
    state = metric.build(metric.params.model_validate(params), _data(task, num_classes))
    for outputs, targets in batches:
        state.update(outputs, targets)
    return score(state.compute())


def _theirs(metric, batches) -> float:
    for outputs, targets in batches:
        metric.update(outputs.squeeze(-1) if outputs.dim() > targets.dim() and outputs.shape[-1] == 1 else outputs,
                      targets)
    return float(metric.compute())


def _batches(make, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [make(g) for _ in range(n)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_regression_errors_match_torchmetrics(seed):
    # a one-value regressor's (N, 1) outputs against (N,) targets, as models give them
    batches = _batches(lambda g: (torch.randn(16, 1, generator=g) * 3, torch.randn(16, generator=g) * 3), seed=seed)
    R = torchmetrics.regression
    assert _ours("mse", batches, "regression") == pytest.approx(_theirs(R.MeanSquaredError(), batches), rel=1e-5)
    assert _ours("rmse", batches, "regression") == pytest.approx(
        _theirs(R.MeanSquaredError(squared=False), batches), rel=1e-5)
    assert _ours("mae", batches, "regression") == pytest.approx(_theirs(R.MeanAbsoluteError(), batches), rel=1e-5)
    assert _ours("r2", batches, "regression") == pytest.approx(_theirs(R.R2Score(), batches), rel=1e-5, abs=1e-6)


def test_r2_of_several_targets_is_the_uniform_average_of_each_targets():
    batches = _batches(lambda g: (torch.randn(20, 3, generator=g), torch.randn(20, 3, generator=g) * 2 + 1))
    theirs = _theirs(torchmetrics.regression.R2Score(multioutput="uniform_average"), batches)
    assert _ours("r2", batches, "regression") == pytest.approx(theirs, rel=1e-5)
    assert _ours("mse", batches, "regression") == pytest.approx(
        _theirs(torchmetrics.regression.MeanSquaredError(), [(o.flatten(), t.flatten())
                                                                         for o, t in batches]), rel=1e-5)


def test_a_perfect_regressor_scores_r2_one_and_constant_targets_have_no_r2():
    t = torch.arange(10.0)
    assert _ours("r2", [(t[:, None], t)], "regression") == pytest.approx(1.0)
    assert _ours("rmse", [(t[:, None], t)], "regression") == 0.0
    assert _ours("r2", [(torch.randn(10, 1), torch.ones(10))], "regression") is None


@pytest.mark.parametrize("average", ["micro", "macro"])
@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_multilabel_f1_matches_torchmetrics_on_logits(average, threshold):
    batches = _batches(lambda g: (torch.randn(12, 5, generator=g) * 2, (torch.rand(12, 5, generator=g) > 0.6).long()))
    theirs = _theirs(torchmetrics.classification.MultilabelF1Score(num_labels=5, average=average,
                                                                   threshold=threshold), batches)
    assert _ours("f1", batches, "multilabel", 5, average=average, threshold=threshold) == pytest.approx(theirs,
                                                                                                         rel=1e-5)


def test_multilabel_f1_takes_probabilities_as_they_are_and_counts_a_label_no_one_carries_as_zero_in_macro():
    batches = _batches(lambda g: (torch.rand(12, 4, generator=g), torch.cat(
        [(torch.rand(12, 3, generator=g) > 0.5).long(), torch.zeros(12, 1, dtype=torch.long)], 1)))
    for average in ("micro", "macro"):
        theirs = _theirs(torchmetrics.classification.MultilabelF1Score(num_labels=4, average=average), batches)
        assert _ours("f1", batches, "multilabel", 4, average=average) == pytest.approx(theirs, rel=1e-5)


@pytest.mark.parametrize("seed", [0, 3])
def test_average_precision_matches_torchmetrics_and_scores_a_label_without_positives_zero(seed):
    def make(g):
        targets = (torch.rand(10, 4, generator=g) > 0.5).long()
        targets[:, 3] = 0  # no positive anywhere: AP 0 for this label, as in torchmetrics and sklearn
        # rounded scores: ties between samples, which AP must treat as one threshold
        return (torch.randn(10, 4, generator=g) + targets).mul(2).round().div(2), targets
    batches = _batches(make, seed=seed)
    metric = torchmetrics.classification.MultilabelAveragePrecision(num_labels=4, average="macro")
    with pytest.warns(UserWarning):
        theirs = _theirs(metric, batches)
    assert _ours("average_precision", batches, "multilabel", 4) == pytest.approx(theirs, rel=1e-5)


def test_average_precision_of_a_perfect_ranking_is_one():
    targets = torch.tensor([[1, 0], [0, 1], [1, 1], [0, 0]])
    assert _ours("average_precision", [(targets * 5.0 - 2, targets)], "multilabel", 2) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_segmentation_scores_match_torchmetrics_with_unlabelled_pixels_and_an_absent_class(seed):
    def make(g):
        masks = torch.randint(0, 3, (3, 8, 8), generator=g)  # class 3 of 4 never appears in a mask...
        masks[:, :2] = 255  # ...and the top rows are unlabelled
        logits = torch.randn(3, 4, 8, 8, generator=g)
        logits[:, 3] -= 10  # ...nor is it ever predicted: it is left out of the mean
        logits.scatter_add_(1, masks.clamp(max=2)[:, None], torch.full((3, 1, 8, 8), 1.5))
        return logits, masks
    batches = _batches(make, seed=seed)
    C = torchmetrics.classification
    assert _ours("miou", batches, "segmentation", 4) == pytest.approx(
        _theirs(C.MulticlassJaccardIndex(num_classes=4, ignore_index=255, average="macro"), batches), rel=1e-5)
    assert _ours("pixel_accuracy", batches, "segmentation", 4) == pytest.approx(
        _theirs(C.MulticlassAccuracy(num_classes=4, ignore_index=255, average="micro"), batches), rel=1e-5)


def test_a_dict_output_is_scored_on_its_out_tensor():
    masks = torch.randint(0, 2, (2, 4, 4))
    logits = torch.nn.functional.one_hot(masks, 2).permute(0, 3, 1, 2).float()
    assert _ours("miou", [({"out": logits, "aux": -logits}, masks)], "segmentation", 2) == pytest.approx(1.0)


def test_a_mask_value_outside_the_classes_is_a_clear_error():
    with pytest.raises(ValueError, match=r"class indices 0\.\.1 or 255"):
        _ours("miou", [(torch.randn(1, 2, 2, 2), torch.tensor([[[0, 7], [1, 255]]]))], "segmentation", 2)


def test_accuracy_is_top_1_by_argmax_and_none_for_outputs_that_are_not_class_scores():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0], [1.0, 2.0, 0.0]])
    targets = torch.tensor([0, 1, 1])
    assert _ours("accuracy", [(logits, targets)], "classification", 3) == pytest.approx(2 / 3)
    assert _ours("top_k_accuracy", [(logits, targets)], "classification", 3, k=2) == pytest.approx(1.0)
    assert _ours("accuracy", [(torch.randn(3, 8), targets)], "classification", 3) is None  # an embedding
    assert _ours("top_k_accuracy", [(logits, targets)], "classification", 3, k=5) is None  # k beyond the classes


def test_every_task_has_default_metrics_that_score_it():
    for task, names in TASK_METRICS.items():
        for name in names:
            assert METRICS[name].tasks is None or task in METRICS[name].tasks


def test_a_torchmetrics_class_by_reference_is_updated_with_the_main_output():
    state = referenced_metric(torchmetrics.regression.PearsonCorrCoef, {})
    t = torch.arange(8.0)
    state.update(t[:, None] * 2 + 1, t)
    assert score(state.compute()) == pytest.approx(1.0)


def test_a_users_function_is_called_once_on_every_prediction():
    calls = []

    def evaluate(predictions, targets, scale=1.0):
        calls.append(predictions.shape[0])
        return float((predictions - targets).abs().max()) * scale
    state = referenced_metric(evaluate, {"scale": 2.0})
    state.update(torch.zeros(3, 1), torch.ones(3))
    state.update(torch.zeros(2, 1), torch.full((2,), 3.0))
    assert score(state.compute()) == 6.0 and calls == [5]


def test_a_reference_that_is_no_metric_is_refused():
    class NotAMetric:
        pass
    with pytest.raises(TypeError, match="no update"):
        referenced_metric(NotAMetric, {})
    assert score(float("nan")) is None and score(torch.tensor(0.5)) == 0.5 and not math.isnan(score(1) or 0)


def _random_detection_batch(g, images=6, classes=3, crowd=False):
    """Ground truth and noisy detections of it (shifted boxes, spurious ones, scores with ties)."""
    outputs, targets = [], []
    for _ in range(images):
        n = int(torch.randint(0, 5, (1,), generator=g))
        xy = torch.rand(n, 2, generator=g) * 80
        wh = torch.rand(n, 2, generator=g) * 30 + 4
        boxes = torch.cat([xy, xy + wh], 1)
        labels = torch.randint(1, classes + 1, (n,), generator=g)
        target = {"boxes": boxes, "labels": labels}
        if crowd:
            target["iscrowd"] = (torch.rand(n, generator=g) < 0.2).long()
        targets.append(target)
        moved = boxes + torch.randn(n, 4, generator=g) * 3
        jitter = torch.cat([torch.minimum(moved[:, :2], moved[:, 2:]), torch.maximum(moved[:, :2], moved[:, 2:])], 1)
        extra = int(torch.randint(0, 4, (1,), generator=g))
        exy = torch.rand(extra, 2, generator=g) * 80
        spurious = torch.cat([exy, exy + torch.rand(extra, 2, generator=g) * 30 + 4], 1)
        d_boxes = torch.cat([jitter, spurious])
        d_labels = torch.cat([torch.where(torch.rand(n, generator=g) < 0.8, labels, torch.randint(
            1, classes + 1, (n,), generator=g)), torch.randint(1, classes + 1, (extra,), generator=g)])
        scores = (torch.rand(n + extra, generator=g) * 10).round() / 10  # ties, as real scores have
        outputs.append({"boxes": d_boxes, "scores": scores, "labels": d_labels})
    return outputs, targets


def _pycocotools_stats(outputs, targets, classes=3):
    coco_mod = pytest.importorskip("pycocotools.coco")
    from pycocotools.cocoeval import COCOeval

    images, annotations, results = [], [], []
    for i, (out, tgt) in enumerate(zip(outputs, targets)):
        images.append({"id": i, "width": 128, "height": 128})
        for j, (b, c) in enumerate(zip(tgt["boxes"].tolist(), tgt["labels"].tolist())):
            w, h = b[2] - b[0], b[3] - b[1]
            crowd = int(tgt.get("iscrowd", torch.zeros(len(tgt["labels"])))[j])
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": c, "bbox": [b[0], b[1], w, h],
                                "area": w * h, "iscrowd": crowd})
        for b, s, c in zip(out["boxes"].tolist(), out["scores"].tolist(), out["labels"].tolist()):
            results.append({"image_id": i, "category_id": c, "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                            "score": s})
    gt = coco_mod.COCO()
    gt.dataset = {"images": images, "annotations": annotations,
                  "categories": [{"id": c} for c in range(1, classes + 1)]}
    gt.createIndex()
    evaluator = COCOeval(gt, gt.loadRes(results), "bbox")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return evaluator.stats


@pytest.mark.parametrize("seed, crowd", [(0, False), (1, False), (2, True)])
def test_detection_map_matches_pycocotools(seed, crowd, capsys):
    g = torch.Generator().manual_seed(seed)
    batches = [_random_detection_batch(g, crowd=crowd) for _ in range(3)]
    outputs = [o for outs, _ in batches for o in outs]
    targets = [t for _, tgts in batches for t in tgts]
    stats = _pycocotools_stats(outputs, targets)
    capsys.readouterr()
    assert _ours("map", batches, "detection") == pytest.approx(stats[0], abs=1e-6)
    assert _ours("map_50", batches, "detection") == pytest.approx(stats[1], abs=1e-6)
    assert _ours("map_75", batches, "detection") == pytest.approx(stats[2], abs=1e-6)


def test_detections_identical_to_the_truth_score_map_one_and_none_score_zero():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 40.0, 30.0]])
    truth = [{"boxes": boxes, "labels": torch.tensor([1, 2])}]
    perfect = [{"boxes": boxes, "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([1, 2])}]
    assert _ours("map", [(perfect, truth)], "detection") == pytest.approx(1.0)
    nothing = [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}]
    assert _ours("map", [(nothing, truth)], "detection") == 0.0
    assert _ours("map", [(nothing, [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0)}])], "detection") is None


def test_a_detectors_fidelity_is_its_map_against_the_baselines_confident_boxes():
    from harness.measure.detection_map import as_detections
    from harness.measure.fidelity import compare_detections

    base = [as_detections({"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]]),
                           "scores": torch.tensor([0.9, 0.8, 0.2]), "labels": torch.tensor([1, 2, 1])})]
    assert compare_detections(base, None) == {"map_vs_baseline": 1.0}  # the baseline against itself
    assert compare_detections(base, base)["map_vs_baseline"] == pytest.approx(1.0)
    # the method lost the class-2 box: half the classes found nothing
    lost = [as_detections({"boxes": torch.tensor([[0.0, 0, 10, 10]]), "scores": torch.tensor([0.9]),
                           "labels": torch.tensor([1])})]
    assert compare_detections(base, lost)["map_vs_baseline"] == pytest.approx(0.5)
    unsure = [as_detections({"boxes": torch.tensor([[0.0, 0, 10, 10]]), "scores": torch.tensor([0.3]),
                             "labels": torch.tensor([1])})]
    assert compare_detections(unsure, lost) == {"map_vs_baseline": None}  # nothing confident to compare with


def test_a_linear_probe_fits_on_the_training_embeddings_and_scores_the_held_out_ones():
    from harness.plugin.data import TensorSplit

    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (300,), generator=g)
    x = torch.randn(300, 8, generator=g) * 0.3 + torch.nn.functional.one_hot(y, 8).float()  # separable classes
    data = DatasetSplits(train=TensorSplit(x[:200], y[:200]), test=TensorSplit(x[200:], y[200:]), num_classes=3)
    metric = METRICS["linear_probe"]
    state = metric.build(metric.params(), data)
    state.setup(torch.nn.Identity(), data, lambda inputs: inputs)
    assert score(state.compute()) > 0.95
    noise = metric.build(metric.params(), data)
    noise.setup(lambda inputs: torch.randn(inputs.shape[0], 8, generator=g), data, lambda inputs: inputs)
    assert score(noise.compute()) < 0.6  # embeddings that carry nothing probe near chance (1/3)


def test_token_states_are_averaged_over_the_attention_mask():
    from harness.builtin.metrics import embeddings
    from harness.plugin.data import TensorSplit

    ids = torch.tensor([[1, 2, 0], [3, 0, 0]])
    split = TensorSplit({"input_ids": ids, "attention_mask": (ids > 0).long()}, torch.tensor([0, 1]))

    def encoder(input_ids, attention_mask):
        return {"last_hidden_state": input_ids[..., None].float().repeat(1, 1, 2)}
    features, labels = embeddings(encoder, split, lambda inputs: inputs, torch.arange(2))
    assert features.tolist() == [[1.5, 1.5], [3.0, 3.0]] and labels.tolist() == [0, 1]


def _sentences(g, n, vocab=12, length=(3, 9)):
    words = [f"w{i}" for i in range(vocab)]
    return [" ".join(words[int(torch.randint(0, vocab, (1,), generator=g))]
                     for _ in range(int(torch.randint(*length, (1,), generator=g)))) for _ in range(n)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bleu_and_wer_match_torchmetrics(seed):
    g = torch.Generator().manual_seed(seed)
    refs = _sentences(g, 30)
    # generations: the reference with some words changed, dropped or added
    gens = []
    for r in refs:
        words = r.split()
        words = [w if float(torch.rand(1, generator=g)) > 0.25 else "x" for w in words]
        if float(torch.rand(1, generator=g)) < 0.3:
            words = words[:-1]
        if float(torch.rand(1, generator=g)) < 0.2:
            words.append("extra")
        gens.append(" ".join(words))
    batches = [(gens[i:i + 8], refs[i:i + 8]) for i in range(0, 30, 8)]
    bleu = torchmetrics.text.BLEUScore(n_gram=4)
    wer = torchmetrics.text.WordErrorRate()
    for o, t in batches:
        bleu.update(o, [[r] for r in t])
        wer.update(o, t)
    assert _ours("bleu", batches, "seq2seq") == pytest.approx(float(bleu.compute()), rel=1e-5)
    assert _ours("wer", batches, "seq2seq") == pytest.approx(float(wer.compute()), rel=1e-6)


def test_bleu_takes_several_references_and_a_perfect_generation_scores_one():
    refs = [["the cat sat on the mat", "a cat sat on the mat"], ["it is raining hard today"]]
    gens = ["a cat sat on the mat", "it is raining hard today"]
    assert _ours("bleu", [(gens, refs)], "seq2seq") == pytest.approx(1.0)
    theirs = torchmetrics.text.BLEUScore()(["the cat sat on a mat", "it rains hard today"], refs)
    assert _ours("bleu", [(["the cat sat on a mat", "it rains hard today"], refs)], "seq2seq") == pytest.approx(
        float(theirs), rel=1e-5)
    with pytest.raises(TypeError, match="scores text"):
        _ours("bleu", [(torch.zeros(2, 3), ["a", "b"])], "seq2seq")
