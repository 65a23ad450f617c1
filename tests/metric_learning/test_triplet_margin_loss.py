import itertools
import warnings

import pytest
import torch
from pytorch_metric_learning import distances, losses, miners, reducers
from torch.overrides import TorchFunctionMode

from mltricks.metric_learning import (
    MINING,
    TripletMarginLoss,
    hard_triplets,
    mine_from_distances,
    pairwise_distances,
    triplet_margin_loss,
)


def _batch(seed=0, size=20, dim=3, classes=4):
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(size, dim, generator=generator)
    labels = torch.arange(size) % classes
    return embeddings, labels


def _d(a, b):
    return torch.linalg.vector_norm(a - b)


def _loop_loss(embeddings, labels, margin, pick):
    """The loss by a plain loop over every valid triplet, keeping those ``pick`` accepts."""
    values = []
    size = len(labels)
    for a, p, n in itertools.product(range(size), repeat=3):
        if a == p or labels[a] != labels[p] or labels[n] == labels[a]:
            continue
        if pick(a, p, n):
            d_ap, d_an = _d(embeddings[a], embeddings[p]), _d(embeddings[a], embeddings[n])
            values.append(torch.relu(d_ap - d_an + margin))
    return torch.stack(values).mean() if values else torch.tensor(0.0)


def test_functional_loss_matches_its_formula():
    anchor, positive, negative = torch.randn(3, 7, 4).unbind(0)
    for margin in (0.0, 0.5, 2.0):
        expected = [
            max(float(_d(a, p) - _d(a, n)) + margin, 0.0)
            for a, p, n in zip(anchor, positive, negative)
        ]
        per_triplet = triplet_margin_loss(
            anchor, positive, negative, margin=margin, reduction="none"
        )
        assert per_triplet.tolist() == pytest.approx(expected, abs=1e-6)
        assert float(triplet_margin_loss(anchor, positive, negative, margin=margin)) == (
            pytest.approx(sum(expected) / 7, abs=1e-6)
        )
    empty = torch.zeros(0, 4, requires_grad=True)
    assert float(triplet_margin_loss(empty, empty, empty).detach()) == 0.0


@pytest.mark.parametrize("margin", [0.3, 1.0])
def test_all_mining_equals_the_loop_over_every_triplet(margin):
    embeddings, labels = _batch(size=12)
    loss = TripletMarginLoss(margin, "all")(embeddings, labels)
    expected = _loop_loss(embeddings, labels, margin, lambda a, p, n: True)
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)


def test_hard_mining_equals_the_loop_over_the_hardest_triplets():
    embeddings, labels = _batch(seed=1, size=12)
    distances_ = torch.cdist(embeddings, embeddings, compute_mode="donot_use_mm_for_euclid_dist")
    same = labels[:, None] == labels[None, :]

    def hardest(a, p, n):
        positives = distances_[a][same[a] & (torch.arange(12) != a)]
        return (
            distances_[a, p] == positives.max()
            and distances_[a, n] == distances_[a][~same[a]].min()
        )

    loss = TripletMarginLoss(1.0, "hard")(embeddings, labels)
    assert float(loss) == pytest.approx(
        float(_loop_loss(embeddings, labels, 1.0, hardest)), rel=1e-5
    )


def test_semi_hard_mining_equals_the_loop_over_semi_hard_triplets():
    embeddings, labels = _batch(seed=2, size=12, dim=2)
    margin = 1.0
    distances_ = torch.cdist(embeddings, embeddings, compute_mode="donot_use_mm_for_euclid_dist")

    def nearest_semi_hard(a, p, n):
        inside = (distances_[a] > distances_[a, p]) & (distances_[a] < distances_[a, p] + margin)
        inside &= labels != labels[a]
        return bool(inside[n]) and distances_[a, n] == distances_[a][inside].min()

    loss_fn = TripletMarginLoss(margin, "semi_hard")
    loss = loss_fn(embeddings, labels)
    expected = _loop_loss(embeddings, labels, margin, nearest_semi_hard)
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    assert loss_fn.stats["num_triplets"] > 0 and loss_fn.stats["active_fraction"] == 1.0


@pytest.mark.parametrize("batch", [33, 128])
def test_hard_mining_matches_pytorch_metric_learning(batch):
    generator = torch.Generator().manual_seed(batch)
    embeddings = torch.randn(batch, 16, generator=generator)
    labels = torch.randint(6, (batch,), generator=generator)
    ours_input = embeddings.clone().requires_grad_(True)
    theirs_input = embeddings.clone().requires_grad_(True)
    ours = TripletMarginLoss(margin=0.7, mining="hard")(ours_input, labels)
    distance = distances.LpDistance(normalize_embeddings=False, p=2, power=1)
    miner = miners.BatchHardMiner(distance=distance)
    loss_fn = losses.TripletMarginLoss(
        margin=0.7, distance=distance, reducer=reducers.MeanReducer()
    )
    theirs = loss_fn(theirs_input, labels, miner(theirs_input, labels))
    assert float(ours.detach()) == pytest.approx(float(theirs.detach()), rel=1e-5)
    ours.backward()
    theirs.backward()
    torch.testing.assert_close(ours_input.grad, theirs_input.grad, rtol=1e-4, atol=1e-6)


def test_gradient_equals_the_functional_loss_on_the_mined_triplets():
    embeddings, labels = _batch(seed=3)
    first = embeddings.clone().requires_grad_(True)
    TripletMarginLoss(1.0, "hard")(first, labels).backward()
    a, p, n = hard_triplets(embeddings, labels)
    second = embeddings.clone().requires_grad_(True)
    triplet_margin_loss(second[a], second[p], second[n], margin=1.0).backward()
    torch.testing.assert_close(first.grad, second.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("mining", ["hard", "semi_hard", "all", "random"])
def test_stats_follow_their_definitions(mining):
    embeddings, labels = _batch(seed=4)
    loss_fn = TripletMarginLoss(0.5, mining, random_state=torch.Generator().manual_seed(0))
    loss = loss_fn(embeddings, labels)
    stats = loss_fn.stats
    # the same triplets as index tensors: the draws of "random" repeat from the same seed
    a, p, n = mine_from_distances(
        pairwise_distances(embeddings),
        labels,
        mining,
        margin=0.5,
        random_state=torch.Generator().manual_seed(0),
    )
    d_ap = torch.linalg.vector_norm(embeddings[a] - embeddings[p], dim=1)
    d_an = torch.linalg.vector_norm(embeddings[a] - embeddings[n], dim=1)
    per_triplet = torch.relu(d_ap - d_an + 0.5)
    assert stats["num_triplets"] == len(a) > 0
    assert float(loss) == pytest.approx(float(per_triplet.mean()), rel=1e-5)
    assert stats["active_fraction"] == pytest.approx(float((per_triplet > 0).float().mean()))
    assert stats["mean_positive_distance"] == pytest.approx(float(d_ap.mean()), rel=1e-5)
    assert stats["mean_negative_distance"] == pytest.approx(float(d_an.mean()), rel=1e-5)
    distances_ = torch.cdist(embeddings, embeddings, compute_mode="donot_use_mm_for_euclid_dist")
    assert stats["mean_pairwise_distance"] == pytest.approx(
        float(distances_.sum() / (20 * 19)), rel=1e-4
    )
    if mining == "hard":
        assert stats["num_triplets"] == 20  # every anchor has positives and negatives


def test_random_mining_follows_its_random_state():
    embeddings, labels = _batch(seed=4)

    def losses(random_state, calls=3):
        loss_fn = TripletMarginLoss(1.0, "random", random_state=random_state)
        return [float(loss_fn(embeddings, labels)) for _ in range(calls)]

    first = losses(7)
    assert first == losses(7)  # an int: the same stream from the start
    assert len(set(first)) == 3  # ... that continues between calls
    assert first == losses(torch.Generator().manual_seed(7))
    assert first != losses(8)
    with pytest.warns(DeprecationWarning, match="'generator' is deprecated; use 'random_state'"):
        old = TripletMarginLoss(1.0, "random", generator=torch.Generator().manual_seed(7))
    assert [float(old(embeddings, labels)) for _ in range(3)] == first


def test_precomputed_triplets_give_the_functional_loss_and_match_pytorch_metric_learning():
    generator = torch.Generator().manual_seed(5)
    embeddings = torch.randn(40, 8, generator=generator)
    labels = torch.randint(5, (40,), generator=generator)
    triplets = miners.TripletMarginMiner(margin=0.3, type_of_triplets="semihard")(
        embeddings, labels
    )
    assert len(triplets[0]) > 0
    ours_input = embeddings.clone().requires_grad_(True)
    theirs_input = embeddings.clone().requires_grad_(True)
    loss_fn = TripletMarginLoss(0.3, "hard")  # the mining is not used with indices_tuple
    ours = loss_fn(ours_input, labels, indices_tuple=triplets)
    assert loss_fn.stats["num_triplets"] == len(triplets[0])
    without_labels = loss_fn(embeddings, indices_tuple=triplets)
    a, p, n = triplets
    reference = triplet_margin_loss(embeddings[a], embeddings[p], embeddings[n], margin=0.3)
    assert float(ours.detach()) == pytest.approx(float(reference), rel=1e-5)
    assert float(without_labels) == pytest.approx(float(reference), rel=1e-5)
    distance = distances.LpDistance(normalize_embeddings=False, p=2, power=1)
    theirs = losses.TripletMarginLoss(
        margin=0.3, distance=distance, reducer=reducers.MeanReducer()
    )(theirs_input, labels, triplets)
    assert float(ours.detach()) == pytest.approx(float(theirs.detach()), rel=1e-5)
    ours.backward()
    theirs.backward()
    torch.testing.assert_close(ours_input.grad, theirs_input.grad, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="indices_tuple must be"):
        loss_fn(embeddings, labels, indices_tuple=(a, p, a, n))
    with pytest.raises(ValueError, match="one length; got"):
        loss_fn(embeddings, labels, indices_tuple=(a, p, n[:-1]))
    with pytest.raises(ValueError, match="labels are needed"):
        loss_fn(embeddings)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("mining", ["hard", "semi_hard", "all"])
def test_half_precision_embeddings_are_computed_in_float32(dtype, mining):
    embeddings, labels = _batch(seed=6, size=24, dim=8)
    half = embeddings.to(dtype)
    half_input = half.clone().requires_grad_(True)
    loss = TripletMarginLoss(1.0, mining)(half_input, labels)
    # the reference: the same (rounded) values in float32
    reference = TripletMarginLoss(1.0, mining)(half.float(), labels)
    assert loss.dtype == torch.float32
    assert float(loss) == pytest.approx(float(reference), rel=1e-6)
    loss.backward()
    assert half_input.grad.dtype == dtype and torch.isfinite(half_input.grad.float()).all()


def test_non_finite_embeddings_are_refused_with_the_rows_named():
    embeddings, labels = _batch(seed=7, size=8)
    embeddings[3, 1] = float("nan")
    embeddings[5, 0] = float("inf")
    triplets = (torch.tensor([0, 1]), torch.tensor([4, 5]), torch.tensor([1, 2]))
    for mining in MINING:
        with pytest.raises(ValueError, match=r"embeddings must be finite; rows \[3, 5\]"):
            TripletMarginLoss(1.0, mining)(embeddings, labels)
    with pytest.raises(ValueError, match=r"embeddings must be finite; rows \[3, 5\]"):
        TripletMarginLoss()(embeddings, indices_tuple=triplets)
    with pytest.raises(ValueError, match=r"rows \[3, 5\]"):
        hard_triplets(embeddings, labels)


def test_no_host_sync_beyond_the_one_check_of_the_values():
    """Reads of tensor values on the host (the sync points on an accelerator): a call makes
    exactly one, the check of the values (an asynchronous assertion off the CPU)."""
    reads = []

    class Reads(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            name = getattr(func, "__name__", "")
            if name in {"item", "tolist", "__bool__", "__float__", "__int__", "nonzero"}:
                reads.append(name)
            return func(*args, **(kwargs or {}))

    embeddings, labels = _batch(seed=8, size=32)
    for mining in MINING:
        loss_fn = TripletMarginLoss(1.0, mining, random_state=0)
        embeddings_ = embeddings.clone().requires_grad_(True)
        with Reads():
            loss_fn(embeddings_, labels).backward()
        assert reads == ["__bool__"], mining
        reads.clear()
        with Reads():
            loss_fn.stats
        assert reads == ["tolist"]  # reading the statistics is the one copy
        reads.clear()


def test_collapse_warning_fires_on_identical_embeddings_only():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    collapsed = torch.ones(6, 4, requires_grad=True)
    loss_fn = TripletMarginLoss(1.0, "hard")
    loss = loss_fn(collapsed * 3.0, labels)
    with pytest.warns(RuntimeWarning, match="collapsed"):
        loss_fn.stats
    assert float(loss.detach()) == pytest.approx(1.0)  # the loss sits at the margin
    loss.backward()
    assert torch.isfinite(collapsed.grad).all()  # coinciding points give no NaN gradient
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss_fn(torch.randn(6, 4), labels)
        loss_fn.stats


@pytest.mark.parametrize(
    ("mining", "embeddings", "labels", "match"),
    [
        ("hard", torch.randn(4, 2), torch.tensor([0, 1, 2, 3]), "no class appears twice"),
        ("random", torch.randn(4, 2), torch.tensor([0, 1, 2, 3]), "no class appears twice"),
        ("all", torch.randn(4, 2), torch.tensor([0, 1, 2, 3]), "no class appears twice"),
        # the classes sit 10 apart, each class within 0.1: every negative is beyond the margin
        (
            "semi_hard",
            torch.tensor([[0.0], [0.1], [10.0], [10.1]]),
            torch.tensor([0, 0, 1, 1]),
            "no negative lies between",
        ),
    ],
)
def test_a_batch_without_triplets_warns_and_gives_a_zero_loss_with_a_graph(
    mining, embeddings, labels, match
):
    embeddings = embeddings.clone().requires_grad_(True)
    loss_fn = TripletMarginLoss(1.0, mining)
    loss = loss_fn(embeddings, labels)
    with pytest.warns(RuntimeWarning, match=match):
        assert loss_fn.stats["num_triplets"] == 0
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert torch.equal(embeddings.grad, torch.zeros_like(embeddings))


def test_bad_arguments_are_refused_with_clear_errors():
    with pytest.raises(ValueError, match=r"margin must be a number >= 0\.0; got -0\.5"):
        TripletMarginLoss(margin=-0.5)
    with pytest.raises(ValueError, match="mining must be one of 'hard', 'semi_hard'"):
        TripletMarginLoss(mining="batch_hard")
    loss_fn = TripletMarginLoss()
    with pytest.raises(ValueError, match="same length; got 3 labels for 4 embeddings"):
        loss_fn(torch.randn(4, 2), torch.tensor([0, 1, 0]))
    with pytest.raises(ValueError, match="at least two classes"):
        loss_fn(torch.randn(4, 2), torch.tensor([5, 5, 5, 5]))
    with pytest.raises(ValueError, match=r"margin must be a number >= 0\.0"):
        triplet_margin_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, 2), margin=-1)
    with pytest.raises(ValueError, match="one shape"):
        triplet_margin_loss(torch.zeros(2, 2), torch.zeros(1, 2), torch.zeros(2, 2))
