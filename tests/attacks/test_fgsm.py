import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mltricks.attacks import fgsm


def _linear(seed=0, inputs=6, classes=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(inputs, classes))


def _batch(seed=0, size=5, shape=(1, 2, 3)):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(size, *shape, generator=generator) * 0.8 + 0.1


def test_equals_the_one_line_formula_on_a_linear_model():
    model = _linear()
    x = _batch()
    y = torch.tensor([0, 1, 2, 0, 1])
    weight, bias = model[1].weight.detach(), model[1].bias.detach()
    # d CE / d x = W^T (softmax(z) - onehot(y)) for logits z = W x + b
    z = x.flatten(1) @ weight.T + bias
    gradient = ((z.softmax(1) - F.one_hot(y, 3)) @ weight).view_as(x)
    for eps in (0.0, 0.05, 0.3):
        expected = (x + eps * gradient.sign()).clamp(0, 1)
        assert torch.equal(fgsm(model, x, y, eps=eps), expected)
        targeted = (x - eps * gradient.sign()).clamp(0, 1)
        assert torch.equal(fgsm(model, x, y, eps=eps, targeted=True), targeted)


def test_untargeted_raises_the_loss_and_targeted_lowers_it():
    model = _linear(1)
    x = _batch(1)
    y = torch.tensor([2, 2, 1, 0, 1])
    clean = F.cross_entropy(model(x), y, reduction="none")
    away = F.cross_entropy(model(fgsm(model, x, y, eps=0.05)), y, reduction="none")
    towards = F.cross_entropy(
        model(fgsm(model, x, y, eps=0.05, targeted=True)), y, reduction="none"
    )
    assert (away > clean).all() and (towards < clean).all()


def test_per_sample_eps_equals_separate_calls_and_clamp_holds():
    model = _linear(2)
    x = _batch(2)
    y = torch.tensor([1, 0, 2, 2, 1])
    eps = torch.tensor([0.0, 0.1, 0.5, 1.0, 2.0])
    together = fgsm(model, x, y, eps=eps)
    for i in range(len(x)):
        alone = fgsm(model, x[i : i + 1], y[i : i + 1], eps=float(eps[i]))
        assert torch.equal(together[i : i + 1], alone)
    assert together.min() >= 0.0 and together.max() <= 1.0
    wide = fgsm(model, x, y, eps=2.0, clamp=(-1.0, 3.0))
    assert wide.min() >= -1.0 and wide.max() <= 3.0 and (wide - x).abs().max() > 1.0
    free = fgsm(model, x, y, eps=2.0, clamp=None)
    assert torch.allclose((free - x).abs(), torch.full_like(x, 2.0))


def test_runs_in_eval_mode_and_returns_a_new_detached_tensor():
    # leaving the model and the input as found: tests/test_common_checks.py
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(6, 8),
        nn.BatchNorm1d(8),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(8, 3),
    ).train()
    x = _batch().requires_grad_(True)
    y = torch.tensor([0, 1, 2, 0, 1])
    first = fgsm(model, x, y, eps=0.1)
    assert torch.equal(first, fgsm(model, x, y, eps=0.1))  # eval mode: no dropout, no batch stats
    assert not first.requires_grad and first.data_ptr() != x.data_ptr()


def test_bad_input_gives_errors_naming_the_argument():
    model = _linear()
    x = _batch()
    y = torch.tensor([0, 1, 2, 0, 1])
    with pytest.raises(ValueError, match="eps"):
        fgsm(model, x, y, eps=-0.1)
    with pytest.raises(ValueError, match="eps"):
        fgsm(model, x, y, eps=torch.tensor([0.1, -0.1, 0.1, 0.1, 0.1]))
    with pytest.raises(ValueError, match="eps"):
        fgsm(model, x, y, eps=torch.full((3,), 0.1))
    with pytest.raises(ValueError, match=r"y must hold classes in \[0, 2\]"):
        fgsm(model, x, torch.tensor([0, 1, 3, 0, 1]), eps=0.1)
    with pytest.raises(ValueError, match="y"):
        fgsm(model, x, 5, eps=0.1)
    with pytest.raises(ValueError, match=r"x must lie inside clamp"):
        fgsm(model, x + 1.0, y, eps=0.1)
    with pytest.raises(ValueError, match="x must hold finite values"):
        fgsm(model, torch.where(x > 0.5, torch.nan, x), y, eps=0.1, clamp=None)
    with pytest.raises(ValueError, match="clamp"):
        fgsm(model, x, y, eps=0.1, clamp=(1.0, 0.0))
    with pytest.raises(TypeError, match="x must be a floating"):
        fgsm(model, (x * 10).long(), y, eps=0.1)

    class NoLogits(nn.Module):
        def forward(self, inputs):
            return {"logits": inputs.flatten(1)}

    class Scalar(nn.Module):
        def forward(self, inputs):
            return inputs.flatten(1).sum(1)

    with pytest.raises(TypeError, match="model must return class scores"):
        fgsm(NoLogits(), x, y, eps=0.1)
    with pytest.raises(ValueError, match="model must return class scores of shape"):
        fgsm(Scalar(), x, y, eps=0.1)


def test_warns_when_the_model_returns_probabilities():
    model = nn.Sequential(_linear(), nn.Softmax(dim=1))
    with pytest.warns(UserWarning, match="probabilities"):
        fgsm(model, _batch(), torch.tensor([0, 1, 2, 0, 1]), eps=0.1)


def test_tuple_output_counts_by_its_first_element():
    model = _linear()

    class Pair(nn.Module):
        def forward(self, inputs):
            return model(inputs), inputs

    x, y = _batch(), torch.tensor([0, 1, 2, 0, 1])
    assert torch.equal(fgsm(Pair(), x, y, eps=0.1), fgsm(model, x, y, eps=0.1))


@pytest.mark.slow  # importing the anchor library takes seconds
def test_matches_torchattacks():
    # the Makefile installs torchattacks (without its pinned requests): this oracle always runs
    import torchattacks

    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 5)
    ).eval()
    x = torch.rand(16, 1, 6, 6)
    y = torch.randint(0, 5, (16,))
    for eps in (0.03, 0.2):
        ours = fgsm(model, x, y, eps=eps)
        theirs = torchattacks.FGSM(model, eps=eps)(x, y)
        assert torch.equal(ours, theirs)


def test_return_result_reports_success_from_the_model_in_eval_mode():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.Dropout(0.9))
    model.train()
    x = torch.rand(64, 1, 2, 2)
    y = torch.randint(0, 3, (64,))
    result = fgsm(model, x, y, eps=0.3, return_result=True)
    assert torch.equal(result.adversarial, fgsm(model, x, y, eps=0.3))
    model.eval()
    predicted = model(result.adversarial).argmax(1)
    assert torch.equal(result.success, predicted != y)
    assert result.success_rate == pytest.approx(float((predicted != y).float().mean()))
    targeted = fgsm(model, x, y, eps=0.3, targeted=True, return_result=True)
    assert torch.equal(targeted.success, model(targeted.adversarial).argmax(1) == y)
