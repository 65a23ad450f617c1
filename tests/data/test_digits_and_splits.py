import numpy as np
import pytest
import torch

from mltricks.data import load_digits_images, split_labeled


def test_digits_shapes_range_and_fixed_split():
    images, labels = load_digits_images()
    assert images.shape == (1797, 1, 8, 8) and labels.shape == (1797,)
    assert images.dtype == torch.float32 and 0.0 <= images.min() and images.max() <= 1.0
    _train_x, train_y = load_digits_images(split="train")
    test_x, test_y = load_digits_images(split="test")
    assert len(train_y) + len(test_y) == 1797 and len(test_y) == 360
    again_x, _ = load_digits_images(split="test")
    assert torch.equal(test_x, again_x)
    # stratified: every class in both splits, in proportion
    assert set(test_y.tolist()) == set(range(10))
    assert np.bincount(test_y.numpy()).min() >= 30


def test_digits_bad_split():
    with pytest.raises(ValueError, match="split must be one of"):
        load_digits_images(split="validation")


def test_split_labeled_per_class_count_and_share():
    y = np.repeat(np.arange(4), 25)
    mask = split_labeled(y, 3, random_state=0)
    assert mask.dtype == bool and mask.shape == y.shape
    assert np.bincount(y[mask]).tolist() == [3, 3, 3, 3]
    share = split_labeled(y, 0.2, random_state=0)
    assert np.bincount(y[share]).tolist() == [5, 5, 5, 5]
    assert np.array_equal(split_labeled(y, 3, random_state=1), split_labeled(y, 3, random_state=1))
    assert not np.array_equal(
        split_labeled(y, 3, random_state=1), split_labeled(y, 3, random_state=2)
    )
    # at least one labeled sample per class, even for a tiny share
    assert np.bincount(y[split_labeled(y, 0.001, random_state=0)]).tolist() == [1, 1, 1, 1]


@pytest.mark.parametrize(
    ("n_labeled", "error", "match"),
    [
        (0, ValueError, "n_labeled"),
        (1.5, ValueError, "n_labeled"),
        (30, ValueError, "class"),
        ("3", TypeError, "n_labeled"),
    ],
)
def test_split_labeled_bad_input(n_labeled, error, match):
    with pytest.raises(error, match=match):
        split_labeled(np.repeat(np.arange(2), 10), n_labeled)
