import numpy as np
import pytest
import torch

from mltricks.data import CONFOUNDERS, LITTER_CLASSES, STYLES, litter_style, make_scenes
from mltricks.data import litter as litter_module


def test_litter_style_is_registered_and_scenes_are_consistent():
    assert STYLES["litter"] is litter_style
    a = make_scenes(6, canvas_size=64, num_distractors=(1, 3), style="litter", random_state=5)
    b = make_scenes(6, canvas_size=64, num_distractors=(1, 3), style="litter", random_state=5)
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    assert a.images.shape == (6, 3, 64, 64) and 0 <= a.images.min() and a.images.max() <= 1
    assert a.class_names == LITTER_CLASSES == ("background", "plastic", "metal", "paper", "glass")
    for i in range(6):
        labels = a.labels[i]
        assert ((labels >= 1) & (labels <= 4)).all()  # classes start at 1
        # confounders are never labeled: no mask pixel inside a confounder box
        for box in a.distractor_boxes[i].long():
            assert (a.masks[i, box[1] : box[3], box[0] : box[2]] == 0).all()
    counts = torch.bincount(torch.cat(a.labels), minlength=5)
    assert counts[0] == 0


def test_every_kind_is_drawn_and_confounders_resemble_litter():
    rng = np.random.default_rng(0)
    style = litter_style("all")
    drawn = {style.paint_object(rng, 20)[2] for _ in range(200)}
    assert drawn == {1, 2, 3, 4}
    assert len(litter_module._CONFOUNDERS) == len(CONFOUNDERS) == 4
    for painter in litter_module._LITTER + litter_module._CONFOUNDERS:
        patch, mask = painter(rng, 24)
        assert patch.shape == (3, 24, 24) and mask.shape == (24, 24) and mask.dtype == bool
        assert 0.1 < mask.mean() < 0.95, painter.__name__  # an object, not a speck or a square
        assert 0 <= patch.min() and patch.max() <= 1
    # look-alikes: a blossom shares plastic's saturated colours, a puddle is grey like metal
    blossom, mask = litter_module._blossom(np.random.default_rng(1), 24)
    colours = blossom[:, mask].mean(1)
    assert colours.max() - colours.min() > 0.3  # saturated
    puddle, mask = litter_module._puddle(np.random.default_rng(1), 24)
    colours = puddle[:, mask].mean(1)
    assert colours.max() - colours.min() < 0.25 and colours.mean() > 0.5  # bright and greyish


def test_background_is_textured_forest_floor():
    background = litter_module._forest_floor(np.random.default_rng(0), 48)
    assert background.shape == (3, 48, 48)
    red, green, blue = background.reshape(3, -1).mean(1)
    assert red > green > blue  # brown soil
    assert background.std() > 0.03  # texture, not a flat colour


def test_scenes_without_litter_are_negatives():
    scenes = make_scenes(3, canvas_size=48, num_objects=0, num_distractors=2, style="litter")
    assert all(len(t["boxes"]) == 0 for t in scenes.targets())
    assert any(len(d) for d in scenes.distractor_boxes)


@pytest.mark.parametrize("size", [4, 5, 9, 33])
def test_painters_work_at_any_size(size):
    rng = np.random.default_rng(size)
    style = litter_style("all")
    for _ in range(10):
        patch, mask, label = style.paint_object(rng, size)
        assert patch.shape == (3, size, size) and mask.shape == (size, size) and 1 <= label <= 4
        patch, mask = style.paint_distractor(rng, size)
        assert patch.shape == (3, size, size) and mask.shape == (size, size)
