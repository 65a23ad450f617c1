import pytest
import torch
import torch.nn.functional as F

from mltricks.models import LeNet


def _tutorial_forward(model, x):
    """The forward pass of the FGSM tutorial's ``Net``, written as the tutorial writes it, on
    ``model``'s weights (eval mode: its dropout calls do nothing), without log_softmax."""
    conv1, _, _, conv2, _, _, _, _ = model.features
    fc1, _, _, fc2 = model.head
    x = F.relu(F.max_pool2d(conv1(x), 2))
    x = F.relu(F.max_pool2d(conv2(x), 2))
    x = x.view(-1, 320)
    x = F.relu(fc1(x))
    return fc2(x)


def test_it_is_the_tutorial_network_on_28x28():
    torch.manual_seed(0)
    model = LeNet(1, 10).eval()
    # conv1 10*1*25+10, conv2 20*10*25+20, fc1 320*50+50, fc2 50*10+10: the tutorial's sizes
    assert model.feature_dim == 320
    assert sum(p.numel() for p in model.parameters()) == 260 + 5020 + 16050 + 510
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(model(x), _tutorial_forward(model, x))
    # its log-probabilities, the tutorial's output, give the same predictions
    assert torch.equal(model(x).argmax(1), model(x).log_softmax(1).argmax(1))


@pytest.mark.parametrize(
    ("channels", "size", "padding", "features"), [(1, 8, 2, 80), (3, 32, 0, 500), (1, 16, 0, 20)]
)
def test_sizes(channels, size, padding, features):
    model = LeNet(channels, 7, image_size=size, padding=padding)
    assert model.feature_dim == features
    assert model(torch.rand(2, channels, size, size)).shape == (2, 7)


def test_dropout_is_active_in_training_only():
    torch.manual_seed(0)
    model = LeNet(1, 10)
    x = torch.rand(8, 1, 28, 28)
    assert not torch.equal(model.train()(x), model(x))
    assert torch.equal(model.eval()(x), model(x))
    quiet = LeNet(1, 10, dropout=0.0).train()
    assert torch.equal(quiet(x), quiet(x))


def test_bad_arguments_and_inputs_are_named():
    with pytest.raises(ValueError, match=r"image_size=8 with padding=0 .* padding=2"):
        LeNet(1, 10, image_size=8)
    with pytest.raises(ValueError, match="dropout"):
        LeNet(dropout=1.0)
    with pytest.raises(ValueError, match=r"built for 28x28 .* shape \(1, 1, 32, 32\)"):
        LeNet()(torch.rand(1, 1, 32, 32))
