import pytest
import torch
import torch.nn.functional as F

from mltricks.metric_learning import TripletMarginLoss
from mltricks.models import MultiHeadResNet, SmallCNN, small_resnet18


def test_forward_returns_logits_and_embeddings():
    model = MultiHeadResNet(6, embedding_dim=2, in_channels=3)
    logits, embeddings = model(torch.rand(3, 3, 8, 8))
    assert logits.shape == (3, 6) and embeddings.shape == (3, 2)
    assert torch.isfinite(logits).all() and torch.isfinite(embeddings).all()
    assert model.feature_dim == 512 and isinstance(model.backbone.fc, torch.nn.Identity)


def test_one_step_of_ce_plus_triplet_changes_the_backbone():
    """The seed's backbone stayed frozen by a bug: every parameter must train."""
    torch.manual_seed(0)
    model = MultiHeadResNet(3, embedding_dim=2, in_channels=1)
    assert all(p.requires_grad for p in model.parameters())
    before = {k: v.clone() for k, v in model.named_parameters()}
    x, y = torch.rand(6, 1, 8, 8), torch.tensor([0, 0, 1, 1, 2, 2])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    logits, embeddings = model(x)
    (F.cross_entropy(logits, y) + TripletMarginLoss(1.0, "all")(embeddings, y)).backward()
    optimizer.step()
    for name in ("backbone.conv1.weight", "backbone.layer4.1.conv2.weight"):
        assert not torch.equal(dict(model.named_parameters())[name], before[name]), name
    unchanged = [k for k, v in model.named_parameters() if torch.equal(v, before[k])]
    assert not [k for k in unchanged if "weight" in k and "bn" not in k]


def test_weights_file_loads_the_backbone_and_ignores_its_classifier(tmp_path):
    torch.manual_seed(1)
    source = small_resnet18(1, 1000)  # a classifier for another task
    path = tmp_path / "resnet.pt"
    torch.save(source.state_dict(), path)
    model = MultiHeadResNet(4, in_channels=1, weights=path)
    for key, value in source.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(model.backbone.state_dict()[key], value), key
    # a saved MultiHeadResNet gives its backbone
    torch.save(model.state_dict(), tmp_path / "multi.pt")
    again = MultiHeadResNet(9, in_channels=1, weights=tmp_path / "multi.pt")
    assert torch.equal(again.backbone.conv1.weight, model.backbone.conv1.weight)


def test_bad_weights_files_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        MultiHeadResNet(4, weights=tmp_path / "missing.pt")
    torch.save({"something": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="does not hold a small_resnet18 backbone"):
        MultiHeadResNet(4, weights=tmp_path / "other.pt")
    torch.save(small_resnet18(3, 10).state_dict(), tmp_path / "rgb.pt")
    with pytest.raises(ValueError, match="does not fit this backbone"):
        MultiHeadResNet(4, in_channels=1, weights=tmp_path / "rgb.pt")


def test_a_module_backbone_with_its_feature_size():
    cnn = SmallCNN(1, 10, width=4)
    model = MultiHeadResNet(10, embedding_dim=16, backbone=cnn.features, feature_dim=8)
    logits, embeddings = model(torch.rand(2, 1, 8, 8))
    assert logits.shape == (2, 10) and embeddings.shape == (2, 16)
    with pytest.raises(ValueError, match="feature_dim is needed"):
        MultiHeadResNet(10, backbone=cnn.features)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"num_classes": 0}, ValueError, "num_classes must be an integer >= 1"),
        ({"num_classes": 3, "embedding_dim": 0}, ValueError, "embedding_dim"),
        ({"num_classes": 3, "backbone": "resnet50"}, ValueError, "backbone must be one of"),
        ({"num_classes": 3, "backbone": 5}, TypeError, "backbone must be"),
    ],
)
def test_bad_arguments_are_refused(kwargs, error, message):
    with pytest.raises(error, match=message):
        MultiHeadResNet(**kwargs)
