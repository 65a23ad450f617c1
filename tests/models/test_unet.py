import pytest
import torch
import torch.nn.functional as F

from mltricks.models import UNet


@pytest.mark.parametrize(
    ("depth", "size"), [(1, (8, 8)), (2, (13, 17)), (3, (24, 24)), (3, (9, 31)), (4, (5, 7))]
)
def test_output_shape_for_depths_and_odd_sizes(depth, size):
    torch.manual_seed(0)
    model = UNet(2, 5, base_channels=4, depth=depth).eval()
    x = torch.rand(3, 2, *size)
    out = model(x)
    assert out.shape == (3, 5, *size) and torch.isfinite(out).all()
    assert model.classify(x).shape == (3, 5)
    # channels double per level down; the bottleneck is 2**depth smaller (after padding)
    features = model.encoder(F.pad(x, (0, -size[1] % 2**depth, 0, -size[0] % 2**depth)))
    assert [f.shape[1] for f in features] == [4 * 2**level for level in range(depth + 1)]
    assert features[-1].shape[-1] == -(-size[1] // 2**depth)


def test_padding_does_not_leak_into_the_image_region():
    # a pixel's output depends only on the input, not on where the padding ends: the same
    # image inside a larger all-zero canvas gives the same logits where the receptive field
    # stays inside (checked on the unpadded, divisible size against the padded odd size)
    torch.manual_seed(0)
    model = UNet(1, 2, base_channels=4, depth=2).eval()
    x = torch.rand(1, 1, 15, 15)
    padded = F.pad(x, (0, 1, 0, 1))
    assert torch.allclose(model(x), model(padded)[..., :15, :15], atol=1e-6)


def test_skip_connections_reach_the_output():
    # with the skips, the output at full resolution depends on every input pixel's detail:
    # a one-pixel change changes the logits at that pixel
    torch.manual_seed(0)
    model = UNet(1, 2, base_channels=4, depth=3).eval()
    x = torch.rand(1, 1, 16, 16)
    y = x.clone()
    y[0, 0, 5, 7] += 1.0
    delta = (model(y) - model(x)).abs().sum(1)[0]
    assert delta[5, 7] > 0


def test_freeze_really_stops_gradients_and_keeps_batchnorm_in_eval():
    torch.manual_seed(0)
    model = UNet(1, 3, base_channels=4, depth=2)
    model.freeze_encoder()
    encoder_before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    model.train()  # what engine.fit does every epoch
    assert model.training and not model.encoder.training and model.decoder.training
    bn = [m for m in model.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bn and not any(m.training for m in bn)
    optimizer = torch.optim.SGD(model.param_groups(encoder_lr=0.1, decoder_lr=0.1), lr=0.1)
    assert [g["name"] for g in optimizer.param_groups] == ["decoder"]
    x, y = torch.rand(4, 1, 8, 8) * 3 + 1, torch.randint(0, 3, (4, 8, 8))
    for _ in range(2):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        assert all(p.grad is None for p in model.encoder.parameters())
        assert all(p.grad is not None for p in model.decoder_parameters())
        optimizer.step()
    # weights and BatchNorm running statistics of the encoder did not move
    for key, value in model.encoder.state_dict().items():
        assert torch.equal(value, encoder_before[key]), key

    model.unfreeze_encoder()
    assert model.encoder.training and not model.encoder_frozen
    groups = model.param_groups(encoder_lr=0.01, decoder_lr=0.1)
    assert [(g["name"], g["lr"]) for g in groups] == [("encoder", 0.01), ("decoder", 0.1)]
    F.cross_entropy(model(x), y).backward()
    assert all(p.grad is not None for p in model.encoder.parameters())
    assert (
        model.encoder.blocks[0][1].running_mean.ne(encoder_before["blocks.0.1.running_mean"]).any()
    )


def test_param_groups_cover_encoder_decoder_and_not_the_classifier():
    model = UNet(1, 2, base_channels=4, depth=2)
    groups = model.param_groups(encoder_lr=1e-4, decoder_lr=1e-3)
    grouped = {id(p) for g in groups for p in g["params"]}
    expected = {id(p) for p in model.parameters()} - {id(p) for p in model.classifier.parameters()}
    assert grouped == expected
    assert sum(len(g["params"]) for g in groups) == len(grouped)  # no parameter twice


def test_encoder_transfers_by_state_dict():
    torch.manual_seed(0)
    pretrained = UNet(1, 10, base_channels=4, depth=2)
    target = UNet(1, 4, base_channels=4, depth=2, num_pretrain_classes=10)
    target.encoder.load_state_dict(pretrained.encoder.state_dict())
    x = torch.rand(2, 1, 8, 8)
    pretrained.eval(), target.eval()
    assert torch.equal(pretrained.encoder(x)[-1], target.encoder(x)[-1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"in_channels": 0}, "in_channels"),
        ({"num_classes": 0}, "num_classes"),
        ({"depth": 0}, "depth"),
        ({"base_channels": 1.5}, "base_channels"),
        ({"num_pretrain_classes": 0}, "num_pretrain_classes"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        UNet(**{"in_channels": 1, "num_classes": 2, **kwargs})


def test_bad_inputs_name_the_size():
    model = UNet(1, 2, base_channels=4, depth=2, pad=False)
    with pytest.raises(ValueError, match=r"height 10 and width 12.*multiples of 4"):
        model(torch.zeros(1, 1, 10, 12))
    assert model(torch.zeros(1, 1, 12, 12)).shape == (1, 2, 12, 12)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, H, W\)"):
        model(torch.zeros(1, 3, 12, 12))
    with pytest.raises(ValueError, match="encoder_lr"):
        model.param_groups(encoder_lr=-1.0, decoder_lr=0.1)
