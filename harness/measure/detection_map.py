"""Detection mean average precision, as the COCO evaluation (pycocotools' ``COCOeval``, bbox) computes it.

A detector's outputs are one dict per image with ``boxes`` (x1, y1, x2, y2), ``scores`` and ``labels``
(torchvision's form); its targets one dict per image with ``boxes`` and ``labels`` (``iscrowd`` optional).
For each class and IoU threshold, every image's detections of that class (its ``max_detections`` highest
scoring) are matched greedily, highest score first, to the unmatched ground-truth box they overlap most
(at least the threshold); the precision-recall curve over every image, made monotone, is read at 101
recall points and averaged. mAP is the mean over the classes that have ground truth and over the
thresholds (0.50, 0.55, ..., 0.95, or the one given). Crowd boxes (``iscrowd``) match without counting,
as in COCO; COCO's area ranges (small, medium, large) are not computed. ``tests/test_metrics.py`` checks
the figure against pycocotools on the same boxes.

A baseline's detections scored at least ``BASELINE_SCORE`` serve as ground truth too: the mAP of a method's
boxes against them is its fidelity to the baseline (``harness.measure.fidelity.compare_detections``), which
needs no labels. The metric
a suite names (``map``, ``map_50``, ``map_75``) is ``harness.builtin.metrics.DetectionMAP``.
"""
from __future__ import annotations

from typing import Any

COCO_IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
RECALL_POINTS = 101
#: A baseline detection at least this confident counts as ground truth for fidelity.
BASELINE_SCORE = 0.5


def box_iou(a: Any, b: Any) -> Any:
    """IoU of every box of ``a`` (N, 4) with every box of ``b`` (M, 4), x1 y1 x2 y2, as pycocotools computes
    it (no +1 on widths)."""
    import torch

    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def _crowd_iou(d: Any, g: Any) -> Any:
    """A detection's overlap with a crowd region: intersection over the detection's own area (COCO's rule)."""
    import torch

    area_d = (d[:, 2] - d[:, 0]).clamp(min=0) * (d[:, 3] - d[:, 1]).clamp(min=0)
    lt = torch.max(d[:, None, :2], g[None, :, :2])
    rb = torch.min(d[:, None, 2:], g[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    return torch.where(area_d[:, None] > 0, inter / area_d[:, None].clamp(min=1e-12), torch.zeros_like(inter))


def as_detections(out: Any) -> tuple[Any, Any, Any]:
    import torch

    if not isinstance(out, dict) or "boxes" not in out:
        raise TypeError(f"a detection is a dict with boxes, scores and labels per image; got {type(out).__name__}")
    boxes = torch.as_tensor(out["boxes"]).detach().to("cpu", torch.float64).reshape(-1, 4)
    n = boxes.shape[0]
    scores = torch.as_tensor(out["scores"]).detach().to("cpu", torch.float64).reshape(-1) if "scores" in out \
        else torch.ones(n, dtype=torch.float64)
    labels = torch.as_tensor(out["labels"]).detach().to("cpu", torch.int64).reshape(-1) if "labels" in out \
        else torch.zeros(n, dtype=torch.int64)
    return boxes, scores, labels


def as_truth(target: Any) -> tuple[Any, Any, Any]:
    import torch

    if not isinstance(target, dict) or "boxes" not in target:
        raise TypeError(f"a detection target is a dict with boxes and labels per image; got "
                        f"{type(target).__name__}")
    boxes = torch.as_tensor(target["boxes"]).detach().to("cpu", torch.float64).reshape(-1, 4)
    n = boxes.shape[0]
    labels = torch.as_tensor(target["labels"]).to("cpu", torch.int64).reshape(-1) if "labels" in target \
        else torch.zeros(n, dtype=torch.int64)
    crowd = torch.as_tensor(target["iscrowd"]).to("cpu").reshape(-1).bool() if "iscrowd" in target \
        else torch.zeros(n, dtype=torch.bool)
    return boxes, labels, crowd


def mean_average_precision(detections: list[tuple[Any, Any, Any]], truths: list[tuple[Any, Any, Any]],
                           iou_thresholds: tuple[float, ...], max_detections: int) -> float | None:
    """mAP over the classes with (non-crowd) ground truth; None when no image has any."""
    import torch

    classes = sorted({int(c) for _, labels, _ in truths for c in labels.tolist()})
    per_class = []
    for c in classes:
        truth_total = sum(int(((labels == c) & ~crowd).sum()) for _, labels, crowd in truths)
        if truth_total == 0:
            continue
        scores, hits, ignored = [], [], []
        for (d_boxes, d_scores, d_labels), (g_boxes, g_labels, g_crowd) in zip(detections, truths):
            mine = (d_labels == c).nonzero().flatten()
            if mine.numel() == 0:
                continue
            order = torch.argsort(-d_scores[mine], stable=True)[:max_detections]
            d = d_boxes[mine[order]]
            theirs = (g_labels == c).nonzero().flatten()
            crowd = g_crowd[theirs]
            # COCO sorts crowd boxes last: a detection takes a real box before settling for a crowd region
            theirs = torch.cat([theirs[~crowd], theirs[crowd]])
            crowd = g_crowd[theirs]
            hit, ign = _match(d, g_boxes[theirs], crowd, iou_thresholds)
            scores.append(d_scores[mine[order]])
            hits.append(hit)
            ignored.append(ign)
        per_class.append(_class_ap(scores, hits, ignored, truth_total, len(iou_thresholds)))
    if not per_class:
        return None
    return float(torch.stack(per_class).mean())


def _match(d: Any, g: Any, crowd: Any, thresholds: tuple[float, ...]) -> tuple[Any, Any]:
    """(T, D) matched and (T, D) ignored (matched to a crowd region) of detections ``d`` (sorted by score)
    against ground truth ``g``, per IoU threshold."""
    import torch

    T, D, G = len(thresholds), d.shape[0], g.shape[0]
    hit = torch.zeros(T, D, dtype=torch.bool)
    ign = torch.zeros(T, D, dtype=torch.bool)
    if G == 0:
        return hit, ign
    ious = box_iou(d, g)
    if bool(crowd.any()):
        ious[:, crowd] = _crowd_iou(d, g[crowd])
    for t, threshold in enumerate(thresholds):
        taken = torch.zeros(G, dtype=torch.bool)
        for i in range(D):
            # the unmatched real box with the highest IoU at least the threshold (the last of equals, as
            # COCOeval's loop keeps it); a crowd region only when no real box qualifies, and it stays open
            open_ = ~taken | crowd
            ok = open_ & (ious[i] >= min(threshold, 1 - 1e-10))
            if not bool(ok.any()):
                continue
            real = ok & ~crowd
            pool = real if bool(real.any()) else ok
            masked = torch.where(pool, ious[i], torch.full_like(ious[i], -1.0))
            best = G - 1 - int(torch.argmax(masked.flip(0)))
            if crowd[best]:
                ign[t, i] = True
            else:
                taken[best] = True
                hit[t, i] = True
    return hit, ign


def _class_ap(scores: list[Any], hits: list[Any], ignored: list[Any], truth_total: int, T: int) -> Any:
    """One class's AP per threshold, averaged over the thresholds: the monotone precision read at 101 recall
    points (COCOeval.accumulate)."""
    import torch

    if not scores:
        return torch.tensor(0.0, dtype=torch.float64)
    s = torch.cat(scores)
    order = torch.argsort(-s, stable=True)
    hit = torch.cat(hits, dim=1)[:, order]
    ign = torch.cat(ignored, dim=1)[:, order]
    # COCOeval's recall points bit for bit (np.linspace(0, 1, 101) is 0.01 * i): a recall of exactly 0.07 must
    # fall on the same side of its point
    recall_points = torch.tensor([0.01 * i for i in range(RECALL_POINTS)], dtype=torch.float64)
    aps = []
    for t in range(T):
        keep = ~ign[t]
        tp = torch.cumsum((hit[t] & keep).double(), 0)
        fp = torch.cumsum((~hit[t] & keep).double(), 0)
        recall = tp / truth_total
        precision = tp / (tp + fp + 2.220446049250313e-16)
        precision = torch.flip(torch.cummax(torch.flip(precision, [0]), 0).values, [0])
        idx = torch.searchsorted(recall, recall_points, side="left")
        q = torch.where(idx < precision.numel(), precision[idx.clamp(max=max(precision.numel() - 1, 0))],
                        torch.zeros_like(recall_points)) if precision.numel() else torch.zeros_like(recall_points)
        aps.append(q.mean())
    return torch.stack(aps).mean()
