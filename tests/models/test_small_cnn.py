import pytest
import torch

from smallml.models import SmallCNN


@pytest.mark.parametrize(("channels", "size"), [(1, 8), (3, 32), (1, 5)])
def test_shapes_for_any_small_size(channels, size):
    model = SmallCNN(channels, 7, width=8, dropout=0.2)
    assert model(torch.rand(3, channels, size, size)).shape == (3, 7)
    assert model.features(torch.rand(3, channels, size, size)).shape == (3, model.feature_dim)


def test_bad_arguments():
    with pytest.raises(ValueError, match="dropout"):
        SmallCNN(dropout=1.0)
    with pytest.raises(ValueError, match="num_classes"):
        SmallCNN(num_classes=0)
