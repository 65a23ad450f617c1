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


def test_small_resnet18_keeps_resolution_and_loads_local_weights(tmp_path):
    from smallml.models import small_resnet18

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

    from smallml.models import small_resnet18

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"conv1.weight": _Payload()}, path, pickle_protocol=2)
    with pytest.raises(pickle.UnpicklingError):
        small_resnet18(1, 4, weights=path)
    assert not (tmp_path / "should-not-exist").exists()
