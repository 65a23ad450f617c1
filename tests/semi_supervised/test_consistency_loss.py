import pytest
import torch
from torch import nn

from mltricks.semi_supervised import ConsistencyLoss, consistency_loss


def test_hand_computed_value():
    # (1/2, 1/2) vs (3/4, 1/4): 2 * (1/4)^2 = 1/8; (1/3, 1/3, 1/3) vs itself: 0
    clean = torch.tensor([[0.0, 0.0]])
    augmented = torch.tensor([[torch.log(torch.tensor(3.0)), 0.0]])
    assert float(consistency_loss(clean, augmented)) == pytest.approx(0.125, abs=1e-7)
    same = torch.zeros(3, 3)
    assert float(consistency_loss(same, same)) == 0.0


def test_matches_the_formula_and_is_symmetric():
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 5, generator=generator), torch.randn(6, 5, generator=generator)
    expected = ((a.softmax(-1) - b.softmax(-1)) ** 2).sum(-1)
    assert torch.allclose(consistency_loss(a, b, reduction="none"), expected)
    assert float(consistency_loss(a, b)) == pytest.approx(float(expected.mean()))
    assert float(consistency_loss(a, b, reduction="sum")) == pytest.approx(float(expected.sum()))
    assert torch.allclose(consistency_loss(a, b), consistency_loss(b, a))
    # detaching changes gradients, never the value
    assert torch.equal(consistency_loss(a, b, detach_target=True), consistency_loss(a, b))


def test_gradients_flow_to_both_branches_unless_the_target_is_detached():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    x = torch.randn(10, 4)
    x_augmented = x + 0.5 * torch.randn_like(x)
    for detach, target_has_grad in ((False, True), (True, False)):
        inputs = x.clone().requires_grad_(True)
        inputs_augmented = x_augmented.clone().requires_grad_(True)
        model.zero_grad()
        loss = consistency_loss(model(inputs), model(inputs_augmented), detach_target=detach)
        loss.backward()
        assert inputs_augmented.grad is not None and inputs_augmented.grad.abs().sum() > 0
        assert (inputs.grad is not None) == target_has_grad
        assert model[0].weight.grad.abs().sum() > 0


def test_detached_target_gradient_equals_a_constant_target():
    generator = torch.Generator().manual_seed(1)
    target = torch.randn(4, 6, generator=generator)
    augmented = torch.randn(4, 6, generator=generator).requires_grad_(True)
    consistency_loss(target.clone().requires_grad_(True), augmented, detach_target=True).backward()
    grad_detached = augmented.grad.clone()
    augmented.grad = None
    consistency_loss(target, augmented).backward()  # target without requires_grad
    assert torch.allclose(grad_detached, augmented.grad)


def test_module_twin_equals_the_function():
    generator = torch.Generator().manual_seed(2)
    a, b = torch.randn(5, 4, generator=generator), torch.randn(5, 4, generator=generator)
    assert torch.equal(ConsistencyLoss()(a, b), consistency_loss(a, b))
    module = ConsistencyLoss(detach_target=True, reduction="none")
    assert torch.equal(module(a, b), consistency_loss(a, b, reduction="none"))
    assert "detach_target=True" in repr(module)


@pytest.mark.parametrize(
    ("logits", "augmented", "error", "match"),
    [
        (torch.zeros(4, 3), torch.zeros(5, 3), ValueError, r"logits_augmented .*\(5, 3\)"),
        (torch.zeros(4, 3), torch.zeros(4, 2), ValueError, "logits_augmented must have the shape"),
        ([[0.0]], torch.zeros(1, 1), TypeError, "logits must be a tensor"),
        (torch.zeros(2, 2), "x", TypeError, "logits_augmented must be a tensor"),
        (torch.zeros(2, 2, dtype=torch.int64), torch.zeros(2, 2), TypeError, "floating point"),
    ],
)
def test_bad_input_names_the_argument(logits, augmented, error, match):
    with pytest.raises(error, match=match):
        consistency_loss(logits, augmented)


def test_bad_options_are_named():
    with pytest.raises(TypeError, match="detach_target must be a bool"):
        consistency_loss(torch.zeros(2, 2), torch.zeros(2, 2), detach_target="yes")
    with pytest.raises(ValueError, match="reduction"):
        ConsistencyLoss(reduction="batchmean")
