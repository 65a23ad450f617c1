"""COCO mAP against hand-worked cases and against torchmetrics' own implementations."""

import importlib.util
import sys
import types

import pytest
import torch

from mltricks.detection import confounder_false_positives, mean_average_precision


def _t(boxes, labels):
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    return {"boxes": boxes, "labels": torch.as_tensor(labels, dtype=torch.int64)}


def _p(boxes, labels, scores):
    return {**_t(boxes, labels), "scores": torch.as_tensor(scores, dtype=torch.float32)}


def test_perfect_and_empty_cases():
    targets = [_t([[0, 0, 10, 10], [20, 20, 30, 35]], [1, 2]), _t(torch.zeros(0, 4), [])]
    perfect = [_p([[0, 0, 10, 10], [20, 20, 30, 35]], [1, 2], [0.9, 0.8]), _p([], [], [])]
    result = mean_average_precision(perfect, targets)
    assert result["map"] == 1.0 and result["map_50"] == 1.0 and result["map_75"] == 1.0
    assert result["classes"].tolist() == [1, 2]
    # nothing detected: AP 0 for classes with ground truth
    nothing = [_p([], [], []), _p([], [], [])]
    assert mean_average_precision(nothing, targets)["map"] == 0.0
    # no ground truth anywhere: undefined, -1 as in COCO
    assert mean_average_precision(perfect, [_t([], []), _t([], [])])["map"] == -1.0


def test_hand_worked_precision_envelope():
    # one class, two truths; detections by score: hit, miss, hit -> precision 1, 1/2, 2/3 at
    # recall 0.5, 0.5, 1.0; the envelope is 1 up to recall 0.5 and 2/3 beyond: AP = (51 * 1 +
    # 50 * 2/3) / 101 at IoU 0.5
    targets = [_t([[0, 0, 10, 10]], [1]), _t([[0, 0, 10, 10]], [1])]
    predictions = [
        _p([[0, 0, 10, 10], [50, 50, 60, 60]], [1, 1], [0.9, 0.8]),
        _p([[0, 0, 10, 10]], [1], [0.7]),
    ]
    result = mean_average_precision(predictions, targets, iou_thresholds=(0.5,))
    assert result["map_50"].item() == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert "map_75" not in result


def test_matching_is_greedy_by_score_and_iou_boundary_counts():
    # box [0,0,10,10] vs [0,0,10,20] has IoU exactly 0.5: a match at threshold 0.5 (COCO: >=)
    targets = [_t([[0, 0, 10, 20]], [1])]
    predictions = [_p([[0, 0, 10, 10]], [1], [0.9])]
    assert mean_average_precision(predictions, targets, iou_thresholds=(0.5,))["map"] == 1.0
    assert mean_average_precision(predictions, targets, iou_thresholds=(0.55,))["map"] == 0.0
    # two detections on one truth: the higher score matches, the other is a false positive
    predictions = [_p([[0, 0, 10, 20], [0, 0, 10, 19]], [1, 1], [0.5, 0.9])]
    result = mean_average_precision(predictions, targets, iou_thresholds=(0.5,))
    assert result["map"] == 1.0  # the first-ranked (0.9) matched, recall 1 at precision 1
    # a wrong class never matches
    predictions = [_p([[0, 0, 10, 20]], [2], [0.9])]
    result = mean_average_precision(predictions, targets)
    assert result["map_per_class"].tolist() == [0.0, -1.0] and result["map"] == 0.0


def _random_case(seed, num_images=12):
    g = torch.Generator().manual_seed(seed)
    predictions, targets = [], []
    for _ in range(num_images):
        n = int(torch.randint(0, 4, (1,), generator=g))
        extra = int(torch.randint(0, 5, (1,), generator=g))

        def boxes(count):
            corner = torch.rand(count, 2, generator=g) * 60
            return torch.cat([corner, corner + torch.rand(count, 2, generator=g) * 30 + 4], 1)

        truth = boxes(n)
        noisy = truth + torch.randn(n, 4, generator=g) * 2.5
        detected = torch.cat([noisy, boxes(extra)])
        detected[:, 2:] = torch.maximum(detected[:, 2:], detected[:, :2] + 1)
        labels = torch.randint(1, 4, (n,), generator=g)
        flipped = torch.where(torch.rand(n, generator=g) < 0.2, labels % 3 + 1, labels)
        targets.append({"boxes": truth, "labels": labels})
        predictions.append(
            {
                "boxes": detected,
                "scores": torch.rand(n + extra, generator=g),
                "labels": torch.cat([flipped, torch.randint(1, 4, (extra,), generator=g)]),
            }
        )
    return predictions, targets


def _legacy_torchmetrics():
    """torchmetrics' pure-torch COCO mAP; it refuses to start without pycocotools, which it only
    uses for segmentation masks, so a stand-in module is put in place for the bbox case."""
    import torchmetrics.detection._mean_ap as legacy

    saved = {name: sys.modules.get(name) for name in ("pycocotools", "pycocotools.mask")}
    if importlib.util.find_spec("pycocotools") is None:
        sys.modules["pycocotools"] = types.ModuleType("pycocotools")
        sys.modules["pycocotools.mask"] = types.ModuleType("pycocotools.mask")
    return legacy, saved


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_torchmetrics_torch_implementation(seed, monkeypatch):
    legacy, saved = _legacy_torchmetrics()
    try:
        monkeypatch.setattr(legacy, "_PYCOCOTOOLS_AVAILABLE", True)
        predictions, targets = _random_case(seed)
        metric = legacy.MeanAveragePrecision(iou_type="bbox", class_metrics=True)
        metric.update(predictions, targets)
        reference = metric.compute()
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
    ours = mean_average_precision(predictions, targets)
    assert 0.1 < ours["map_50"] < 0.9  # a case with hits, misses and wrong classes
    for key in ("map", "map_50", "map_75", "map_per_class"):
        assert torch.allclose(ours[key], reference[key].float(), atol=1e-6), key


@pytest.mark.skipif(
    importlib.util.find_spec("pycocotools") is None
    and importlib.util.find_spec("faster_coco_eval") is None,
    reason="torchmetrics' MeanAveragePrecision needs pycocotools or faster_coco_eval",
)
def test_equals_torchmetrics_coco_backend():
    from torchmetrics.detection import MeanAveragePrecision

    backend = "pycocotools" if importlib.util.find_spec("pycocotools") else "faster_coco_eval"
    predictions, targets = _random_case(3)
    metric = MeanAveragePrecision(iou_type="bbox", class_metrics=True, backend=backend)
    metric.update(predictions, targets)
    reference = metric.compute()
    ours = mean_average_precision(predictions, targets)
    for key in ("map", "map_50", "map_75", "map_per_class"):
        assert torch.allclose(ours[key], reference[key].float(), atol=1e-4), key


def test_confounder_false_positives():
    targets = [_t([[0, 0, 10, 10]], [1]), _t([], [])]
    confounders = [torch.tensor([[20.0, 20, 30, 30]]), torch.tensor([[0.0, 0, 8, 8]])]
    predictions = [
        # on the object (not a false positive), on the confounder, on the confounder but
        # below the score threshold, on empty ground
        _p(
            [[0, 0, 10, 10], [20, 20, 30, 31], [20, 20, 30, 30], [40, 40, 50, 50]],
            [1, 2, 1, 1],
            [0.9, 0.8, 0.3, 0.9],
        ),
        _p([[0, 0, 8, 8]], [3], [0.6]),
    ]
    counts = confounder_false_positives(predictions, targets, confounders, score_threshold=0.5)
    assert counts.tolist() == [1, 1]
    with pytest.raises(ValueError, match="same number of images"):
        confounder_false_positives(predictions, targets, confounders[:1])


def test_bad_input():
    with pytest.raises(ValueError, match="predictions has 1 images but targets has 2"):
        mean_average_precision([_p([], [], [])], [_t([], []), _t([], [])])
    with pytest.raises(ValueError, match="iou_thresholds"):
        mean_average_precision([_p([], [], [])], [_t([], [])], iou_thresholds=(0.0,))
