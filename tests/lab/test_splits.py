"""The lab's splits against references: scikit-learn's split and a seeded permutation."""

import math

import numpy as np
import pytest
import torch
from sklearn.model_selection import train_test_split

from mltricks.lab.splits import (
    check_percent_tags,
    labeled_split,
    percent_tag,
    subsample,
    validation_split,
)


def test_stratified_split_equals_scikit_learns_split_of_the_arrays():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(103, 3)), rng.integers(0, 4, 103)
    train, val = validation_split(y, 0.3, random_state=7)
    X_train, X_val, y_train, y_val = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=7
    )
    np.testing.assert_array_equal(X[train], X_train)
    np.testing.assert_array_equal(X[val], X_val)
    np.testing.assert_array_equal(y[train], y_train)
    np.testing.assert_array_equal(y[val], y_val)


def test_stratified_split_is_a_partition_that_keeps_class_shares():
    y = np.repeat(np.arange(5), [10, 20, 30, 40, 50])
    train, val = validation_split(y, 0.2, random_state=0)
    assert train.dtype == val.dtype == np.int64
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(y)))
    assert len(val) == math.ceil(0.2 * len(y))
    for label, count in enumerate([10, 20, 30, 40, 50]):
        assert abs(np.sum(y[val] == label) - 0.2 * count) <= 1


def test_unstratified_split_is_a_seeded_permutation():
    labels = torch.zeros(50, dtype=torch.long)
    train, val = validation_split(labels, 0.25, random_state=3, stratify=False)
    order = torch.randperm(50, generator=torch.Generator().manual_seed(3)).numpy()
    np.testing.assert_array_equal(val, order[:12])  # int(0.25 * 50)
    np.testing.assert_array_equal(train, order[12:])
    again = validation_split(labels, 0.25, random_state=3, stratify=False)
    np.testing.assert_array_equal(again[1], val)
    other = validation_split(labels, 0.25, random_state=4, stratify=False)
    assert not np.array_equal(other[1], val)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_rejects_a_fraction_outside_zero_one(fraction):
    with pytest.raises(ValueError, match="fraction"):
        validation_split(np.arange(10) % 2, fraction, random_state=0)


def test_split_rejects_labels_that_are_not_one_dimensional():
    with pytest.raises(ValueError, match=r"labels must be one-dimensional.*\(5, 2\)"):
        validation_split(np.zeros((5, 2)), 0.2, random_state=0)


def test_subsample_draws_matching_pairs_without_replacement():
    images = torch.arange(20.0)[:, None]
    labels = torch.arange(20)
    x, y = subsample(images, labels, 8, random_state=1)
    keep = torch.randperm(20, generator=torch.Generator().manual_seed(1))[:8]
    assert torch.equal(y, keep) and torch.equal(x[:, 0].long(), y)
    assert len(set(y.tolist())) == 8
    for size in (0, 20, 50):  # all of them, in their order
        x, y = subsample(images, labels, size, random_state=1)
        assert x is images and y is labels


@pytest.mark.parametrize(
    ("fraction", "tag"),
    [(0.01, "1pct"), (0.02, "2pct"), (0.05, "5pct"), (0.1, "10pct"), (0.011, "1.1pct")],
)
def test_percent_tag(fraction, tag):
    assert percent_tag(fraction) == tag


def test_shares_that_round_to_the_same_percent_get_their_own_tags():
    # issue 23 item 5: 0.011 and 0.014 both wrote *_1pct, the second overwriting the first
    assert percent_tag(0.011) != percent_tag(0.014)
    check_percent_tags("fractions", (0.011, 0.014, 0.01))
    with pytest.raises(ValueError, match=r"--set fractions=0.01,0.01: .*'1pct'"):
        check_percent_tags("fractions", (0.01, 0.01))


@pytest.mark.parametrize(
    ("labels", "fraction", "words"),
    [
        (np.array([0, 0, 0, 1, 2, 2]), 0.5, r"class 1 has 1 of 6 samples"),
        (
            np.repeat(np.arange(4), 2),
            0.2,
            r"8 samples cut at 0.2 leave 2 and 6, and each part needs one of each of the 4",
        ),
    ],
)
def test_a_split_too_small_to_stratify_says_so(labels, fraction, words):
    # scikit-learn says "the least populated class in y has only 1 member"
    with pytest.raises(ValueError, match=f"too few samples to stratify a split: {words}"):
        validation_split(labels, fraction, random_state=0)


def test_labeled_split_is_split_labeled_and_names_the_setting_when_too_large():
    from mltricks.data import split_labeled

    labels = np.repeat(np.arange(3), [5, 4, 6])
    for labeled in (2, 4, 0.5):
        np.testing.assert_array_equal(
            labeled_split(labels, labeled, random_state=1, setting="labeled_per_class"),
            split_labeled(labels, labeled, random_state=1),
        )
    # split_labeled would say "n_labeled=5 per class": the user set labeled_per_class
    with pytest.raises(ValueError, match=r"^--set labeled_per_class=5: class 1 has 4 images"):
        labeled_split(labels, 5, random_state=1, setting="labeled_per_class")
