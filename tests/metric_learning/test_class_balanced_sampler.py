from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from mltricks.metric_learning import ClassBalancedBatchSampler


def _labels():
    return torch.tensor([0] * 10 + [1] * 7 + [2] * 5 + [3] * 3)


def test_every_batch_holds_m_samples_of_p_classes():
    labels = _labels()
    sampler = ClassBalancedBatchSampler(
        labels, samples_per_class=2, classes_per_batch=3, random_state=1
    )
    assert len(sampler) == 25 // 6
    batches = list(sampler)
    assert len(batches) == len(sampler)
    for batch in batches:
        counts = Counter(labels[batch].tolist())
        assert len(counts) == 3 and set(counts.values()) == {2}
        assert all(0 <= i < len(labels) for i in batch)


def test_all_classes_by_default_and_samples_visited_evenly():
    labels = _labels()
    sampler = ClassBalancedBatchSampler(labels, samples_per_class=2, num_batches=15, random_state=0)
    seen = Counter(i for batch in sampler for i in batch)
    # class 0 (10 samples) hands out 30 indices: three full passes, each sample three times
    assert all(seen[i] == 3 for i in range(10))
    # every class appears in every batch
    assert all(len(set(labels[b].tolist())) == 4 for b in sampler)


def test_small_classes_repeat_samples_and_epochs_differ_but_seeds_reproduce():
    labels = torch.tensor([0, 0, 0, 0, 1])
    batch = next(iter(ClassBalancedBatchSampler(labels, samples_per_class=3)))
    assert batch.count(4) == 3  # the one sample of class 1 fills its three places
    first = ClassBalancedBatchSampler(_labels(), samples_per_class=2, random_state=5)
    second = ClassBalancedBatchSampler(_labels(), samples_per_class=2, random_state=5)
    epoch_one = list(first)
    assert epoch_one == list(second)
    assert list(first) != epoch_one  # the next epoch draws other batches


def test_works_as_a_data_loader_batch_sampler():
    labels = _labels()
    sampler = ClassBalancedBatchSampler(labels, samples_per_class=2, random_state=0)
    loader = DataLoader(TensorDataset(torch.arange(25), labels), batch_sampler=sampler)
    for indices, batch_labels in loader:
        assert torch.equal(labels[indices], batch_labels)
        assert batch_labels.bincount().tolist() == [2, 2, 2, 2]


@pytest.mark.parametrize(
    ("labels", "kwargs", "message"),
    [
        ([1, 1, 1], {"samples_per_class": 2}, "at least two classes"),
        ([0, 1, 0, 1], {"samples_per_class": 1}, "samples_per_class must be an integer >= 2"),
        ([0, 1, 0, 1], {"samples_per_class": 2, "classes_per_batch": 3}, "classes_per_batch"),
        ([0.5, 1.0], {"samples_per_class": 2}, "integer class ids"),
        ([0, 1, 0, 1], {"samples_per_class": 2, "num_batches": 0}, "num_batches"),
    ],
)
def test_bad_arguments_are_refused(labels, kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        ClassBalancedBatchSampler(labels, **kwargs)


def test_random_state_takes_a_generator_and_the_old_name_still_works():
    labels = _labels()
    first = list(ClassBalancedBatchSampler(labels, samples_per_class=2, random_state=5))
    with pytest.warns(DeprecationWarning, match="'seed' is deprecated; use 'random_state'"):
        old = list(ClassBalancedBatchSampler(labels, samples_per_class=2, seed=5))
    assert old == first
    generator = np.random.default_rng(5)  # used as is: the same draws as the seed
    assert (
        list(ClassBalancedBatchSampler(labels, samples_per_class=2, random_state=generator))
        == first
    )
