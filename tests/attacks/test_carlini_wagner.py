import math

import pytest
import torch
from torch import nn

from mltricks.attacks import AttackResult, CarliniWagnerResult, carlini_wagner


def _cw(*args, **kwargs):
    """The attack with its per-sample result, which most tests read."""
    return carlini_wagner(*args, return_result=True, **kwargs)


def _two_class_linear():
    """z = (x_0, x_1): the target 1 wins once x_1 > x_0."""
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
    return model


def _points():
    # class 0 (x_0 > x_1), away from the bounds of [0, 1] so the clamp does not bind
    return torch.tensor([[0.6, 0.4], [0.7, 0.3], [0.55, 0.5], [0.8, 0.2]])


def test_finds_the_known_closest_point_of_a_linear_model():
    model = _two_class_linear()
    x = _points()
    result = _cw(model, x, 1, c=10.0, steps=300, lr=0.02, abort_early=False)
    # the closest input with x_1 >= x_0 is the projection on the diagonal: distance (x_0-x_1)/sqrt(2)
    closest = (x[:, 0] - x[:, 1]) / math.sqrt(2)
    assert result.success.all()
    assert (result.l2 >= closest - 1e-6).all()
    assert torch.allclose(result.l2, closest, rtol=0.02, atol=2e-3)
    assert (model(result.adversarial).argmax(1) == 1).all()
    assert (result.margin < 0).all()
    assert torch.allclose(result.l2, (result.adversarial - x).norm(dim=1))
    # the minimiser moves along the normal of the decision boundary
    step = result.adversarial - x
    assert torch.allclose(step[:, 0], -step[:, 1], atol=3e-3)


def test_kappa_asks_for_a_lead_and_costs_distance():
    model = _two_class_linear()
    x = _points()
    plain = _cw(model, x, 1, c=10.0, steps=300, lr=0.02)
    ahead = _cw(model, x, 1, kappa=0.1, c=10.0, steps=300, lr=0.02)
    assert ahead.success.all() and (ahead.margin <= -0.1 + 1e-6).all()
    # a lead of kappa moves the point kappa / sqrt(2) further
    assert torch.allclose(ahead.l2, plain.l2 + 0.1 / math.sqrt(2), atol=5e-3)


def test_never_leaves_the_clamp_range():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 4))
    x = torch.rand(6, 1, 3, 4)
    x[0] = 0.0  # inputs on the bounds must be able to move
    x[1] = 1.0
    target = torch.tensor([0, 1, 2, 3, 0, 1])
    result = _cw(model, x, target, c=100.0, steps=200, lr=0.1)
    assert result.adversarial.min() >= 0.0 and result.adversarial.max() <= 1.0
    assert result.success.all()
    wide = _cw(model, x * 3 - 1, target, c=100.0, steps=200, lr=0.1, clamp=(-1, 2))
    assert wide.adversarial.min() >= -1.0 and wide.adversarial.max() <= 2.0


def test_failures_come_back_unchanged_and_the_warning_names_c():
    model = _two_class_linear()
    x = _points()
    with pytest.warns(UserWarning, match=r"c=1e-06 is probably too small"):
        result = _cw(model, x, 1, c=1e-6, steps=20, lr=0.01)
    assert not result.success.any()
    assert torch.equal(result.adversarial, x) and (result.l2 == 0).all()
    assert torch.allclose(result.margin, x[:, 0] - x[:, 1])


def test_binary_search_raises_c_until_the_target_is_reached():
    model = _two_class_linear()
    x = _points()
    result = _cw(model, x, 1, c=0.01, steps=300, lr=0.01, binary_search_steps=4)
    assert result.success.all()
    assert (result.c > 0.01).all()


@pytest.mark.filterwarnings("ignore:carlini_wagner reached the target")
def test_batch_results_equal_single_sample_results():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    x = torch.rand(4, 2, 4) * 0.8 + 0.1
    target = torch.tensor([2, 0, 1, 2])
    together = _cw(model, x, target, c=5.0, steps=60, lr=0.05, abort_early=False)
    for i in range(4):
        alone = _cw(
            model, x[i : i + 1], target[i : i + 1], c=5.0, steps=60, lr=0.05, abort_early=False
        )
        assert torch.allclose(together.adversarial[i], alone.adversarial[0], atol=1e-6)
        assert together.success[i] == alone.success[0]


def test_probability_space_and_its_kappa_limit():
    model = _two_class_linear()
    x = _points()
    result = _cw(model, x, 1, kappa=0.05, c=10.0, steps=500, lr=0.01, space="probs")
    probs = model(result.adversarial).softmax(1)
    assert result.success.all() and (probs[:, 1] - probs[:, 0] >= 0.05 - 1e-5).all()
    with pytest.raises(ValueError, match="kappa"):
        _cw(model, x, 1, kappa=1.0, space="probs")


def test_warns_about_probabilities_and_random_outputs():
    model = nn.Sequential(_two_class_linear(), nn.Softmax(dim=1))
    with pytest.warns(UserWarning, match="seems to return probabilities"):
        _cw(model, _points(), 1, c=1e-3, steps=5)

    class AlwaysNoisy(nn.Module):  # randomness that eval() cannot switch off
        def __init__(self):
            super().__init__()
            self.linear = _two_class_linear()

        def forward(self, inputs):
            return self.linear(inputs + 1e-3 * torch.randn_like(inputs))

    with pytest.warns(UserWarning, match="change between two calls"):
        _cw(AlwaysNoisy(), _points(), 1, c=1e-3, steps=5)

    # nn.Dropout in a model passed in train mode is switched off: not a reason to blame
    in_train_mode = nn.Sequential(nn.Dropout(0.5), _two_class_linear()).train()
    with pytest.warns(UserWarning) as record:
        _cw(in_train_mode, _points(), 1, c=1e-3, steps=5)
    assert "too small" in str(record[0].message)
    assert "change between two calls" not in str(record[0].message)
    assert "BatchNorm" not in str(record[0].message)

    # a model with BatchNorm passed in train mode: its eval-mode statistics may be stale
    with_batch_norm = nn.Sequential(nn.BatchNorm1d(2), _two_class_linear()).train()
    with pytest.warns(UserWarning, match="passed in train mode"):
        _cw(with_batch_norm, _points(), 1, c=1e-3, steps=5)
    assert with_batch_norm.training


def test_bad_input_gives_errors_naming_the_argument():
    model = _two_class_linear()
    x = _points()
    with pytest.raises(ValueError, match=r"target must hold classes in \[0, 1\]"):
        _cw(model, x, torch.tensor([0, 1, 2, 1]))
    with pytest.raises(ValueError, match="target"):
        _cw(model, x, -1)
    with pytest.raises(ValueError, match="x must lie inside clamp"):
        _cw(model, x * 2, 1)
    with pytest.raises(ValueError, match="clamp"):
        _cw(model, x, 1, clamp=None)
    with pytest.raises(ValueError, match="kappa"):
        _cw(model, x, 1, kappa=-1.0)
    with pytest.raises(ValueError, match="c must be"):
        _cw(model, x, 1, c=0.0)
    with pytest.raises(ValueError, match="steps"):
        _cw(model, x, 1, steps=0)
    with pytest.raises(ValueError, match="space"):
        _cw(model, x, 1, space="softmax")

    class Flat(nn.Module):
        def forward(self, inputs):
            return inputs.sum(1)

    with pytest.raises(ValueError, match="model must return class scores"):
        _cw(Flat(), x, 1)


def test_return_result_picks_the_tensor_or_the_result_and_the_default_is_deprecated():
    model, x = _two_class_linear(), _points()
    result = carlini_wagner(model, x, 1, c=10.0, steps=50, lr=0.05, return_result=True)
    assert isinstance(result, CarliniWagnerResult) and isinstance(result, AttackResult)
    tensor = carlini_wagner(model, x, 1, c=10.0, steps=50, lr=0.05, return_result=False)
    assert isinstance(tensor, torch.Tensor) and torch.equal(tensor, result.adversarial)
    with pytest.warns(DeprecationWarning, match="return_result=True to keep the CarliniWagner"):
        old = carlini_wagner(model, x, 1, c=10.0, steps=50, lr=0.05)
    assert isinstance(old, CarliniWagnerResult) and torch.equal(old.adversarial, tensor)
    with pytest.raises(TypeError, match="return_result must be True, False or None; got 'yes'"):
        carlini_wagner(model, x, 1, return_result="yes")
