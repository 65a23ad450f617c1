import math

import pytest
import torch

from mltricks.data import LabeledUnlabeledDataset, semi_supervised_loader


def _images(num, seed=0):
    return torch.rand(num, 1, 6, 6, generator=torch.Generator().manual_seed(seed))


def _index_of(images, image):
    """The row of ``images`` equal to ``image`` (the test images are all distinct)."""
    return int(((images - image).abs().flatten(1).sum(1) == 0).nonzero())


def test_loader_batches_pair_labeled_samples_with_ratio_times_as_many_unlabeled():
    labeled_x, unlabeled_x = _images(10, 0), _images(37, 1)
    labeled_y = torch.arange(10) % 3
    loader = semi_supervised_loader(
        labeled_x,
        labeled_y,
        unlabeled_x,
        batch_size=4,
        unlabeled_ratio=3,
        num_classes=3,
        random_state=0,
    )
    batches = list(loader)
    assert len(loader.dataset) == max(10, math.ceil(37 / 3)) == 13
    assert len(batches) == 3  # 13 items, the incomplete last batch is dropped
    for x_l, y_l, x_u in batches:
        assert x_l.shape == (4, 1, 6, 6) and y_l.shape == (4,) and x_u.shape == (4, 3, 1, 6, 6)
        for image, label in zip(x_l, y_l):  # each image keeps its own label
            assert int(labeled_y[_index_of(labeled_x, image)]) == int(label)
    # fewer items than one batch: the only, incomplete batch is kept
    small = semi_supervised_loader(labeled_x[:2], labeled_y[:2], unlabeled_x[:3], batch_size=4)
    assert [len(x_l) for x_l, _, _ in small] == [3]


def test_one_pass_over_the_dataset_sees_every_unlabeled_and_labeled_sample():
    labeled_x, unlabeled_x = _images(5, 0), _images(23, 1)
    dataset = LabeledUnlabeledDataset(
        labeled_x, torch.arange(5) % 2, unlabeled_x, unlabeled_ratio=4, random_state=3
    )
    seen_unlabeled, seen_labeled = set(), set()
    for x_l, _, x_u in dataset:  # iteration stops: indexing past the end raises IndexError
        seen_labeled.add(_index_of(labeled_x, x_l))
        seen_unlabeled |= {_index_of(unlabeled_x, image) for image in x_u}
    assert seen_unlabeled == set(range(23)) and seen_labeled == set(range(5))
    assert len(dataset) == 6
    with pytest.raises(IndexError, match="index"):
        dataset[6]


def test_item_k_follows_the_documented_pairing():
    labeled_x, unlabeled_x = _images(4, 0), _images(10, 1)
    labeled_y = torch.tensor([0, 1, 2, 1])
    dataset = LabeledUnlabeledDataset(
        labeled_x, labeled_y, unlabeled_x, unlabeled_ratio=3, random_state=5
    )
    # the permutation is the one a generator seeded with the int draws
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(5))
    for k in range(len(dataset)):
        x_l, y_l, x_u = dataset[k]
        assert torch.equal(x_l, labeled_x[k % 4]) and int(y_l) == int(labeled_y[k % 4])
        expected = unlabeled_x[perm[[(k * 3 + j) % 10 for j in range(3)]]]
        assert torch.equal(x_u, expected)


def test_random_state_int_generator_and_global_seed_are_each_reproducible():
    args = (_images(8), torch.arange(8) % 2, _images(30, 1))

    def first_unlabeled(random_state):
        loader = semi_supervised_loader(
            *args, batch_size=4, unlabeled_ratio=2, random_state=random_state
        )
        return next(iter(loader))[2]

    assert torch.equal(first_unlabeled(0), first_unlabeled(0))
    assert not torch.equal(first_unlabeled(0), first_unlabeled(1))
    generator = torch.Generator().manual_seed(0)
    from_generator = first_unlabeled(generator)
    assert not torch.equal(first_unlabeled(generator), from_generator)  # the stream advanced
    assert torch.equal(first_unlabeled(torch.Generator().manual_seed(0)), from_generator)
    torch.manual_seed(11)
    from_global = first_unlabeled(None)
    torch.manual_seed(11)
    assert torch.equal(first_unlabeled(None), from_global)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"unlabeled_x": torch.zeros(0, 1, 6, 6)}, ValueError, "unlabeled_x .*empty unlabeled"),
        ({"labeled_x": torch.zeros(0, 1, 6, 6)}, ValueError, "labeled_x must hold at least"),
        ({"labeled_y": torch.tensor([0, 1, 5, 1])}, ValueError, r"labeled_y .*0\.\.2.*to 5"),
        ({"labeled_y": torch.tensor([0, -1, 2, 1])}, ValueError, "labeled_y .*from -1"),
        (
            {"labeled_y": torch.tensor([0.0, 1.0, 2.0, 1.0])},
            ValueError,
            "labeled_y must be integer",
        ),
        ({"labeled_y": torch.tensor([0, 1, 2])}, ValueError, r"labeled_y .*shape \(4,\)"),
        ({"unlabeled_x": torch.zeros(5, 1, 7, 7)}, ValueError, "unlabeled_x samples must have"),
        ({"unlabeled_x": torch.zeros(5)}, ValueError, r"unlabeled_x must be a tensor \(N, ...\)"),
        ({"unlabeled_ratio": 0}, ValueError, "unlabeled_ratio must be an integer >= 1"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"random_state": "zero"}, TypeError, "random_state"),
    ],
)
def test_loader_bad_input_names_the_argument(kwargs, error, match):
    args = {
        "labeled_x": _images(4),
        "labeled_y": torch.tensor([0, 1, 2, 1]),
        "unlabeled_x": _images(9, 1),
        "batch_size": 2,
        "unlabeled_ratio": 1,
        "num_classes": 3,
    }
    args.update(kwargs)
    with pytest.raises(error, match=match):
        semi_supervised_loader(
            args.pop("labeled_x"), args.pop("labeled_y"), args.pop("unlabeled_x"), **args
        )
