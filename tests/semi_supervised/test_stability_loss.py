import itertools

import pytest
import torch
from torch import nn

from mltricks.semi_supervised import StabilityLoss, stability_loss


def _brute_force(views):
    """The paper's double sum over view pairs, one sample at a time."""
    probabilities = [v.softmax(-1) for v in views]
    per_sample = []
    for i in range(views[0].shape[0]):
        total = 0.0
        for j, k in itertools.combinations(range(len(views)), 2):
            total += float(((probabilities[j][i] - probabilities[k][i]) ** 2).sum())
        per_sample.append(total)
    return torch.tensor(per_sample)


def test_hand_computed_two_views():
    # softmax([0, 0]) = (1/2, 1/2), softmax([ln 3, 0]) = (3/4, 1/4): 2 * (1/4)^2 = 0.125
    views = [torch.tensor([[0.0, 0.0]]), torch.tensor([[torch.log(torch.tensor(3.0)), 0.0]])]
    assert float(stability_loss(views)) == pytest.approx(0.125, abs=1e-7)


@pytest.mark.parametrize("num_views", [2, 3, 5])
def test_matches_the_pairwise_sum_for_every_reduction(num_views):
    generator = torch.Generator().manual_seed(num_views)
    views = torch.randn(num_views, 6, 4, generator=generator) * 3
    expected = _brute_force(list(views))
    assert torch.allclose(stability_loss(views, reduction="none"), expected, atol=1e-6)
    assert float(stability_loss(views)) == pytest.approx(float(expected.mean()), abs=1e-6)
    assert float(stability_loss(views, reduction="sum")) == pytest.approx(
        float(expected.sum()), abs=1e-5
    )
    # a sequence of (B, C) tensors is the same as the stacked tensor
    assert torch.allclose(stability_loss(list(views)), stability_loss(views))


def test_zero_when_views_agree_and_growing_with_disagreement():
    logits = torch.randn(5, 10, generator=torch.Generator().manual_seed(0))
    assert float(stability_loss([logits, logits, logits])) == pytest.approx(0.0, abs=1e-12)
    # softmax ignores a constant shift: the predictions agree, so the loss is 0
    assert float(stability_loss([logits, logits + 4.0])) == pytest.approx(0.0, abs=1e-10)
    direction = torch.randn(5, 10, generator=torch.Generator().manual_seed(1))
    values = [float(stability_loss([logits, logits + t * direction])) for t in (0.1, 0.5, 1, 2)]
    assert all(a < b for a, b in itertools.pairwise(values))


def test_constant_prediction_is_a_minimum():
    # the trivial solution the seed warns about: identical outputs for every view cost nothing
    views = torch.zeros(4, 3, 10)
    views[:, :, 2] = 7.0
    assert float(stability_loss(views)) == 0.0


def test_gradients_reach_a_model_through_every_view():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 4))
    x = torch.randn(16, 3)
    views = [model(x + 0.1 * torch.randn_like(x)) for _ in range(3)]
    for view in views:
        view.retain_grad()
    stability_loss(views).backward()
    assert all(view.grad is not None and view.grad.abs().sum() > 0 for view in views)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model[0].weight.grad.abs().sum() > 0


def test_module_twin_equals_the_function():
    views = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(StabilityLoss()(views), stability_loss(views))
    assert torch.equal(
        StabilityLoss(reduction="none")(views), stability_loss(views, reduction="none")
    )
    assert "reduction='mean'" in repr(StabilityLoss())


@pytest.mark.parametrize(
    ("views", "error", "match"),
    [
        (torch.zeros(1, 4, 3), ValueError, "at least 2 views.*got 1"),
        ([torch.zeros(4, 3)], ValueError, "at least 2 views"),
        ([], ValueError, "logits_per_view"),
        (
            [torch.zeros(4, 3), torch.zeros(5, 3)],
            ValueError,
            r"logits_per_view.*\(4, 3\), \(5, 3\)",
        ),
        ([torch.zeros(4, 3), torch.zeros(4, 2)], ValueError, "one shape"),
        (torch.zeros(4, 3), ValueError, "logits_per_view must be a tensor .*shape \\(4, 3\\)"),
        ("logits", TypeError, "logits_per_view"),
        (torch.zeros(2, 4, 3, dtype=torch.long), TypeError, "floating point"),
    ],
)
def test_bad_input_names_the_argument(views, error, match):
    with pytest.raises(error, match=match):
        stability_loss(views)


def test_bad_reduction_is_named():
    with pytest.raises(ValueError, match="reduction must be one of"):
        stability_loss(torch.zeros(2, 3, 4), reduction="max")
    with pytest.raises(ValueError, match="reduction"):
        StabilityLoss(reduction="avg")
