import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mltricks.models import PoolAbove, SmallCNN


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


def test_small_resnet18_keeps_resolution_and_loads_local_weights(tmp_path):
    from mltricks.models import small_resnet18

    model = small_resnet18(1, 4)
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 4)
    assert model.fc.in_features == 512
    path = tmp_path / "w.pt"
    torch.save(model.state_dict(), path)
    again = small_resnet18(1, 4, weights=path)
    assert all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values())
    )
    with pytest.raises(FileNotFoundError, match="missing"):
        small_resnet18(1, 4, weights=tmp_path / "missing.pt")


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("touch should-not-exist",))


def test_a_crafted_checkpoint_cannot_run_code(tmp_path, monkeypatch):
    import pickle

    from mltricks.models import small_resnet18

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"conv1.weight": _Payload()}, path, pickle_protocol=2)
    with pytest.raises(pickle.UnpicklingError):
        small_resnet18(1, 4, weights=path)
    assert not (tmp_path / "should-not-exist").exists()


def _digits_era_cnn(in_channels, num_classes, width, dropout):
    """SmallCNN as it was before the pooling stages for large inputs: the 8x8 reference."""

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    features = nn.Sequential(
        *block(in_channels, width),
        *block(width, 2 * width),
        nn.MaxPool2d(2, ceil_mode=True),
        *block(2 * width, 2 * width),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    head = nn.Sequential(
        nn.Dropout(dropout),
        nn.Linear(2 * width, 2 * width),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(2 * width, num_classes),
    )
    return nn.Sequential(features, head)


@pytest.mark.parametrize("size", [8, 5, 1])
def test_small_inputs_get_exactly_the_digits_network(size):
    torch.manual_seed(0)
    model = SmallCNN(1, 10, width=8, dropout=0.3)
    torch.manual_seed(0)
    reference = _digits_era_cnn(1, 10, 8, 0.3)
    # same parameters drawn in the same order: the digits results cannot move
    ours, theirs = list(model.parameters()), list(reference.parameters())
    assert [p.shape for p in ours] == [p.shape for p in theirs]
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
    x = torch.rand(6, 1, size, size)
    model.eval(), reference.eval()
    assert torch.equal(model(x), reference(x))
    model.train(), reference.train()
    torch.manual_seed(1)
    out = model(x)
    torch.manual_seed(1)
    assert torch.equal(out, reference(x))


def _map_sizes(model, size):
    """The spatial size entering each convolution."""
    sizes = []
    hooks = [
        m.register_forward_pre_hook(lambda _, args: sizes.append(tuple(args[0].shape[-2:])))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    model(torch.zeros(2, model.features[0].in_channels, size, size))
    for hook in hooks:
        hook.remove()
    return sizes


def test_larger_inputs_get_more_pooling_stages():
    model = SmallCNN(1, 10, width=4)
    assert _map_sizes(model, 8) == [(8, 8), (8, 8), (4, 4)]
    assert _map_sizes(model, 28) == [(28, 28), (14, 14), (4, 4)]  # 28, 14, 7, then 4
    assert _map_sizes(SmallCNN(3, 10, width=4), 32) == [(32, 32), (16, 16), (4, 4)]
    assert _map_sizes(model, 64) == [(64, 64), (16, 16), (4, 4)]
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in _digits_era_cnn(1, 10, 4, 0.0).parameters()
    )


def test_pool_above_is_max_pooling_until_small_enough():
    x = torch.rand(2, 3, 28, 20)
    assert torch.equal(PoolAbove(20)(x), x)
    expected = F.max_pool2d(F.max_pool2d(x, 2, ceil_mode=True), 2, ceil_mode=True)
    assert torch.equal(PoolAbove(8)(x), expected)  # 28x20 -> 14x10 -> 7x5
    with pytest.raises(ValueError, match="size"):
        PoolAbove(0)


def _pairs(num, size, gap, generator):
    """Two 3x3 blobs ``gap`` pixels apart on the main diagonal (class 0) or the other one
    (class 1). Each blob looks the same; only how the two sit tells the class."""
    x = torch.zeros(num, 1, size, size)
    y = torch.arange(num) % 2
    for i in range(num):
        top, left = (int(v) for v in torch.randint(0, size - gap - 3, (2,), generator=generator))
        corners = [(top, left), (top + gap, left + gap)]
        if y[i]:
            corners = [(top, left + gap), (top + gap, left)]
        for r, c in corners:
            x[i, 0, r : r + 3, c : c + 3] = 1.0
    return x, y


def _train_pairs(model, generator):
    x, y = _pairs(512, 28, 12, generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(6):
        for index in torch.randperm(len(y), generator=generator).split(64):
            optimizer.zero_grad()
            F.cross_entropy(model(x[index]), y[index]).backward()
            optimizer.step()
    x_test, y_test = _pairs(256, 28, 12, generator)
    with torch.no_grad():
        return (model.eval()(x_test).argmax(1) == y_test).float().mean().item()


def test_28x28_objects_larger_than_the_old_field_of_view_are_learned():
    # blobs 12 px apart: the digits-era network sees 10 px per position and, after global
    # average pooling, only which local patterns occur, the same in both classes
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    new = _train_pairs(SmallCNN(1, 2, width=8), generator)
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    old = _train_pairs(_digits_era_cnn(1, 2, 8, 0.0), generator)
    assert new > 0.9 and old < 0.7, (new, old)
