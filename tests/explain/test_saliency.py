import pytest
import torch
from torch import nn

from mltricks.explain import Saliency


def _linear(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 4))


def test_saliency_of_a_linear_model_is_its_weights():
    model = _linear()
    x = torch.rand(5, 3, 2, 2)
    target = torch.tensor([0, 3, 1, 1, 2])
    signed = Saliency(model, absolute=False).attribute(x, target)
    expected = model[1].weight.detach()[target].view_as(x)
    assert torch.allclose(signed, expected)
    assert torch.allclose(Saliency(model).attribute(x, target), expected.abs())
    same_class = Saliency(model, absolute=False).attribute(x, 2)
    assert torch.allclose(same_class, model[1].weight.detach()[2].view(1, 3, 2, 2).expand_as(x))


def test_runs_in_eval_mode_and_returns_a_detached_map():
    # leaving the model and the input as found: tests/test_common_checks.py
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(12, 8),
        nn.BatchNorm1d(8),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(8, 4),
    ).train()
    x = torch.rand(3, 3, 2, 2, requires_grad=True)
    first = Saliency(model).attribute(x, 1)
    assert torch.equal(first, Saliency(model).attribute(x, 1))  # eval mode: deterministic
    assert first.shape == x.shape and not first.requires_grad


def test_bad_input_gives_errors_naming_the_argument():
    model = _linear()
    x = torch.rand(2, 3, 2, 2)
    with pytest.raises(ValueError, match=r"target must hold classes in \[0, 3\]"):
        Saliency(model).attribute(x, torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="target"):
        Saliency(model).attribute(x, 9)
    with pytest.raises(ValueError, match="target must be an int or have shape"):
        Saliency(model).attribute(x, torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match=r"model must be an nn\.Module"):
        Saliency(lambda inputs: inputs)

    class NoLogits(nn.Module):
        def forward(self, inputs):
            return inputs

    with pytest.raises(ValueError, match="model must return class scores"):
        Saliency(NoLogits()).attribute(x, 0)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_matches_captum():
    captum_attr = pytest.importorskip("captum.attr")
    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 25, 3)
    ).eval()
    x = torch.rand(4, 1, 5, 5)
    target = torch.tensor([0, 2, 1, 0])
    theirs = captum_attr.Saliency(model).attribute(x, target=target, abs=True)
    assert torch.allclose(Saliency(model).attribute(x, target), theirs)
