import math

import numpy as np
import pytest
import torch

from mltricks.data import collate_bags, load_digits_images, make_bags, pad_bags
from mltricks.data.bags import _positive_count


def test_bag_labels_match_their_rule():
    images, labels = load_digits_images(split="train")
    bags = make_bags(images, labels, num_bags=200, positive_fraction=0.3, random_state=0)
    assert len(bags) == 200 and int(bags.labels.sum()) == 60
    for bag, label, hidden, idx in zip(
        bags.instances, bags.labels, bags.instance_labels, bags.indices
    ):
        assert torch.equal(bag, images[idx])
        assert torch.equal(hidden, labels[idx] == 2)
        assert int(label) == int(hidden.any())  # positive iff it holds a "2"
        assert len(set(idx.tolist())) == len(idx)  # distinct images within a bag
    sizes = bags.sizes.float()
    assert sizes.min() >= 1 and abs(float(sizes.mean()) - 10) < 0.6
    assert 1.4 < float(sizes.std()) < 2.6
    again = make_bags(images, labels, num_bags=200, positive_fraction=0.3, random_state=0)
    assert all(torch.equal(a, b) for a, b in zip(bags.indices, again.indices))


def test_other_positive_class_and_extreme_fractions():
    images, labels = load_digits_images(split="test")
    bags = make_bags(
        images, labels, positive_class=7, num_bags=30, positive_fraction=1.0, random_state=1
    )
    assert bool(bags.labels.all())
    assert all(bool((labels[i] == 7).any()) for i in bags.indices)
    bags = make_bags(
        images, labels, num_bags=30, positive_fraction=0.0, std_bag_size=0, random_state=1
    )
    assert not bool(bags.labels.any()) and bags.sizes.tolist() == [10] * 30
    assert not any(bool((labels[i] == 2).any()) for i in bags.indices)


def test_positive_count_is_the_binomial_given_at_least_one():
    rng = np.random.default_rng(0)
    size, share = 10, 0.1
    draws = np.array([_positive_count(rng, size, share) for _ in range(5000)])
    pmf = np.array([math.comb(size, k) * share**k * (1 - share) ** (size - k) for k in range(11)])
    expected_mean = (np.arange(11) * pmf).sum() / (1 - pmf[0])
    assert draws.min() >= 1 and draws.mean() == pytest.approx(expected_mean, abs=0.03)
    assert np.mean(draws == 1) == pytest.approx(pmf[1] / (1 - pmf[0]), abs=0.02)


def test_bad_bags_give_clear_errors():
    images, labels = load_digits_images(split="test")
    no_twos = labels != 2
    with pytest.raises(ValueError, match="positive_class=2 does not occur in labels"):
        make_bags(images[no_twos], labels[no_twos], num_bags=10, random_state=0)
    with pytest.raises(ValueError, match="mean_bag_size must be a number >= 1"):
        make_bags(images, labels, num_bags=10, mean_bag_size=0)
    with pytest.raises(ValueError, match="positive_fraction must be a number"):
        make_bags(images, labels, num_bags=10, positive_fraction=1.5)
    with pytest.raises(ValueError, match="negative bags need other classes"):
        make_bags(images[labels == 2], labels[labels == 2], num_bags=10)
    with pytest.raises(ValueError, match="num_bags must be an integer >= 1"):
        make_bags(images, labels, num_bags=0)


def test_pad_bags_and_collate():
    bags = [torch.full((2, 3), 1.0), torch.full((4, 3), 2.0), torch.full((1, 3), 3.0)]
    padded, mask = pad_bags(bags, padding_value=-1.0)
    assert padded.shape == (3, 4, 3) and mask.tolist() == [
        [True, True, False, False],
        [True, True, True, True],
        [True, False, False, False],
    ]
    assert torch.equal(padded[mask], torch.cat(bags)) and bool((padded[~mask] == -1).all())
    with pytest.raises(ValueError, match=r"bags must not be empty; bags \[1\]"):
        pad_bags([torch.ones(2, 3), torch.ones(0, 3)])
    padded, mask = pad_bags(bags, length=6)
    assert padded.shape == (3, 6, 3) and mask.sum(1).tolist() == [2, 4, 1]
    with pytest.raises(ValueError, match="length must be an integer >= 4"):
        pad_bags(bags, length=3)
    with pytest.raises(ValueError, match="same shape"):
        pad_bags([torch.ones(2, 3), torch.ones(2, 4)])

    images, labels = load_digits_images(split="test")
    data = make_bags(images, labels, num_bags=6, random_state=0)
    loader = torch.utils.data.DataLoader(data, batch_size=3, collate_fn=collate_bags)
    x, m, y, hidden = next(iter(loader))
    assert x.shape[:2] == m.shape == hidden.shape and x.shape[2:] == (1, 8, 8)
    assert torch.equal(y, data.labels[:3]) and m.sum(1).tolist() == data.sizes[:3].tolist()
    assert torch.equal(hidden[m], torch.cat(data.instance_labels[:3]))


def test_seed_is_a_deprecated_alias_of_random_state():
    images, labels = load_digits_images(split="train")
    new = make_bags(images, labels, num_bags=20, random_state=4)
    with pytest.warns(DeprecationWarning, match="make_bags\\(\\): 'seed' is deprecated"):
        old = make_bags(images, labels, num_bags=20, seed=4)
    assert all(torch.equal(a, b) for a, b in zip(new.indices, old.indices))
    # a generator continues its stream: two draws from one generator differ
    rng = np.random.default_rng(4)
    first = make_bags(images, labels, num_bags=20, random_state=rng)
    assert all(torch.equal(a, b) for a, b in zip(new.indices, first.indices))
    second = make_bags(images, labels, num_bags=20, random_state=rng)
    assert not all(torch.equal(a, b) for a, b in zip(first.indices, second.indices))
