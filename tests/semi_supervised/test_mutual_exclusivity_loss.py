import itertools
import math

import pytest
import torch

from mltricks.semi_supervised import MutualExclusivityLoss, mutual_exclusivity_loss


def _brute_force(logits):
    """-sum_k p_k prod_{j != k} (1 - p_j), one sample and one class at a time."""
    probabilities = logits.double().softmax(-1)
    values = []
    for p in probabilities:
        total = 0.0
        for k in range(len(p)):
            product = 1.0
            for j in range(len(p)):
                if j != k:
                    product *= 1.0 - float(p[j])
            total += float(p[k]) * product
        values.append(-total)
    return torch.tensor(values, dtype=torch.float64)


def test_hand_computed_value():
    # p = (1/2, 1/4, 1/4): -(1/2 * 3/4 * 3/4 + 2 * 1/4 * 1/2 * 3/4) = -(9/32 + 6/32) = -15/32
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
    assert float(mutual_exclusivity_loss(logits)) == pytest.approx(-15 / 32, abs=1e-6)


@pytest.mark.parametrize("num_classes", [2, 3, 7])
def test_matches_the_formula_for_every_reduction(num_classes):
    logits = torch.randn(9, num_classes, generator=torch.Generator().manual_seed(num_classes)) * 2
    expected = _brute_force(logits)
    per_sample = mutual_exclusivity_loss(logits, reduction="none").double()
    assert torch.allclose(per_sample, expected, atol=1e-6)
    assert float(mutual_exclusivity_loss(logits)) == pytest.approx(float(expected.mean()), abs=1e-6)
    assert float(mutual_exclusivity_loss(logits, reduction="sum")) == pytest.approx(
        float(expected.sum()), abs=1e-5
    )


@pytest.mark.parametrize("num_classes", [2, 3, 10])
def test_one_hot_is_the_minimum_minus_one_for_every_class(num_classes):
    one_hot = torch.full((num_classes, num_classes), -60.0).fill_diagonal_(60.0)
    values = mutual_exclusivity_loss(one_hot, reduction="none")
    assert torch.allclose(values, torch.full((num_classes,), -1.0), atol=1e-6)
    uniform = float(mutual_exclusivity_loss(torch.zeros(1, num_classes)))
    assert uniform == pytest.approx(-((1 - 1 / num_classes) ** (num_classes - 1)), abs=1e-6)
    assert uniform > -1.0 + 1e-3
    random = mutual_exclusivity_loss(
        torch.randn(500, num_classes, generator=torch.Generator().manual_seed(0)) * 3,
        reduction="none",
    )
    assert (random >= -1.0 - 1e-6).all() and (random <= 0.0).all()


def test_rewards_confident_outputs():
    # the seed's bug multiplied the running sum, so confidence was not rewarded: the loss must
    # fall monotonically as the output sharpens towards one class, for every class
    for target in range(4):
        direction = torch.zeros(1, 4)
        direction[0, target] = 1.0
        values = [float(mutual_exclusivity_loss(t * direction)) for t in (0, 0.5, 1, 2, 4, 8)]
        assert all(a > b for a, b in itertools.pairwise(values)), values


def test_gradient_descent_sharpens_the_prediction():
    logits = torch.tensor([[0.3, 0.1, 0.0, -0.2]], requires_grad=True)
    start = float(logits.detach().softmax(-1).max())
    for _ in range(50):
        (gradient,) = torch.autograd.grad(mutual_exclusivity_loss(logits), logits)
        with torch.no_grad():
            logits -= 1.0 * gradient
    assert float(logits.detach().softmax(-1).max()) > max(0.9, start)
    assert int(logits.argmax()) == 0  # it sharpens the class already favoured


def test_saturated_softmax_has_finite_gradients():
    # 1 - p_k is exactly 0 for a saturated output: no division by it, no NaN
    logits = torch.tensor([[200.0, 0.0, 0.0], [0.5, 0.0, 0.0]], requires_grad=True)
    loss = mutual_exclusivity_loss(logits)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert logits.grad[1].abs().sum() > 0


def test_many_classes_and_leading_view_dimension():
    logits = torch.randn(3, 4, 1000, generator=torch.Generator().manual_seed(3))
    per_sample = mutual_exclusivity_loss(logits, reduction="none")
    assert per_sample.shape == (3, 4) and torch.isfinite(per_sample).all()
    # vectorised reference: the (C, C) matrix of 1 - p_j with ones on the diagonal
    probabilities = logits[1].double().softmax(-1)  # (4, C)
    off = (1 - probabilities).unsqueeze(1).repeat(1, 1000, 1)  # (4, C, C)
    off.diagonal(dim1=1, dim2=2).fill_(1.0)
    reference = -(probabilities * off.prod(-1)).sum(-1)
    assert torch.allclose(per_sample[1].double(), reference, atol=1e-6)
    assert float(mutual_exclusivity_loss(logits)) == pytest.approx(float(per_sample.mean()))


def test_module_twin_equals_the_function():
    logits = torch.randn(5, 6, generator=torch.Generator().manual_seed(4))
    assert torch.equal(MutualExclusivityLoss()(logits), mutual_exclusivity_loss(logits))
    assert "reduction='sum'" in repr(MutualExclusivityLoss(reduction="sum"))


@pytest.mark.parametrize(
    ("logits", "error", "match"),
    [
        (torch.zeros(4, 1), ValueError, r"num_classes >= 2; got shape \(4, 1\)"),
        (torch.tensor(1.0), ValueError, "logits must have shape"),
        (torch.zeros(4, 3, dtype=torch.long), TypeError, "floating point"),
        ([[0.0, 1.0]], TypeError, "logits must be a tensor"),
    ],
)
def test_bad_input_names_the_argument(logits, error, match):
    with pytest.raises(error, match=match):
        mutual_exclusivity_loss(logits)
    with pytest.raises(ValueError, match="reduction"):
        mutual_exclusivity_loss(torch.zeros(2, 3), reduction="median")


def test_uniform_value_for_ten_classes_is_documented():
    assert float(mutual_exclusivity_loss(torch.zeros(1, 10))) == pytest.approx(-(0.9**9), abs=1e-6)
    assert -(0.9**9) == pytest.approx(-0.387, abs=1e-3)
    assert math.isclose(float(mutual_exclusivity_loss(torch.zeros(1, 2))), -0.5, abs_tol=1e-7)
