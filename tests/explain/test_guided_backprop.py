import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mltricks.explain import GuidedBackprop, Saliency
from mltricks.models import SmallCNN


def _one_relu(inplace=False):
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(inplace=inplace), nn.Linear(3, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 2.0], [-1.0, 1.0], [3.0, -1.0]]))
        model[0].bias.copy_(torch.tensor([0.0, 0.5, -4.0]))
        model[2].weight.copy_(torch.tensor([[2.0, -3.0, 1.0], [-1.0, 4.0, 5.0]]))
        model[2].bias.zero_()
    return model


def _no_hooks(model):
    return all(
        not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
        for m in model.modules()
    )


def test_one_relu_network_against_the_hand_derived_gradient():
    x = torch.tensor([[1.0, 1.0], [0.2, -0.5]])
    # pre-activations W x + b: [3, 0.5, -2] (third unit off) and [-0.8, -0.2, -3.9] (all off)
    w1 = torch.tensor([[1.0, 2.0], [-1.0, 1.0], [3.0, -1.0]])
    pre = x @ w1.T + torch.tensor([0.0, 0.5, -4.0])
    v = torch.tensor([[2.0, -3.0, 1.0], [-1.0, 4.0, 5.0]])
    for target in (0, 1):
        # guided: the gradient at the ReLU output, v[target], loses its negative entries, then
        # the ReLU masks units whose input was negative
        hidden = v[target].clamp(min=0) * (pre > 0).float()
        expected = hidden @ w1
        for inplace in (False, True):
            got = GuidedBackprop(_one_relu(inplace)).attribute(x, target)
            assert torch.allclose(got, expected), (target, inplace)
    # the plain gradient differs: it keeps negative gradients
    plain = Saliency(_one_relu(), absolute=False).attribute(x, 0)
    assert not torch.allclose(plain, GuidedBackprop(_one_relu()).attribute(x, 0))


def test_only_relu_gradients_change():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 5), nn.LeakyReLU(0.1), nn.Linear(5, 3)
    )
    x = torch.randn(3, 4)
    with pytest.warns(UserWarning, match="no nn.ReLU"):
        guided = GuidedBackprop(model).attribute(x, 1)
    assert torch.allclose(guided, Saliency(model, absolute=False).attribute(x, 1))


@pytest.mark.slow  # importing the anchor library takes seconds
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_matches_captum_on_a_cnn_with_batch_norm():
    captum_attr = pytest.importorskip("captum.attr")
    torch.manual_seed(1)
    model = SmallCNN(1, 4, width=4).eval()
    x = torch.rand(3, 1, 6, 6)
    target = torch.tensor([0, 3, 2])
    theirs = captum_attr.GuidedBackprop(model).attribute(x, target=target)
    assert torch.allclose(GuidedBackprop(model).attribute(x, target), theirs, atol=1e-6)


@pytest.mark.parametrize(
    "relu",
    [
        lambda t: F.relu(t),
        lambda t: torch.relu(t),
        lambda t: t.relu(),
        lambda t: F.relu(t.clone(), inplace=True),
    ],
)
def test_a_functional_relu_gets_a_clear_error(relu):
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.first, self.act, self.second = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2)

        def forward(self, inputs):
            return self.second(relu(self.act(self.first(inputs))))

    model = Functional()
    with pytest.raises(ValueError, match=r"nn.ReLU modules.*calls .*relu"):
        GuidedBackprop(model).attribute(torch.rand(2, 2), 0)
    assert _no_hooks(model) and torch._C._len_torch_function_stack() == 0


def test_hook_and_mode_context_managers_undo_everything_on_error():
    from mltricks._utils.hooks import eval_mode, forward_hooks

    model = _one_relu()
    model.train()
    model[1].eval()  # mixed modes come back module by module
    modes = [m.training for m in model.modules()]
    with (
        pytest.raises(RuntimeError, match="inside"),
        eval_mode(model),
        forward_hooks([model[0], model[1]], lambda m, i, o: None),
    ):
        assert not any(m.training for m in model.modules())
        assert len(model[0]._forward_hooks) == 1
        raise RuntimeError("inside")
    assert [m.training for m in model.modules()] == modes and _no_hooks(model)
