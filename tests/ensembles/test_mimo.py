import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mltricks.ensembles import MIMO, mimo_loss
from mltricks.models import SmallCNN, small_resnet18


def _cnn_mimo(num_members=3, channels=1):
    torch.manual_seed(0)
    cnn = SmallCNN(channels, 5, width=4)
    return MIMO(
        cnn.features,
        num_members=num_members,
        feature_dim=cnn.feature_dim,
        num_classes=5,
        in_channels=channels,
    )


def test_shapes_with_a_small_cnn_and_a_small_resnet18():
    mimo = _cnn_mimo(3, channels=2)
    assert mimo(torch.rand(3, 4, 2, 8, 8)).shape == (3, 4, 5)
    assert mimo.predict(torch.rand(4, 2, 8, 8)).shape == (3, 4, 5)
    resnet = small_resnet18(3, 10)
    resnet.fc = nn.Identity()
    mimo = MIMO(resnet, num_members=2, feature_dim=512, num_classes=10, in_channels=3)
    assert mimo.input_layer == "conv1" and mimo.backbone.conv1.in_channels == 6
    assert mimo.predict(torch.rand(2, 3, 8, 8)).shape == (2, 2, 10)
    assert isinstance(resnet.conv1, nn.Conv2d) and resnet.conv1.in_channels == 3  # copied


def test_member_m_owns_channel_block_m_of_the_input_layer():
    mimo = _cnn_mimo(3, channels=2)
    seen = []
    handle = mimo.backbone[0].register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    x = torch.rand(3, 4, 2, 8, 8)
    mimo(x)
    handle.remove()
    for member in range(3):
        assert torch.equal(seen[0][:, 2 * member : 2 * member + 2], x[member])


def test_predict_layout_equals_training_layout():
    mimo = _cnn_mimo(3).eval()
    x = torch.rand(6, 1, 8, 8)
    repeated = torch.stack([x, x, x])  # what training would feed when all members see x
    assert torch.allclose(mimo.predict(x), mimo(repeated))
    # and member m's head block is output m: rebuild the logits by hand
    features = mimo.backbone(torch.cat([x, x, x], dim=1))
    logits = mimo.head(features)
    for member in range(3):
        assert torch.allclose(mimo.predict(x)[member], logits[:, 5 * member : 5 * member + 5])


def test_a_tabular_backbone_with_a_linear_input_layer():
    backbone = nn.Sequential(nn.Linear(4, 16), nn.ReLU())
    mimo = MIMO(backbone, num_members=2, feature_dim=16, num_classes=3, in_channels=4)
    assert mimo.backbone[0].in_features == 8
    assert mimo(torch.rand(2, 5, 4)).shape == (2, 5, 3)
    assert mimo.predict(torch.rand(5, 4)).shape == (2, 5, 3)


def test_extra_parameters_are_the_wider_input_layer_and_head_only():
    def count(model):
        return sum(p.numel() for p in model.parameters())

    resnet = small_resnet18(3, 10)
    resnet.fc = nn.Identity()
    one = count(MIMO(resnet, num_members=1, feature_dim=512, num_classes=10, in_channels=3))
    three = count(MIMO(resnet, num_members=3, feature_dim=512, num_classes=10, in_channels=3))
    assert three - one == 2 * (64 * 3 * 3 * 3) + 2 * (512 * 10 + 10)
    assert three / one < 1.01


def test_mimo_loss_sums_the_members_cross_entropies():
    logits, targets = torch.randn(3, 7, 4), torch.randint(0, 4, (3, 7))
    expected = sum(F.cross_entropy(logits[m], targets[m]) for m in range(3))
    assert torch.allclose(mimo_loss(logits, targets), expected)
    with pytest.raises(ValueError, match="targets"):
        mimo_loss(logits, targets[0])


def test_members_learn_their_own_input():
    """Trained on independently paired inputs, member m predicts the label of input m only."""
    torch.manual_seed(0)
    weights = torch.randn(6, 3)

    def sample(n):
        x = torch.randn(2, n, 6)
        return x, (x @ weights).argmax(-1)

    mimo = MIMO(
        nn.Sequential(nn.Linear(6, 64), nn.ReLU()),
        num_members=2,
        feature_dim=64,
        num_classes=3,
        in_channels=6,
    )
    optimizer = torch.optim.Adam(mimo.parameters(), lr=0.01)
    for _ in range(300):
        x, y = sample(64)
        optimizer.zero_grad()
        mimo_loss(mimo(x), y).backward()
        optimizer.step()
    x, y = sample(500)
    with torch.no_grad():
        predictions = mimo(x).argmax(-1)
    own = (predictions == y).float().mean(1)
    other = (predictions == y.flip(0)).float().mean(1)
    assert (own > 0.85).all() and (other < 0.5).all()


def test_bad_input():
    cnn = SmallCNN(1, 5, width=4)
    with pytest.raises(ValueError, match="num_members must be an integer >= 1; got 0"):
        MIMO(cnn.features, num_members=0, feature_dim=8, num_classes=5, in_channels=1)
    with pytest.raises(ValueError, match="in_channels=3 does not match"):
        MIMO(cnn.features, num_members=2, feature_dim=8, num_classes=5, in_channels=3)
    with pytest.raises(ValueError, match="input_layer 'nope'"):
        MIMO(cnn.features, feature_dim=8, num_classes=5, in_channels=1, input_layer="nope")
    mimo = _cnn_mimo(3)
    with pytest.raises(ValueError, match=r"in_channels=1.*got \(3, 4, 3, 8, 8\)"):
        mimo(torch.rand(3, 4, 3, 8, 8))
    with pytest.raises(ValueError, match="num_members=3"):
        mimo(torch.rand(2, 4, 1, 8, 8))
    with pytest.raises(ValueError, match=r"in_channels=1.*got \(4, 3, 8, 8\)"):
        mimo.predict(torch.rand(4, 3, 8, 8))
    whole = MIMO(SmallCNN(1, 5, width=4), feature_dim=8, num_classes=5, in_channels=1)
    with pytest.raises(ValueError, match="remove its classifier"):
        whole.predict(torch.rand(2, 1, 8, 8))
