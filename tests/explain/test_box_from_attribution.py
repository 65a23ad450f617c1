import numpy as np
import pytest
import torch

from mltricks.explain import box_from_attribution


def _brute_force(relevance, quantile):
    threshold = np.quantile(relevance, quantile)
    rows, cols = np.nonzero((relevance > threshold) | (relevance == relevance.max()))
    return [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]


def test_boxes_the_top_pixels_like_a_brute_force_loop():
    generator = torch.Generator().manual_seed(0)
    maps = torch.randn(6, 3, 7, 9, generator=generator)
    for quantile in (0.0, 0.5, 0.9, 0.99):
        boxes = box_from_attribution(maps, quantile=quantile)
        assert boxes.shape == (6, 4) and boxes.dtype == torch.float32
        for i in range(6):
            relevance = maps[i].abs().amax(0).double().numpy()
            assert boxes[i].tolist() == _brute_force(relevance, quantile)


def test_a_known_blob_and_the_accepted_shapes():
    relevance = torch.zeros(8, 10)
    relevance[2:5, 3:7] = 1.0
    relevance[3, 4] = -2.0  # negative attribution counts by its size
    # most of the map is zero: the 0.8 quantile is 0 and only the non-zero blob counts
    assert box_from_attribution(relevance, quantile=0.8).tolist() == [3.0, 2.0, 7.0, 5.0]
    assert box_from_attribution(relevance, quantile=0.99).tolist() == [4.0, 3.0, 5.0, 4.0]
    batch = relevance.expand(2, 8, 10)
    assert box_from_attribution(batch, quantile=0.5).tolist() == [[3.0, 2.0, 7.0, 5.0]] * 2
    channels = torch.stack([relevance, torch.zeros(8, 10)])[None]  # (1, 2, 8, 10)
    assert box_from_attribution(channels, quantile=0.5).tolist() == [[3.0, 2.0, 7.0, 5.0]]
    # a flat map has no preference: the whole image
    assert box_from_attribution(torch.ones(4, 5)).tolist() == [0.0, 0.0, 5.0, 4.0]


def test_bad_input():
    with pytest.raises(ValueError, match="quantile"):
        box_from_attribution(torch.rand(4, 4), quantile=1.0)
    with pytest.raises(ValueError, match="attribution must have shape"):
        box_from_attribution(torch.rand(4))
    with pytest.raises(ValueError, match="attribution must hold finite"):
        box_from_attribution(torch.full((3, 3), float("nan")))
