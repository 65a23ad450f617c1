import pytest
import torch

from mltricks.detection import collate_detection, validate_targets


def _target(boxes, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor(labels)}


def test_valid_targets_come_back_canonical_and_inputs_untouched():
    targets = [_target([[1, 2, 10, 12]], [3]), {"boxes": torch.tensor([]), "labels": []}]
    original = targets[0]["boxes"].clone()
    out = validate_targets(targets, [(20, 20), (20, 20)], num_classes=3)
    assert out[0]["boxes"].dtype == torch.float32 and out[0]["labels"].dtype == torch.int64
    assert out[1]["boxes"].shape == (0, 4) and out[1]["labels"].shape == (0,)  # a negative
    assert torch.equal(targets[0]["boxes"], original)


@pytest.mark.parametrize(
    ("boxes", "labels", "match"),
    [
        ([[1, 2, 10, 12]], [0], r"image 0: labels \[0\].*start at 1.*background"),
        ([[1, 2, 10, 12]], [-2], "start at 1"),
        ([[1, 2, 10, 12]], [5], "exceed num_classes=3"),
        ([[10, 2, 1, 12]], [1], r"image 0: box 0 .* is inverted"),
        ([[1, 2, 25, 12]], [1], r"outside the image \(image height 20, width 20"),
        ([[-1, 2, 5, 12]], [1], "outside the image"),
        ([[4, 2, 4, 12]], [1], "zero area"),
        ([[1, 2, float("nan"), 12]], [1], "non-finite"),
        ([[1, 2, 10]], [1], r"shape \(n, 4\)"),
        ([[1, 2, 10, 12]], [1, 2], "1 boxes but 2 labels"),
    ],
)
def test_faulty_boxes_and_labels_raise_naming_the_image(boxes, labels, match):
    with pytest.raises(ValueError, match=match):
        validate_targets([_target(boxes, labels)], [(20, 20)], num_classes=3)


def test_messages_use_given_names_and_float_labels_are_rejected():
    with pytest.raises(ValueError, match=r"photo_7\.jpg: box 0"):
        validate_targets([_target([[5, 5, 1, 1]], [1])], [(9, 9)], names=["photo_7.jpg"])
    with pytest.raises(TypeError, match="labels must be integers"):
        validate_targets([{"boxes": [[0, 0, 2, 2]], "labels": [1.0]}], [(9, 9)])
    with pytest.raises(TypeError, match="'boxes' and 'labels'"):
        validate_targets([{"boxes": torch.zeros(0, 4)}], [(9, 9)])
    with pytest.raises(ValueError, match="image_sizes has 2 entries"):
        validate_targets([_target([[0, 0, 2, 2]], [1])], [(9, 9), (9, 9)])


def test_repair_swaps_clips_and_drops_with_one_warning():
    targets = [
        _target([[10, 12, 1, 2], [-3, 4, 8, 30], [5, 5, 5, 9], [25, 1, 30, 5]], [1, 2, 3, 4]),
        _target([[0, 0, 4, 4]], [2]),
    ]
    with pytest.warns(UserWarning, match=r"repaired 5 boxes: image 0 box 0: inverted"):
        out = validate_targets(targets, [(20, 20), (8, 8)], repair=True)
    # inverted: swapped; outside: clipped; zero area: dropped; wholly outside: dropped
    assert out[0]["boxes"].tolist() == [[1, 2, 10, 12], [0, 4, 8, 20]]
    assert out[0]["labels"].tolist() == [1, 2]
    assert out[1]["boxes"].tolist() == [[0, 0, 4, 4]]
    # labels are never "repaired": the intended class is unknown
    with pytest.raises(ValueError, match="start at 1"):
        validate_targets([_target([[0, 0, 4, 4]], [0])], [(8, 8)], repair=True)


def test_collate_keeps_lists():
    images, targets = collate_detection(
        [(torch.zeros(3, 4, 5), {"a": 1}), (torch.zeros(3, 6, 6), {"a": 2})]
    )
    assert [tuple(i.shape) for i in images] == [(3, 4, 5), (3, 6, 6)]
    assert targets == [{"a": 1}, {"a": 2}]
