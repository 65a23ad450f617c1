import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mltricks.models import Autoencoder


@pytest.mark.parametrize("in_shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (2, 7, 13), (1, 1, 1)])
@pytest.mark.parametrize("channels", [(16, 32), (4,), (4, 4, 4)])
def test_shapes_round_trip_for_even_and_odd_sizes(in_shape, channels):
    model = Autoencoder(in_shape, 5, channels=channels)
    x = torch.rand(2, *in_shape)
    z = model.encode(x)
    assert z.shape == (2, 5)
    x_hat = model.decode(z)
    assert x_hat.shape == x.shape and ((x_hat > 0) & (x_hat < 1)).all()
    assert torch.equal(model(x), x_hat)


def test_training_lowers_the_reconstruction_error():
    torch.manual_seed(0)
    # images on a 3-d subspace: a 3-d code can reconstruct them
    basis = torch.rand(3, 64)
    x = (torch.rand(64, 3) @ basis / 3).clamp(0, 1).reshape(64, 1, 8, 8)
    model = Autoencoder((1, 8, 8), 3, channels=(8, 16))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = float(F.mse_loss(model(x), x).detach())
    for _ in range(60):
        optimizer.zero_grad()
        F.mse_loss(model(x), x).backward()
        optimizer.step()
    assert float(F.mse_loss(model(x), x).detach()) < 0.2 * first


def test_the_encoder_is_a_feature_extractor_for_a_classifier():
    model = Autoencoder((1, 8, 8), 6)
    classifier = nn.Sequential(model.encoder, nn.ReLU(), nn.Linear(6, 10))
    assert classifier(torch.rand(4, 1, 8, 8)).shape == (4, 10)
    assert classifier[0] is model.encoder  # shares the pretrained weights


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (((1, 8, 8), 0), "latent_dim must be an integer >= 1; got 0"),
        (((8, 8), 4), "in_shape must be"),
        (((1, 0, 8), 4), "in_shape height"),
    ],
)
def test_bad_arguments_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        Autoencoder(*args)
    with pytest.raises(ValueError, match="channels"):
        Autoencoder((1, 8, 8), 4, channels=())


def test_the_pretrained_classifier_holds_the_trained_encoder_and_nothing_else_differs():
    """The seed's comparison loaded the wrong checkpoint: the autoencoder experiment's
    pretrained classifier must hold exactly the trained encoder, and share the scratch head."""
    from mltricks.lab.experiments.autoencoder import classifiers

    torch.manual_seed(0)
    autoencoder = Autoencoder((1, 8, 8), 4, channels=(4, 8))
    with torch.no_grad():
        for p in autoencoder.parameters():
            p.add_(1.0)  # "trained": away from any fresh initialisation
    scratch, pretrained = classifiers(autoencoder, 10)
    for key, value in autoencoder.encoder.state_dict().items():
        assert torch.equal(pretrained[0].state_dict()[key], value)
        assert not torch.equal(scratch[0].state_dict()[key], value)
    assert torch.equal(pretrained[2].weight, scratch[2].weight)
    assert pretrained[0] is not autoencoder.encoder  # training it leaves the autoencoder alone


def test_epochs_to_reach_counts_from_one_and_marks_never():
    from mltricks.lab.experiments.autoencoder import epochs_to_reach

    assert epochs_to_reach([0.2, 0.5, 0.9, 0.8], 0.8) == 3
    assert epochs_to_reach([0.2, 0.5], 0.9) == 3
