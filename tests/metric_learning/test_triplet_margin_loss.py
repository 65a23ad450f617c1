import itertools
import warnings

import pytest
import torch
from pytorch_metric_learning import distances, losses, miners, reducers

from smallml.metric_learning import TripletMarginLoss, triplet_margin_loss


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
    from smallml.metric_learning import hard_triplets

    a, p, n = hard_triplets(embeddings, labels)
    second = embeddings.clone().requires_grad_(True)
    triplet_margin_loss(second[a], second[p], second[n], margin=1.0).backward()
    torch.testing.assert_close(first.grad, second.grad, rtol=1e-4, atol=1e-6)


def test_stats_follow_their_definitions():
    embeddings, labels = _batch(seed=4)
    loss_fn = TripletMarginLoss(1.0, "random", generator=torch.Generator().manual_seed(0))
    loss_fn(embeddings, labels)
    stats = loss_fn.stats
    assert stats["num_triplets"] == 20  # every anchor has positives and negatives
    distances_ = torch.cdist(embeddings, embeddings, compute_mode="donot_use_mm_for_euclid_dist")
    assert stats["mean_pairwise_distance"] == pytest.approx(
        float(distances_.sum() / (20 * 19)), rel=1e-4
    )
    assert 0.0 <= stats["active_fraction"] <= 1.0
    # the random draws come from the given generator: the same seed gives the same loss
    again = TripletMarginLoss(1.0, "random", generator=torch.Generator().manual_seed(0))
    assert float(again(embeddings, labels)) == float(
        TripletMarginLoss(1.0, "random", generator=torch.Generator().manual_seed(0))(
            embeddings, labels
        )
    )


def test_collapse_warning_fires_on_identical_embeddings_only():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    collapsed = torch.ones(6, 4, requires_grad=True)
    loss_fn = TripletMarginLoss(1.0, "hard")
    with pytest.warns(RuntimeWarning, match="collapsed"):
        loss = loss_fn(collapsed * 3.0, labels)
    assert float(loss.detach()) == pytest.approx(1.0)  # the loss sits at the margin
    loss.backward()
    assert torch.isfinite(collapsed.grad).all()  # coinciding points give no NaN gradient
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss_fn(torch.randn(6, 4), labels)


def test_a_batch_without_positives_warns_and_gives_a_zero_loss_with_a_graph():
    embeddings = torch.randn(4, 2, requires_grad=True)
    with pytest.warns(RuntimeWarning, match="no class appears twice"):
        loss = TripletMarginLoss(1.0, "hard")(embeddings, torch.tensor([0, 1, 2, 3]))
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert torch.equal(embeddings.grad, torch.zeros(4, 2))


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
