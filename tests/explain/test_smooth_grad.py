import pytest
import torch
from torch import nn

from mltricks.explain import Saliency, SmoothGrad


class Recorder:
    """An explainer that returns its (noisy) input and records every call."""

    def __init__(self):
        self.model = nn.Identity()
        self.calls = []

    def attribute(self, x, target):
        self.calls.append((x.clone(), target))
        return x


def test_noise_is_zero_mean_gaussian_scaled_to_each_inputs_range():
    x = torch.stack([torch.linspace(0.0, 1.0, 16), torch.linspace(-2.0, 2.0, 16)]).view(2, 1, 4, 4)
    recorder = Recorder()
    mean = SmoothGrad(recorder, num_samples=4000, noise=0.2, random_state=0).attribute(x, 0)
    noisy = recorder.calls[0][0].view(4000, 2, 16)
    noise = noisy - x.view(1, 2, 16)
    for sample, value_range in ((0, 1.0), (1, 4.0)):
        values = noise[:, sample].flatten()
        assert abs(float(values.mean())) < 0.02 * value_range
        assert float(values.std()) == pytest.approx(0.2 * value_range, rel=0.03)
        # Gaussian, not uniform: about 4.6% of the draws lie beyond two standard deviations
        beyond = float((values.abs() > 2 * 0.2 * value_range).float().mean())
        assert 0.035 < beyond < 0.06
    # the average of the copies is the input: 4 standard errors of the mean apart at most
    assert torch.allclose(mean[0], x[0], atol=4 * 0.2 / 4000**0.5)
    assert torch.allclose(mean[1], x[1], atol=4 * 0.8 / 4000**0.5)


def test_absolute_noise_scale_and_zero_noise():
    x = torch.rand(3, 1, 2, 2) * 10
    recorder = Recorder()
    SmoothGrad(
        recorder, num_samples=3000, noise=0.5, noise_scale="absolute", random_state=1
    ).attribute(x, 0)
    noise = recorder.calls[0][0].view(3000, 3, 4) - x.view(1, 3, 4)
    assert float(noise.std()) == pytest.approx(0.5, rel=0.03)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    plain = Saliency(model).attribute(x, 2)
    assert torch.allclose(
        SmoothGrad(Saliency(model), num_samples=5, noise=0.0).attribute(x, 2), plain
    )


def test_targets_follow_their_copies_in_batches():
    recorder = Recorder()
    x = torch.arange(3.0).view(3, 1, 1, 1).expand(3, 1, 2, 2).contiguous()
    target = torch.tensor([7, 8, 9])
    SmoothGrad(recorder, num_samples=5, noise=0.0, batch_size=4).attribute(x, target)
    assert [len(inputs) for inputs, _ in recorder.calls] == [4, 4, 4, 3]
    for inputs, chunk_target in recorder.calls:
        # copy of sample k carries target 7 + k
        assert torch.equal(chunk_target, inputs[:, 0, 0, 0].long() + 7)


def test_smoothgrad_of_a_linear_saliency_is_the_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x = torch.rand(2, 1, 2, 2)
    smooth = SmoothGrad(
        Saliency(model, absolute=False), num_samples=7, batch_size=3, random_state=0
    )
    expected = model[1].weight.detach()[1].view(1, 1, 2, 2).expand_as(x)
    assert torch.allclose(smooth.attribute(x, 1), expected, atol=1e-6)


def test_a_generator_random_state_advances_so_calls_differ():
    # an int random_state repeating its draws and the global state left alone: common checks
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    x = torch.rand(2, 1, 2, 2)
    generator = torch.Generator().manual_seed(5)
    shared = SmoothGrad(Saliency(model), num_samples=8, random_state=generator)
    first, second = shared.attribute(x, 0), shared.attribute(x, 0)
    assert not torch.equal(first, second)
    again = SmoothGrad(
        Saliency(model), num_samples=8, random_state=torch.Generator().manual_seed(5)
    )
    assert torch.equal(again.attribute(x, 0), first) and torch.equal(again.attribute(x, 0), second)


def test_bad_arguments_name_themselves():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    with pytest.raises(TypeError, match="explainer must have an attribute"):
        SmoothGrad(model)
    with pytest.raises(ValueError, match="num_samples"):
        SmoothGrad(Saliency(model), num_samples=0)
    with pytest.raises(ValueError, match="noise"):
        SmoothGrad(Saliency(model), noise=-0.1)
    with pytest.raises(ValueError, match="noise_scale"):
        SmoothGrad(Saliency(model), noise_scale="std")
    with pytest.raises(ValueError, match="batch_size"):
        SmoothGrad(Saliency(model), batch_size=0)
    with pytest.raises(ValueError, match="target must be an int or have shape"):
        SmoothGrad(Saliency(model)).attribute(torch.rand(2, 1, 2, 2), torch.tensor([0, 1, 2]))
