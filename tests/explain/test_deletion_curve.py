import pytest
import torch
from torch import nn

from mltricks.explain import deletion_curve, masking_curve


class Weighted(nn.Module):
    def __init__(self, weights):
        super().__init__()
        self.register_buffer("weights", weights)

    def forward(self, x):
        total = (x.sum(1) * self.weights).flatten(1).sum(1)
        return torch.stack([total, torch.zeros_like(total)], dim=1)


def test_deleting_the_most_relevant_pixels_first_follows_a_brute_force_loop():
    weights = torch.arange(16.0).view(4, 4)
    model = Weighted(weights)
    x = torch.ones(1, 2, 4, 4)
    curve = deletion_curve(model, x, 0, weights[None], steps=4, output="logits", random_state=0)
    # brute force: delete the 4 largest weights per step
    remaining = weights.flatten().sort(descending=True).values
    expected = [2 * float(remaining[4 * k :].sum()) for k in range(5)]
    assert curve.scores[0].tolist() == expected
    assert torch.equal(curve.fractions, torch.linspace(0, 1, 5))
    assert curve.random_scores[0, 0] == expected[0] and curve.random_scores[0, -1] == 0.0
    assert curve.auc.shape == (1,)
    assert float(curve.auc[0]) == pytest.approx(
        float(torch.trapezoid(torch.tensor(expected), dx=0.25))
    )
    # the right order is the fastest possible: no ordering has a lower area
    assert (curve.auc <= curve.random_auc).all()


def test_a_good_map_beats_random_and_a_reversed_map_loses():
    generator = torch.Generator().manual_seed(0)
    weights = torch.rand(6, 6, generator=generator)
    model = Weighted(weights)
    x = torch.rand(8, 1, 6, 6, generator=generator)
    relevance = x * weights  # each pixel's contribution
    good = deletion_curve(model, x, 0, relevance, steps=6, output="logits", random_state=1)
    bad = deletion_curve(
        model, x, 0, -1 / (relevance + 1e-3), steps=6, output="logits", random_state=1
    )
    assert (good.auc < good.random_auc).all()
    assert bad.auc.mean() > bad.random_auc.mean()
    assert torch.equal(good.random_scores, bad.random_scores)  # same seed, same random order


def test_ties_are_broken_at_random_and_bad_input():
    model = Weighted(torch.ones(4, 4))
    x = torch.rand(1, 1, 4, 4)
    flat = torch.zeros(1, 4, 4)
    first = deletion_curve(model, x, 0, flat, steps=4, random_state=0)
    second = deletion_curve(model, x, 0, flat, steps=4, random_state=1)
    assert not torch.equal(first.scores, second.scores)
    with pytest.raises(ValueError, match="attribution must have shape"):
        deletion_curve(model, x, 0, torch.zeros(1, 3, 3))
    with pytest.raises(ValueError, match="output"):
        deletion_curve(model, x, 0, flat, output="score")
    with pytest.raises(ValueError, match="target"):
        deletion_curve(model, x, 2, flat)


def test_both_curves_take_the_same_arguments_in_the_same_order():
    model = Weighted(torch.ones(4, 4))
    x = torch.rand(2, 1, 4, 4)
    relevance = torch.rand(2, 4, 4)
    by_keyword = deletion_curve(model, x, 0, relevance, steps=4, random_state=0)
    by_position = deletion_curve(model, x, 0, relevance, 4, random_state=0)
    assert torch.equal(by_keyword.scores, by_position.scores)
    masked = masking_curve(model, x, 0, torch.tensor([0, 0, 2, 2]), 4, output="probs")
    for curve in (by_position, masked):
        assert curve.fractions.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
        assert curve.scores.shape == (2, 5) and curve.auc.shape == (2,)
        assert torch.allclose(curve.auc, torch.trapezoid(curve.scores, dx=0.25, dim=1))
