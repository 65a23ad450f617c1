import pytest
import torch

from mltricks.data import make_scenes


def test_scenes_are_deterministic_and_consistent():
    a = make_scenes(12, canvas_size=48, num_objects=(1, 3), num_distractors=(0, 2), random_state=3)
    b = make_scenes(12, canvas_size=48, num_objects=(1, 3), num_distractors=(0, 2), random_state=3)
    c = make_scenes(12, canvas_size=48, random_state=4)
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    assert not torch.equal(a.images, c.images)
    assert a.images.shape == (12, 1, 48, 48) and a.masks.shape == (12, 48, 48)
    assert 0.0 <= a.images.min() and a.images.max() <= 1.0
    for i in range(12):
        boxes, labels = a.boxes[i], a.labels[i]
        assert boxes.shape == (len(labels), 4) and 1 <= len(labels) <= 3
        assert (labels >= 1).all() and (labels <= a.num_classes).all()  # 0 is background
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        assert (boxes >= 0).all() and (boxes <= 48).all()
        for box, label in zip(boxes.long(), labels):
            x1, y1, x2, y2 = box.tolist()
            inside = a.masks[i, y1:y2, x1:x2]
            # the mask of the object lies in its box and the box is tight around it
            assert (inside == label).any()
            assert (inside == label).any(0)[[0, -1]].all() and (inside == label).any(1)[
                [0, -1]
            ].all()
        # every labeled pixel lies in a box of its class
        covered = torch.zeros(48, 48, dtype=torch.bool)
        for box in boxes.long():
            covered[box[1] : box[3], box[0] : box[2]] = True
        assert not ((a.masks[i] > 0) & ~covered).any()


def test_scenes_targets_and_negatives():
    scenes = make_scenes(3, canvas_size=32, num_objects=0, num_distractors=2, object_size=10)
    assert all(len(t["labels"]) == 0 and t["boxes"].shape == (0, 4) for t in scenes.targets())
    assert (scenes.masks == 0).all()
    assert any(len(d) > 0 for d in scenes.distractor_boxes)
    assert scenes.class_names[0] == "background"


def test_scenes_from_held_out_digits_differ():
    train = make_scenes(
        4, canvas_size=32, num_objects=1, object_size=16, source="train", random_state=0
    )
    test = make_scenes(
        4, canvas_size=32, num_objects=1, object_size=16, source="test", random_state=0
    )
    assert not torch.equal(train.images, test.images)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_scenes": 0}, "num_scenes"),
        ({"style": "forest"}, "style"),
        ({"canvas_size": 8}, "canvas_size"),
        ({"num_objects": (3, 1)}, "num_objects"),
        ({"object_size": 2}, "object_size"),
    ],
)
def test_scenes_bad_input(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make_scenes(**{"num_scenes": 2, **kwargs})


def test_seed_is_a_deprecated_alias_of_random_state():
    new = make_scenes(3, canvas_size=32, object_size=10, random_state=8)
    with pytest.warns(DeprecationWarning, match="make_scenes\\(\\): 'seed' is deprecated"):
        old = make_scenes(3, canvas_size=32, object_size=10, seed=8)
    assert torch.equal(new.images, old.images) and torch.equal(new.masks, old.masks)
    with pytest.raises(TypeError, match="got both"):
        make_scenes(3, seed=8, random_state=8)
